"""Detached demo processes: start them in their own session, record them, stop them.

Every process the demo starts (exporters, operator, simulated serving metrics) runs in its
own session (pid == process-group id) with stdout/stderr in a log file, so it outlives
``make demo``. Its pid, argv and kernel start time are recorded in ``<state>/demo.json``;
``down`` signals a process group only while its leader is still the recorded process (same
start time and command line), so a recycled pid is never hit.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mlfootprint.devcluster.cluster import set_pdeathsig

log = logging.getLogger(__name__)


@dataclass
class ProcRecord:
    """One detached process."""

    name: str
    pid: int
    argv: list[str]
    log: str
    start_ticks: int
    url: str | None = None


@dataclass
class DemoState:
    """What ``up`` started (``<state>/demo.json``); read by ``down`` and ``status``."""

    cluster_dir: str = ""
    kubeconfig: str = ""
    namespace: str = ""
    short: bool = False
    time_factor: float = 0.0
    processes: list[ProcRecord] = field(default_factory=list)
    urls: dict[str, str] = field(default_factory=dict)
    report_html: str = ""

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> DemoState:
        raw: dict[str, Any] = json.loads(path.read_text())
        procs = [ProcRecord(**p) for p in raw.pop("processes", [])]
        return cls(**raw, processes=procs)


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc/<pid>/stat field 22), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def is_running(rec: ProcRecord) -> bool:
    """True while the recorded process (same pid, start time and argv) is alive and not a zombie."""
    if start_ticks(rec.pid) != rec.start_ticks:
        return False
    try:
        cmdline = Path(f"/proc/{rec.pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return [c.decode(errors="replace") for c in cmdline if c] == rec.argv


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) pids whose process group is ``pgid``."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        if fields[0] not in ("Z", "X") and int(fields[2]) == pgid:
            out.append(int(entry.name))
    return out


def spawn(name: str, argv: Sequence[str], log_path: Path, env: dict[str, str] | None = None,
          url: str | None = None, *, die_with_parent: bool = False) -> ProcRecord:
    """Start ``argv`` detached (new session, stdin from /dev/null, output to ``log_path``).

    ``die_with_parent`` (tests): the kernel kills the process when the thread that started it
    exits, so nothing outlives a killed test run; spawn from the main thread then.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as out:
        popen = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, env=env, close_fds=True,
            preexec_fn=set_pdeathsig if die_with_parent and sys.platform == "linux" else None,  # noqa: PLW1509 - PR_SET_PDEATHSIG must be set in the child; it only calls prctl
        )
    ticks = None
    for _ in range(50):  # /proc/<pid>/cmdline is the child's only after exec
        ticks = start_ticks(popen.pid)
        cmd = Path(f"/proc/{popen.pid}/cmdline").read_bytes().split(b"\0") if ticks is not None else []
        if [c.decode(errors="replace") for c in cmd if c] == list(argv):
            break
        time.sleep(0.01)
    rec = ProcRecord(name, popen.pid, list(argv), str(log_path), ticks or 0, url)
    # The demo's `up` exits while the child runs on; forget the Popen so that no ResourceWarning
    # is raised and the child is not waited for (init reaps it after we exit).
    popen.returncode = 0
    log.info("started", extra={"component": name, "pid": popen.pid, "log": str(log_path), **({"url": url} if url else {})})
    return rec


def stop_all(records: Iterable[ProcRecord], timeout_s: float = 10.0) -> list[str]:
    """SIGTERM each recorded process group, SIGKILL what remains after ``timeout_s``.

    Returns the names of the processes that were running. Only groups whose leader is still
    the recorded process are signalled.
    """
    recs = [r for r in records if is_running(r)]
    for r in recs:
        _killpg(r.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(group_members(r.pid) for r in recs):
        _reap()
        time.sleep(0.05)
    for r in recs:
        if group_members(r.pid):
            log.warning("process ignored SIGTERM; killing", extra={"component": r.name, "pid": r.pid})
            _killpg(r.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and any(group_members(r.pid) for r in recs):
        _reap()
        time.sleep(0.05)
    return [r.name for r in recs]


def _killpg(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _reap() -> None:
    """Reap our own exited children (processes started by this very command), if any."""
    try:
        while True:
            pid, _ = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                return
    except ChildProcessError:
        return
