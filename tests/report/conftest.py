"""Shared helpers for the report tests.

Golden files live in tests/report/golden/. To update them after an intended change:

    MLFOOTPRINT_REGEN_GOLDEN=1 .venv/bin/python -m pytest tests/report/test_golden.py

then review the diff (`git diff tests/report/golden`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

HERE = Path(__file__).parent
FIXTURE = HERE / "fixtures" / "snapshot.json"
GOLDEN = HERE / "golden"
#: the fixture's "now": open runs end here; the report's generatedAt
NOW = "2026-12-01T00:00:00Z"


@pytest.fixture
def snapshot_path() -> Path:
    return FIXTURE


@pytest.fixture
def golden() -> Callable[[str, str], None]:
    """golden(name, text): compare with tests/report/golden/<name> (or rewrite it when
    MLFOOTPRINT_REGEN_GOLDEN=1)."""

    def check(name: str, text: str) -> None:
        path = GOLDEN / name
        if os.environ.get("MLFOOTPRINT_REGEN_GOLDEN") == "1":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            return
        assert path.exists(), f"golden file {path} missing: run with MLFOOTPRINT_REGEN_GOLDEN=1 to create it"
        expected = path.read_text(encoding="utf-8")
        assert text == expected, f"{name} differs from its golden file (MLFOOTPRINT_REGEN_GOLDEN=1 to update after review)"

    return check
