"""The ``lossopt`` command.

Subcommands:

* ``lossopt losses [--task TASK] [--json]``: the loss catalogue as a table.

Exit status: 0 on success, 1 when the requested check fails, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def _cmd_losses(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from lossopt import losses

    entries = list(losses.catalog(args.task))
    if args.json:
        rows = [
            {
                "name": e.name,
                "task": e.task,
                "input_kind": e.input_kind,
                "convex": e.convex,
                "smooth": e.smooth,
                "robust": e.robust,
                "probabilistic": e.probabilistic,
                "hyperparameters": {k: repr(v) for k, v in e.hyperparameters.items()},
                "reference": e.reference,
            }
            for e in entries
        ]
        print(json.dumps(rows, indent=2))
        return 0
    table = Table(title=f"lossopt losses ({len(entries)})")
    for column in ("name", "task", "input", "convex", "smooth", "robust", "probabilistic",
                   "hyperparameters"):
        table.add_column(column, no_wrap=column in ("name", "task"))
    for e in entries:
        hyper = ", ".join(f"{k}={v!r}" for k, v in e.hyperparameters.items())
        table.add_row(e.name, e.task, e.input_kind, _yes_no(e.convex), _yes_no(e.smooth),
                      _yes_no(e.robust), _yes_no(e.probabilistic), hyper)
    Console(width=max(120, Console().width)).print(table)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``lossopt`` command."""
    from lossopt.losses._registry import TASKS

    parser = argparse.ArgumentParser(
        prog="lossopt",
        description="Loss functions and the solvers that minimise them, in JAX.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p_losses = sub.add_parser("losses", help="list the loss catalogue with its properties")
    p_losses.add_argument("--task", choices=TASKS, help="only the losses of this task")
    p_losses.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p_losses.set_defaults(handler=_cmd_losses)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lossopt`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return 2
    return int(args.handler(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
