"""Progress bars (rich, the library that also prints ladder's tables) for the long waits: a sweep's rungs, a fit's
bootstrap. Drawn on stderr when it is a terminal; logs, pipes and CI get none."""

from __future__ import annotations


def terminal():
    """Where bars are drawn: stderr, shown only when it is a terminal (rich's own test; tests hand it a screen)."""
    from rich.console import Console
    return Console(stderr=True)


class Bar:
    """One bar with a count, an ETA and a status line. `advance(n)` counts up, `set(completed, status)` jumps;
    both do nothing where there is no terminal (`shown` is False)."""

    def __init__(self, total: float, description: str, unit: str = "it", unit_scale: bool = False,
                 enabled: bool = True, initial: float = 0):
        self.total, self.unit, self.unit_scale, self.completed = float(total), unit, unit_scale, float(initial)
        console = terminal() if enabled else None
        self.shown = console is not None and console.is_terminal
        if not self.shown:
            return
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
        self._progress = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[count]}"),
                                  TimeRemainingColumn(), TextColumn("{task.fields[status]}"), console=console,
                                  transient=True)
        self._task = self._progress.add_task(description, total=self.total, completed=self.completed,
                                             count=self._count(), status="")
        self._progress.start()

    def _count(self) -> str:
        form = ".3g" if self.unit_scale else "g"
        return f"{self.completed:{form}}/{self.total:{form}} {self.unit}"

    def advance(self, n: float = 1, status: str | None = None) -> None:
        self.set(self.completed + n, status)

    def set(self, completed: float, status: str | None = None) -> None:
        if not self.shown:
            return
        self.completed = float(completed)
        fields = {"count": self._count(), **({"status": status} if status is not None else {})}
        self._progress.update(self._task, completed=self.completed, **fields)

    def close(self) -> None:
        if self.shown:
            self._progress.stop()
            self.shown = False

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def bar(total: float, description: str, unit: str = "it", unit_scale: bool = False, enabled: bool = True,
        initial: float = 0) -> Bar:
    return Bar(total, description, unit, unit_scale, enabled, initial)


def each(iterable, total: int, description: str, unit: str = "it"):
    """`iterable`, with a bar counting its items (on a terminal)."""
    with Bar(total, description, unit) as shown:
        for item in iterable:
            yield item
            shown.advance()
