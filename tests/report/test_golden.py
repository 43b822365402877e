"""Golden files: every text format of `mlfootprint report` on the fixture snapshot."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mlfootprint.cli import main
from tests.report.conftest import NOW

CASES = {
    "namespace_separate.txt": ["--format", "table", "--width", "180"],
    "namespace_separate.csv": ["--format", "csv"],
    "namespace_separate.md": ["--format", "markdown"],
    "namespace_separate.json": ["--format", "json"],
    "team_phase_share_cost.txt": ["--group-by", "label:team,phase", "--idle", "share", "--price-per-kwh", "0.2",
                                  "--carbon-price-per-tonne", "80", "--currency", "USD", "--width", "200"],
    "team_phase_share_cost.csv": ["--group-by", "label:team,phase", "--idle", "share", "--price-per-kwh", "0.2",
                                  "--carbon-price-per-tonne", "80", "--currency", "USD", "-f", "csv"],
    "team_phase_share_cost.md": ["--group-by", "label:team,phase", "--idle", "share", "--price-per-kwh", "0.2",
                                 "--carbon-price-per-tonne", "80", "--currency", "USD", "-f", "markdown"],
    "team_phase_share_cost.json": ["--group-by", "label:team,phase", "--idle", "share", "--price-per-kwh", "0.2",
                                   "--carbon-price-per-tonne", "80", "--currency", "USD", "-f", "json"],
    "lifecycle.csv": ["--format", "csv", "--view", "lifecycle"],
    "all_time_model.md": ["--group-by", "model", "-f", "markdown", "--all-time"],
    "report.html": ["--format", "html"],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name: str, golden: Callable[[str, str], None], capsys: pytest.CaptureFixture[str],
                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(Path(__file__).parent)  # the source path printed in reports is relative
    args = list(CASES[name])
    period = ["--month", "2026-11"]
    if "--all-time" in args:
        args.remove("--all-time")
        period = []
    assert main(["report", "--from-file", "fixtures/snapshot.json", *period, "--now", NOW, "-q", *args]) == 0
    golden(name, capsys.readouterr().out)
