"""A real Prometheus (Debian's `prometheus`, installed by hack/tools/30-prometheus.sh) for tests.

Loopback only, a temp TSDB, bounded waits; a missing binary fails the test (never skips).
"""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Self

import pytest

from mlfootprint.devcluster.cluster import free_port


def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if not found:
        pytest.fail("prometheus not found: run `bash hack/tools/30-prometheus.sh` (make tools)", pytrace=False)
    return found


class RealPrometheus:
    """`with RealPrometheus(tmp_path, config_yaml) as prom:` -> `prom.url` answers once ready.

    The process's life (start, readiness poll, log tail, stop) is shared with other
    Prometheus-compatible servers (tests/victoriametrics_server.py): a subclass names itself,
    its readiness path and config file, and gives its command line in :meth:`argv`.
    """

    NAME = "Prometheus"
    READY_PATH = "/-/ready"
    CONFIG_NAME = "prometheus.yml"

    def __init__(self, workdir: Path, config_yaml: str, *, ready_timeout_s: float = 30.0) -> None:
        self.workdir = workdir
        self.config = workdir / self.CONFIG_NAME
        self.config.write_text(config_yaml)
        self.log_path = workdir / f"{self.NAME.lower()}.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._ready_timeout_s = ready_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None

    def argv(self) -> list[str]:
        return [prometheus_binary(), f"--config.file={self.config}",
                f"--storage.tsdb.path={self.workdir / 'tsdb'}", f"--web.listen-address=127.0.0.1:{self.port}"]

    def log_tail(self, chars: int = 2000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def assert_running(self) -> None:
        assert self._proc is not None and self._proc.poll() is None, f"{self.NAME} exited: {self.log_tail()}"

    def start(self) -> str:
        with open(self.log_path, "wb") as log:
            self._proc = subprocess.Popen(self.argv(), stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + self._ready_timeout_s
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + self.READY_PATH, timeout=1) as r:
                    if r.status == 200:
                        return self.url
            except OSError:
                pass
            self.assert_running()
            time.sleep(0.2)
        self.stop()
        raise AssertionError(f"{self.NAME} not ready within {self._ready_timeout_s:.0f} s: {self.log_tail()}")

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._proc.kill()
        self._proc = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
