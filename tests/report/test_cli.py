"""`mlfootprint report` command line: periods, selectors, every bad-input path (exit 2
naming the flag), snapshot export round trip, progress bar switching."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlfootprint.cli import main
from mlfootprint.report.model import SNAPSHOT_FORMAT, SnapshotError, read_snapshot
from mlfootprint.report.period import UsageError, parse_period
from mlfootprint.report.progress import NullTasks, progress
from mlfootprint.report.selectors import parse_selector
from tests.report.conftest import NOW

T = 1793491200.0  # 2026-11-01T00:00:00Z


def test_periods() -> None:
    nov = parse_period(month="2026-11")
    assert (nov.since_s, nov.until_s, nov.label) == (T, T + 30 * 86400, "2026-11")
    dec = parse_period(month="2026-12")
    assert dec.until_s == T + 61 * 86400  # 2027-01-01
    # a date-only --until includes that day; naive times are UTC; offsets honoured
    p = parse_period("2026-11-01", "2026-11-01")
    assert (p.since_s, p.until_s) == (T, T + 86400)
    p = parse_period("2026-11-01T06:00", "2026-11-01T08:00:00+01:00")
    assert (p.since_s, p.until_s) == (T + 6 * 3600, T + 7 * 3600)  # 08:00+01:00 = 07:00Z
    assert not parse_period().bounded
    assert parse_period(since="2026-11-01").until_s is None


def test_equal_since_until_is_rejected() -> None:
    with pytest.raises(UsageError) as err:
        parse_period("2026-11-01T06:00Z", "2026-11-01T06:00Z")
    assert err.value.flag == "--until"


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--month", "2026-13"], "--month"),
        (["--month", "2026-1"], "--month"),
        (["--month", "november"], "--month"),
        (["--month", "2026-11", "--since", "2026-11-01"], "--month"),
        (["--month", "2026-11", "--until", "2026-11-20"], "--month"),
        (["--since", "2026-11-05", "--until", "2026-11-01"], "--until"),
        (["--since", "yesterday"], "--since"),
        (["--until", "2026-02-30"], "--until"),
        (["-l", "team==("], "--selector"),
        (["-l", "team=a b"], "--selector"),
        (["-l", ""], "--selector"),
        (["--selector=-bad-key=x"], "--selector"),
        (["-l", "team in ()"], "--selector"),
        (["-l", "team=" + "v" * 64], "--selector"),
        (["--group-by", "team"], "--group-by"),
        (["--group-by", "label:"], "--group-by"),
        (["--group-by", "namespace,namespace"], "--group-by"),
        (["-n", "Bad_NS"], "--namespace"),
        (["-n", "a", "-A"], "--all-namespaces"),
        (["--phase", "finetune"], "--phase"),
        (["--model", " "], "--model"),
        (["--price-per-kwh", "-1"], "--price-per-kwh"),
        (["--price-per-kwh", "nan"], "--price-per-kwh"),
        (["--carbon-price-per-tonne", "-5"], "--carbon-price-per-tonne"),
        (["--view", "lifecycle"], "--view"),
        (["--width", "10"], "--width"),
        (["--now", "soon"], "--now"),
        (["--context", "kind-x"], "--context"),
        (["--kubeconfig", "/tmp/kc"], "--kubeconfig"),
        (["--prometheus-url", "prometheus:9090", "--month", "2026-11"], "--prometheus-url"),
        (["--prometheus-url", "http://localhost:9090"], "--prometheus-url"),
    ],
)
def test_bad_input_exits_2_naming_the_flag(args: list[str], flag: str, snapshot_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--from-file", str(snapshot_path), "-q", *args]) == 2
    err = capsys.readouterr().err
    assert f"error: {flag}:" in err, err


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("not json", "is not JSON"),
        ('{"format": "something-else", "version": 1}', "not an mlfootprint report snapshot"),
        (f'{{"format": "{SNAPSHOT_FORMAT}", "version": 99, "runs": []}}', "version 99 is not supported"),
        (f'{{"format": "{SNAPSHOT_FORMAT}", "version": 1, "runs": {{}}}}', "must be lists"),
        (f'{{"format": "{SNAPSHOT_FORMAT}", "version": 1, "runs": [{{"kind": "Pod"}}]}}', "runs[0].kind"),
        (f'{{"format": "{SNAPSHOT_FORMAT}", "version": 1, "runs": [{{"kind": "TrainingRun", "phase": "x"}}]}}', "runs[0].phase"),
        (f'{{"format": "{SNAPSHOT_FORMAT}", "version": 1, "runs": [{{"kind": "TrainingRun", "gpuHours": "3"}}]}}', "runs[0].gpuHours"),
        (f'{{"format": "{SNAPSHOT_FORMAT}", "version": 1, "runs": [{{"kind": "TrainingRun", "startTime": "then"}}]}}', "runs[0]"),
    ],
)
def test_bad_snapshot_files(tmp_path: Path, content: str, reason: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s.json"
    path.write_text(content)
    with pytest.raises(SnapshotError, match=reason.replace("[", r"\[").replace("]", r"\]")):
        read_snapshot(path)
    assert main(["report", "--from-file", str(path), "-q"]) == 2
    assert "error: --from-file:" in capsys.readouterr().err


def test_missing_snapshot(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--from-file", "/nonexistent/s.json", "-q"]) == 2
    assert "--from-file: cannot read" in capsys.readouterr().err


def test_selector_grammar() -> None:
    sel = parse_selector("team=nlp, env!=dev,tier in (a, b),!legacy,gpu,example.com/owner==me")
    assert sel.matches({"team": "nlp", "tier": "a", "gpu": "1", "example.com/owner": "me"})
    assert not sel.matches({"team": "nlp", "tier": "c", "gpu": "1", "example.com/owner": "me"})
    assert not sel.matches({"team": "nlp", "tier": "a", "gpu": "1", "example.com/owner": "me", "legacy": ""})
    assert parse_selector("x notin (1)").matches({})


def test_export_round_trip(tmp_path: Path, snapshot_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    exported = tmp_path / "again.json"
    assert main(["report", "--from-file", str(snapshot_path), "--export", str(exported), "--now", NOW, "-q"]) == 0
    assert capsys.readouterr().out == ""  # export alone prints nothing
    doc = json.loads(exported.read_text())
    assert doc["format"] == SNAPSHOT_FORMAT and doc["version"] == 1
    assert len(doc["runs"]) == 5 and len(doc["idle"]) == 2

    def as_json(path: Path) -> dict:
        assert main(["report", "--from-file", str(path), "--month", "2026-11", "--now", NOW, "-f", "json", "-q"]) == 0
        out = json.loads(capsys.readouterr().out)
        out.pop("source")
        return out

    assert as_json(exported) == as_json(snapshot_path)


def test_output_file_format_from_extension(tmp_path: Path, snapshot_path: Path) -> None:
    for ext, marker in ((".csv", "namespace,runs,"), (".md", "# mlfootprint report"), (".html", "<!DOCTYPE html>"),
                        (".json", '"format": "mlfootprint.io/report"')):
        out = tmp_path / f"r{ext}"
        assert main(["report", "--from-file", str(snapshot_path), "-o", str(out), "--now", NOW, "-q"]) == 0
        assert marker in out.read_text()


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_only_on_a_tty_and_not_quiet() -> None:
    with progress(io.StringIO()) as tasks:
        assert isinstance(tasks, NullTasks)
    with progress(_Tty(), quiet=True) as tasks:
        assert isinstance(tasks, NullTasks)
    stream = _Tty()
    with progress(stream) as tasks:
        assert not isinstance(tasks, NullTasks)
        task = tasks.task("reading", total=10)
        task.advance(10)


def test_progress_shown_while_reading_a_snapshot(snapshot_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    import mlfootprint.report.cli as cli

    seen: list[str] = []
    real = cli.progress

    def spy(stream, *, quiet=False):  # type: ignore[no-untyped-def]
        tty = _Tty()
        seen.append("quiet" if quiet else "shown")
        return real(tty, quiet=quiet)

    monkeypatch.setattr(cli, "progress", spy)
    assert main(["report", "--from-file", str(snapshot_path), "--now", NOW, "-f", "csv"]) == 0
    assert main(["report", "--from-file", str(snapshot_path), "--now", NOW, "-f", "csv", "--quiet"]) == 0
    assert seen == ["shown", "quiet"]
    assert capsys.readouterr().out.startswith("namespace,runs")


def test_no_color_on_a_terminal_and_logging_to_stderr(tmp_path: Path) -> None:
    """NO_COLOR (no-color.org) is honoured on a terminal; log lines go to stderr, configured."""
    import pty

    snapshot = Path(__file__).parent / "fixtures" / "snapshot.json"
    for env_no_color, expect_escapes in (("", True), ("1", False)):
        master, slave = pty.openpty()
        env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"} | {"COLUMNS": "200"}
        if env_no_color:
            env["NO_COLOR"] = env_no_color
        proc = subprocess.run([sys.executable, "-m", "mlfootprint", "report", "--from-file", str(snapshot), "-q"],
                              stdout=slave, stderr=subprocess.PIPE, env=env, timeout=60, check=True)
        os.close(slave)
        chunks = []
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        os.close(master)
        text = b"".join(chunks).decode()
        assert ("\x1b[" in text) is expect_escapes, (env_no_color, text[:200])
        assert proc.returncode == 0
    export = tmp_path / "snap.json"
    proc = subprocess.run([sys.executable, "-m", "mlfootprint", "report", "--from-file", str(snapshot), "-q",
                           "--export", str(export), "--log-level", "info"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "snapshot written" in proc.stderr and proc.stdout == ""
