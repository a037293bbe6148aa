"""Progress bars (rich, the library that also prints ladder's tables) for the long waits: a sweep's rungs, a fit's
bootstrap, a rung's steps. Drawn on stderr when it is a terminal; logs, pipes and CI get none. Bars open at once
(a sweep's and, in its process, a rung's) share one display, stacked."""

from __future__ import annotations

import sys
import threading
import time

_lock = threading.Lock()
_display = None  # the rich Progress every open bar draws in, while any is open
_open = 0


def terminal():
    """Where bars are drawn: a console on stderr, or None when stderr is no terminal (whatever FORCE_COLOR says,
    a Slurm log gets no bar). Tests hand it a screen of their own."""
    if not sys.stderr.isatty():
        return None
    from rich.console import Console
    return Console(stderr=True)


def _start(console):
    global _display, _open
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
    with _lock:
        if _display is None:
            # stdout printed meanwhile goes above the bars only when it is the same terminal; a redirected stdout
            # keeps its lines (rich would send them to stderr)
            _display = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[count]}"),
                                TimeRemainingColumn(), TextColumn("{task.fields[status]}"), console=console,
                                transient=True, redirect_stdout=sys.stdout.isatty())
            _display.start()
        _open += 1
        return _display


def _stop(task) -> None:
    global _display, _open
    with _lock:
        _display.refresh()  # the bar's last count drawn before it goes
        _display.remove_task(task)
        _open -= 1
        if _open == 0:
            _display.stop()
            _display = None


class Bar:
    """One bar with a count, an ETA and a status line. `advance(n)` counts up, `set(completed, status)` jumps;
    both do nothing where there is no terminal (`shown` is False)."""

    def __init__(self, total: float, description: str, unit: str = "it", unit_scale: bool = False,
                 enabled: bool = True, initial: float = 0):
        self.total, self.unit, self.unit_scale, self.completed = float(total), unit, unit_scale, float(initial)
        console = terminal() if enabled else None
        self.shown = console is not None and console.is_terminal
        if self.shown:
            self._display = _start(console)
            self._task = self._display.add_task(description, total=self.total, completed=self.completed,
                                                count=self._count(), status="")

    def _count(self) -> str:
        form = ".3g" if self.unit_scale else ",.0f"
        return f"{self.completed:{form}}/{self.total:{form}} {self.unit}"

    def advance(self, n: float = 1, status: str | None = None) -> None:
        self.set(self.completed + n, status)

    def set(self, completed: float, status: str | None = None) -> None:
        if not self.shown:
            return
        self.completed = float(completed)
        fields = {"count": self._count(), **({"status": status} if status is not None else {})}
        self._display.update(self._task, completed=self.completed, **fields)

    def close(self) -> None:
        if self.shown:
            self.shown = False
            _stop(self._task)

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


def stamp() -> str:
    """The time a log line starts with: a Slurm log is read hours later, beside other jobs' logs."""
    return time.strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: float | None) -> str:
    """1h02m, 3m05s, 42s, 2d03h: an ETA or an elapsed time as a person reads it; ? when unknown."""
    if seconds is None or seconds != seconds or seconds in (float("inf"), float("-inf")):
        return "?"
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours >= 24:
        return f"{hours // 24}d{hours % 24:02d}h"
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
