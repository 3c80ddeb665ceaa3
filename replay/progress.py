"""The live progress line of a replay run: done of planned, ETA, errors and retries so far."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from tracedrop.replay.runner import RunTally


class LiveProgress:
    """A rich progress bar on stderr, fed with the runner's tally."""

    def __init__(self, total: int, console: Console | None = None) -> None:
        self.progress = Progress(
            TextColumn("replay"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[status]}"),
            console=console or Console(stderr=True),
            transient=False,
        )
        self.task = self.progress.add_task("calls", total=total, status="")

    def update(self, tally: RunTally) -> None:
        retries = sum(tally.retries.values())
        causes = ", ".join(f"{kind} {count}" for kind, count in sorted(tally.retries.items()))
        status = f"errors {sum(tally.errors.values())}  retries {retries}" + (f" ({causes})" if causes else "")
        self.progress.update(self.task, completed=tally.finished, status=status)

    def __enter__(self) -> LiveProgress:
        self.progress.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.progress.stop()
