"""`make test` runs on pytest-xdist workers (``-n $(WORKERS) --dist loadgroup``). Only one real
node can run on a machine, so every test marked ``realnode`` must run on one worker, in order:
this runs a small suite through tests/conftest.py's collection hook and the real xdist and checks
where each test ran (xdist once silently stopped grouping under a newer pytest: xdist#1386)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_CONFTEST = "from tests.conftest import pytest_collection_modifyitems  # noqa: F401\n"
_MODULE = '''
import os
import pytest

pytestmark = [{marks}]

@pytest.mark.parametrize("i", range(4))
def test_where(i):
    with open(os.environ["WHERE_LOG"], "a") as f:
        f.write(f"{{__name__}} {{i}} {{os.environ['PYTEST_XDIST_WORKER']}}\\n")
'''


def test_realnode_tests_share_one_worker_in_their_order(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(_CONFTEST)
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n  realnode: x\n  slow: x\n  faults: x\n")
    for name, marks in [("test_a_plain", ""), ("test_b_real", "pytest.mark.realnode"),
                        ("test_c_plain", ""), ("test_d_real", "pytest.mark.realnode")]:
        (tmp_path / f"{name}.py").write_text(_MODULE.format(marks=marks))
    log = tmp_path / "where.log"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "3", "--dist", "loadgroup"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO), "WHERE_LOG": str(log)},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = [line.split() for line in log.read_text().splitlines()]
    assert len(runs) == 16
    real = [(module, int(i), worker) for module, i, worker in runs if module.endswith("_real")]
    assert len({worker for _, _, worker in real}) == 1, f"real-node tests spread over workers: {real}"
    assert [(m, i) for m, i, _ in real] == [(m, i) for m in ("test_b_real", "test_d_real") for i in range(4)]
    assert len({worker for *_, worker in runs}) > 1, "the other tests did not use the other workers"
