"""Progress reports of long runs: :class:`Progress` and the rich progress bar."""

from __future__ import annotations

import dataclasses

__all__ = ["NoBar", "Progress", "RichBar"]


@dataclasses.dataclass(frozen=True)
class Progress:
    """What a ``progress`` callback receives after every chunk of iterations.

    Attributes:
        iteration: iterations completed so far.
        max_iters: the iteration cap.
        value, grad_norm: the loss and the gradient's max-abs norm at the current iterate.
        elapsed: seconds spent iterating in this call (compilation excluded).
        rate: iterations per second in this call.
        chunks: chunks completed in this call.
        done: the run has stopped (this is the last report).
    """

    iteration: int
    max_iters: int
    value: float
    grad_norm: float
    elapsed: float
    rate: float
    chunks: int
    done: bool


class RichBar:
    """A rich progress bar on stderr: iterations, loss, gradient norm, it/s, time."""

    def __init__(self, max_iters: int, description: str):
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._bar = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}  |g| {task.fields[gnorm]}  "
                       "{task.fields[rate]} it/s"),
            TimeElapsedColumn(), TimeRemainingColumn(),
            console=Console(stderr=True), transient=False,
        )
        self._task = self._bar.add_task(description, total=max_iters, loss="-", gnorm="-",
                                        rate="-")

    def __enter__(self):
        self._bar.__enter__()
        return self

    def __exit__(self, *exc):
        return self._bar.__exit__(*exc)

    def __call__(self, p: Progress) -> None:
        # A run that stops early fills the bar: its total becomes the iterations it took.
        total = p.iteration if p.done else p.max_iters
        self._bar.update(self._task, completed=p.iteration, total=total, loss=f"{p.value:.6g}",
                         gnorm=f"{p.grad_norm:.3g}", rate=f"{p.rate:,.0f}")


class NoBar:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
