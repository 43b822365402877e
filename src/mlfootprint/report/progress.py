"""Progress on long reads: a rich progress bar on stderr, or nothing.

Off when stderr is not a terminal or with ``--quiet``; the sources only see the small
:class:`Tasks` interface, so they do not depend on rich.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, TextIO

__all__ = ["NullTasks", "Task", "Tasks", "progress"]


class Task(Protocol):
    def advance(self, n: int = 1) -> None: ...
    def total(self, n: int | None) -> None: ...


class Tasks(Protocol):
    def task(self, description: str, total: int | None = None) -> Task: ...


class _NullTask:
    def advance(self, n: int = 1) -> None:
        pass

    def total(self, n: int | None) -> None:
        pass


class NullTasks:
    """No progress display."""

    def task(self, description: str, total: int | None = None) -> Task:
        return _NullTask()


@dataclass
class _RichTask:
    bar: Any
    task_id: Any

    def advance(self, n: int = 1) -> None:
        self.bar.advance(self.task_id, n)

    def total(self, n: int | None) -> None:
        self.bar.update(self.task_id, total=n)


@dataclass
class _RichTasks:
    bar: Any

    def task(self, description: str, total: int | None = None) -> Task:
        return _RichTask(self.bar, self.bar.add_task(description, total=total))


@contextmanager
def progress(stream: TextIO, *, quiet: bool = False) -> Iterator[Tasks]:
    """Yield a :class:`Tasks`; a rich bar on ``stream`` only when it is a TTY and not quiet."""
    if quiet or not (hasattr(stream, "isatty") and stream.isatty()):
        yield NullTasks()
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    bar = Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=Console(file=stream), transient=True,
    )
    with bar:
        yield _RichTasks(bar)
