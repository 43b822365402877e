"""Issue 17 #4: a source that recovers is logged as its failure was (not only `source_up`)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from mlfootprint.exporter.model import ErrorCounter
from mlfootprint.exporter.monitor import Monitor
from mlfootprint.exporter.pods import KubeletPodSource
from tests.exporter.conftest import FakeClock
from tests.exporter.test_pod_watch import Kubelet


def test_kubelet_going_away_and_coming_back_is_logged_both_ways(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    kubelet = Kubelet(tmp_path)
    errors = ErrorCounter()
    src = KubeletPodSource(errors, tmp_path)
    clock = FakeClock()
    mon = Monitor("n1", errors, pods=src, clock=clock)
    caplog.set_level(logging.INFO, logger="mlfootprint.exporter.monitor")
    try:
        assert {s.source: s.up for s in mon.cycle().sources} == {"kubelet": True}
        kubelet.stop()
        (tmp_path / "kubelet.sock").unlink(missing_ok=True)
        clock.advance(1.0)
        assert {s.source: s.up for s in mon.cycle().sources} == {"kubelet": False}
        clock.advance(1.0)
        mon.cycle()  # still down: logged once, not every interval
        kubelet.start()
        clock.advance(1.0)
        assert {s.source: s.up for s in mon.cycle().sources} == {"kubelet": True}
    finally:
        src.close()
        kubelet.stop()
    messages = [(r.getMessage(), getattr(r, "source", None)) for r in caplog.records]
    assert messages == [("source has no data", "kubelet"), ("source recovered", "kubelet")]
    assert caplog.records[-1].levelno >= logging.INFO
