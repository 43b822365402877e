"""Upgrading from 0.1.0 neither drops nor doubles a run's energy (issue 16).

0.1.0's operator kept per-series counters without a start time, and its exporter kept no start
either. A 0.2 exporter replacing it either starts new counters (the chart's 0.1.0 state was in
an emptyDir) or continues 0.1.0's from a migrated version 1 state file (bare processes). The
ledger tells the two apart by the start against its last observation; the classic reset rule
cannot, for a run younger than what the new exporter counts before its first read (found by
tests/realnode/test_upgrade.py, the `late` run)."""

from __future__ import annotations

import json
from pathlib import Path

from mlfootprint.crd.models import Ledger
from mlfootprint.exporter.state import V1_START_UNIX, load_state
from mlfootprint.operator.ledger import ContainerObs, Increment, advance, ledger_from_status

R = "2026-11-24T12:00:00.000000Z"  # the 0.1 operator's last read
R_S = 1795521600.0


def _old_ledger(gpu_j: float) -> Ledger:
    return ledger_from_status({
        "observedAt": R,
        "counters": {"gpu|late-0|trainer|GPU-1": gpu_j, "alloc|late-0|trainer|H100": 10.0},
        "totals": {"gpuJ": gpu_j, "allocS": 10.0, "allocS:H100": 10.0},
    })


def _step(ledger: Ledger, start: float | None, gpu_j: float) -> tuple[Ledger, Increment, list[str]]:
    # device-seconds grow with the energy (500 W): 10 s held at the old 5 kJ
    obs = ContainerObs(node="n1", start=start, gpu_j=gpu_j, alloc_s={"H100": gpu_j / 500.0}, gpus={"GPU-1": "H100"})
    new, inc, anomalies = advance(ledger, {("late-0", "trainer"): obs}, None, live_pods={"late-0"}, complete=True,
                                  elapsed_s=3.0)
    return new.model_copy(update={"observed_at": "2026-11-24T12:00:30.000000Z"}), inc, [a.kind for a in anomalies]


def test_fresh_counters_after_the_last_read_are_all_new_even_above_the_old_value() -> None:
    # a young run: 0.1.0 had counted 5 kJ; the new exporter started after that read and its
    # counters reached 6 kJ before the new operator's first read: 6 kJ are new, not 1 kJ
    ledger, inc, anomalies = _step(_old_ledger(5000.0), R_S + 8.0, 6000.0)
    assert inc.gpu_j == 6000.0 and anomalies == []
    assert ledger.series is not None and ledger.series["late-0/trainer"].start == R_S + 8.0
    ledger, inc, _ = _step(ledger, R_S + 8.0, 6500.0)  # then growth, in the new incarnation
    assert inc.gpu_j == 500.0
    # below the old value too (the common case: an older run)
    _, inc, _ = _step(_old_ledger(50_000.0), R_S + 8.0, 3000.0)
    assert inc.gpu_j == 3000.0


def test_a_read_without_the_new_counters_does_not_make_them_old() -> None:
    """The race tests/realnode/test_upgrade.py found: the new operator's first read (after the new
    exporter started counting, before it published the container) moves the ledger's observedAt
    past the new counters' start; they are still new, not the 0.1 counters with a start (which
    lost the run's 0.1 energy once the fresh counters exceeded it)."""
    empty, inc, _ = advance(_old_ledger(3533.0), {}, None, live_pods={"late-0"}, complete=True, elapsed_s=13.0,
                            read_s=R_S + 14.0)
    assert inc.gpu_j == 0.0
    empty = empty.model_copy(update={"observed_at": "2026-11-24T12:00:14.000000Z"})  # the caller writes it
    ledger, inc, anomalies = _step(empty, R_S + 13.5, 15_093.0)  # started at +13.5 s, before that read
    assert inc.gpu_j == 15_093.0 and anomalies == []
    ledger, inc, _ = _step(ledger, R_S + 13.5, 16_000.0)
    assert inc.gpu_j == 907.0


def test_continued_counters_of_a_migrated_state_file_are_growth_and_a_drop_is_a_rollback() -> None:
    ledger, inc, anomalies = _step(_old_ledger(5000.0), V1_START_UNIX, 6000.0)
    assert inc.gpu_j == 1000.0 and anomalies == []
    # 0.1.0 was killed after a read newer than its last checkpoint: lower, not a reset
    ledger, inc, anomalies = _step(_old_ledger(5000.0), V1_START_UNIX, 4000.0)
    assert inc.gpu_j == 0.0 and anomalies == ["Rollback"]
    ledger, inc, _ = _step(ledger, V1_START_UNIX, 5600.0)
    assert inc.gpu_j == 600.0  # only above the high-water mark


def test_without_a_start_the_classic_rule_stays() -> None:
    """An exporter older than 0.2 behind a 0.2 operator: lower means reset."""
    _, inc, _ = _step(_old_ledger(5000.0), None, 6000.0)
    assert inc.gpu_j == 1000.0
    _, inc, _ = _step(_old_ledger(5000.0), None, 300.0)
    assert inc.gpu_j == 300.0


def test_a_version_1_state_file_migrates_with_the_continuation_start(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text(json.dumps({
        "version": 1, "node": "n1", "gpus": {"GPU-1": {"model": "H100", "energy_j": 9000.0, "idle_j": 0.0, "swings": 0}},
        "host_j": {"cpu": 5.0},
        "containers": [{"namespace": "ml", "pod": "late-0", "container": "trainer", "gpu_j": [["GPU-1", "H100", 5200.0]],
                        "host_j": {}, "alloc_s": {"H100": 10.0}, "peak_w": None, "min_w": None, "swings": 0,
                        "ended_at": None}],
    }))
    state = load_state(path, "n1", now_unix=R_S + 60.0)
    assert state is not None
    (c,) = state.containers
    assert c.start_unix == V1_START_UNIX < R_S
    # the 0.2 operator reads them as the counters 0.1.0's operator knew
    _, inc, anomalies = _step(_old_ledger(5000.0), c.start_unix, c.gpu[0].energy_j)
    assert inc.gpu_j == 200.0 and anomalies == []
