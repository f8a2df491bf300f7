"""``lossopt check-grad``: check a hand-derived gradient from the command line.

::

    lossopt check-grad my_losses.py:bce my_losses.py:bce_grad \\
        --arg y_true=labels01:8 --arg y_pred=probs:8 --wrt y_pred

LOSS and GRAD are ``FILE.py:FUNCTION`` (or ``package.module:FUNCTION``). Each ``--arg`` draws
one positional argument, in the functions' parameter order, as ``NAME=KIND:SHAPE`` (or
``NAME=KIND:PARAM:SHAPE`` for the kinds that take a parameter). SHAPE is ``8``, ``8,3`` (or
``8x3``), or ``()`` for a scalar. The draw is reproducible (``--seed``) and lands well inside
each kind's domain (probabilities in [0.05, 0.95], positives in [0.2, 5]).

Exit status: 0 when the gradient is correct, 1 when it is wrong (the report says how), 2 on bad
usage (unknown file or function, bad ``--arg`` spec, a function that fails at the drawn point).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import importlib.util
import inspect
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["KINDS", "UsageError", "add_parser", "draw", "parse_arg_spec", "run"]

# kind -> (takes a parameter, description)
KINDS: dict[str, tuple[bool, str]] = {
    "normal": (False, "standard normal values"),
    "uniform": (False, "uniform in [0, 1)"),
    "positive": (False, "positive values, exp(N(0, 0.5**2)): about [0.2, 5]"),
    "probs": (False, "probabilities, uniform in [0.05, 0.95]"),
    "simplex": (False, "rows on the probability simplex (softmax of normals, last axis)"),
    "labels01": (False, "binary labels 0.0 / 1.0"),
    "labels_pm1": (False, "binary labels -1.0 / +1.0"),
    "onehot": (True, "onehot:K: one-hot float rows of K classes; shape SHAPE + (K,)"),
    "ints": (True, "ints:K: integer class ids in [0, K)"),
    "const": (True, "const:V: every entry equal to V (a hyperparameter, say)"),
}


class UsageError(ValueError):
    """Bad command-line usage (exit status 2)."""


def _parse_shape(text: str, spec: str) -> tuple[int, ...]:
    text = text.strip()
    if text in ("()", "", "scalar"):
        return ()
    parts = re.split(r"[,x]", text.strip("()"))
    try:
        shape = tuple(int(p) for p in parts if p.strip() != "")
    except ValueError:
        raise UsageError(
            f"bad shape {text!r} in --arg {spec!r}: expected e.g. 8, 8,3 or ()"
        ) from None
    if not shape or any(d < 0 for d in shape):
        raise UsageError(f"bad shape {text!r} in --arg {spec!r}: dimensions must be >= 0")
    return shape


def parse_arg_spec(spec: str) -> tuple[str, str, str | None, tuple[int, ...]]:
    """``"NAME=KIND[:PARAM]:SHAPE"`` -> ``(name, kind, param, shape)``.

    Raises:
        UsageError: with a message naming the spec and what was expected.

    Example:
        >>> parse_arg_spec("y=onehot:3:8")
        ('y', 'onehot', '3', (8,))
        >>> parse_arg_spec("p=probs:4,2")
        ('p', 'probs', None, (4, 2))
    """
    name, sep, rest = spec.partition("=")
    name = name.strip()
    if not sep or not name.isidentifier():
        raise UsageError(f"bad --arg {spec!r}: expected NAME=KIND:SHAPE, e.g. y_pred=probs:8")
    parts = rest.split(":")
    kind = parts[0].strip()
    if kind not in KINDS:
        raise UsageError(f"unknown kind {kind!r} in --arg {spec!r}; known kinds: "
                         f"{', '.join(KINDS)}")
    takes_param = KINDS[kind][0]
    expected = 3 if takes_param else 2
    if len(parts) != expected:
        form = f"{kind}:PARAM:SHAPE" if takes_param else f"{kind}:SHAPE"
        raise UsageError(f"bad --arg {spec!r}: expected NAME={form}")
    param = parts[1].strip() if takes_param else None
    return name, kind, param, _parse_shape(parts[-1], spec)


def draw(kind: str, param: str | None, shape: tuple[int, ...],
         rng: np.random.Generator, spec: str = "") -> np.ndarray:
    """A random array of ``kind`` (see :data:`KINDS`) and ``shape``, float64 or int64.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> draw("onehot", "3", (4,), rng).sum(axis=-1)
        array([1., 1., 1., 1.])
    """
    if kind in ("onehot", "ints"):
        try:
            k = int(param or "")
        except ValueError:
            raise UsageError(f"bad class count {param!r} in --arg {spec!r}: expected an int "
                             ">= 1") from None
        if k < 1:
            raise UsageError(f"bad class count {k} in --arg {spec!r}: expected an int >= 1")
        ids = rng.integers(0, k, size=shape)
        return ids.astype(np.int64) if kind == "ints" else np.eye(k)[ids]
    if kind == "const":
        try:
            value = float(param or "")
        except ValueError:
            raise UsageError(f"bad value {param!r} in --arg {spec!r}: expected a number") from None
        return np.full(shape, value)
    if kind == "normal":
        return rng.standard_normal(shape)
    if kind == "uniform":
        return rng.uniform(0.0, 1.0, shape)
    if kind == "positive":
        return np.exp(0.5 * rng.standard_normal(shape))
    if kind == "probs":
        return rng.uniform(0.05, 0.95, shape)
    if kind == "simplex":
        if not shape:
            raise UsageError(f"--arg {spec!r}: simplex needs at least one axis")
        z = rng.standard_normal(shape)
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    if kind == "labels01":
        return rng.integers(0, 2, size=shape).astype(np.float64)
    if kind == "labels_pm1":
        return 2.0 * rng.integers(0, 2, size=shape) - 1.0
    raise UsageError(f"unknown kind {kind!r}")  # pragma: no cover - parse_arg_spec checks


def _load_module(location: str, what: str, cache: dict[str, Any]) -> Any:
    if location in cache:
        return cache[location]
    path = Path(location)
    if location.endswith(".py") or path.exists():
        if not path.is_file():
            raise UsageError(f"{what}: no such file {location!r}")
        digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]
        spec = importlib.util.spec_from_file_location(f"_lossopt_check_grad_{digest}", path)
        if spec is None or spec.loader is None:  # pragma: no cover - .py files always load
            raise UsageError(f"{what}: cannot import {location!r}")
        module = importlib.util.module_from_spec(spec)
        sys.path.insert(0, str(path.resolve().parent))
        try:
            spec.loader.exec_module(module)
        except Exception as err:
            raise UsageError(f"{what}: importing {location!r} failed: "
                             f"{type(err).__name__}: {err}") from err
        finally:
            sys.path.remove(str(path.resolve().parent))
    else:
        try:
            module = importlib.import_module(location)
        except Exception as err:
            raise UsageError(f"{what}: no file or module {location!r} "
                             f"({type(err).__name__}: {err})") from err
    cache[location] = module
    return module


def _load_function(target: str, what: str, cache: dict[str, Any]) -> Callable[..., Any]:
    location, sep, name = target.rpartition(":")
    if not sep or not location or not name:
        raise UsageError(f"{what} must be FILE.py:FUNCTION or module:FUNCTION; got {target!r}")
    module = _load_module(location, what, cache)
    func = getattr(module, name, None)
    if func is None:
        public = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
        raise UsageError(f"{what}: {location!r} has no function {name!r}; it defines: "
                         f"{', '.join(public) or 'none'}")
    if not callable(func):
        raise UsageError(f"{what}: {location}:{name} is not callable")
    return func


def _check_order(func: Callable[..., Any], names: list[str], label: str) -> None:
    """Refuse a silent swap: --arg names that are the function's parameters in another order."""
    try:
        params = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError):
        return
    positional = [p.name for p in params if p.kind in (inspect.Parameter.POSITIONAL_ONLY,
                                                      inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    head = positional[: len(names)]
    if head != names and sorted(head) == sorted(names):
        raise UsageError(f"the --arg order ({', '.join(names)}) differs from {label}'s parameter "
                         f"order ({', '.join(head)}): give the --arg options in that order")


def run(args: argparse.Namespace) -> int:
    """Handler of ``lossopt check-grad``; returns the exit status."""
    from lossopt.gradcheck import check_gradient, check_hessian

    try:
        cache: dict[str, Any] = {}
        f = _load_function(args.loss, "LOSS", cache)
        g = _load_function(args.grad, "GRAD", cache)
        if not args.arg:
            raise UsageError("no --arg given: describe every argument as NAME=KIND:SHAPE")
        specs = [parse_arg_spec(s) for s in args.arg]
        names = [s[0] for s in specs]
        if len(set(names)) != len(names):
            raise UsageError(f"duplicate --arg names: {', '.join(names)}")
        _check_order(f, names, "LOSS")
        _check_order(g, names, "GRAD")
        if args.wrt is not None:
            if args.wrt not in names:
                raise UsageError(f"--wrt {args.wrt!r} is not one of the --arg names "
                                 f"({', '.join(names)})")
            argnum = names.index(args.wrt)
        else:
            argnum = args.argnum
            if not 0 <= argnum < len(names):
                raise UsageError(f"--argnum {argnum} out of range for {len(names)} arguments")
        rng = np.random.default_rng(args.seed)
        values = [draw(kind, param, shape, rng, spec)
                  for (_, kind, param, shape), spec in zip(specs, args.arg, strict=True)]
        if values[argnum].dtype.kind != "f":
            raise UsageError(f"cannot differentiate with respect to {names[argnum]!r}: its kind "
                             f"{specs[argnum][1]!r} is integer-valued")
        check = check_hessian if args.hessian else check_gradient
        report = check(f, g, *values, argnum=argnum, reference=args.reference, rtol=args.rtol,
                       atol=args.atol)
    except UsageError as err:
        print(f"lossopt check-grad: error: {err}", file=sys.stderr)
        return 2
    except (TypeError, ValueError) as err:
        print(f"lossopt check-grad: error: {err}", file=sys.stderr)
        return 2
    drawn = ", ".join(f"{name}={spec.partition('=')[2]} {tuple(v.shape)}"
                      for name, spec, v in zip(names, args.arg, values, strict=True))
    print(f"point (seed {args.seed}): {drawn}")
    print(f"{args.grad} checked against {args.loss} with respect to {names[argnum]}")
    print(report)
    return 0 if report.ok else 1


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``check-grad`` subcommand to ``lossopt``'s subparsers."""
    kinds = "; ".join(f"{k}: {d}" if not p else d for k, (p, d) in KINDS.items())
    p = subparsers.add_parser(
        "check-grad",
        help="check a hand-derived gradient (or Hessian) and explain what is wrong",
        description=(
            "Check GRAD against the gradient of LOSS at a random point, with autodiff when LOSS "
            "is JAX-traceable and finite differences otherwise; print the report. Exit status: "
            "0 correct, 1 wrong, 2 bad usage."
        ),
        epilog=f"KINDs: {kinds}.",
    )
    p.add_argument("loss", metavar="LOSS", help="FILE.py:FUNCTION (or module:FUNCTION) -> scalar")
    p.add_argument("grad", metavar="GRAD",
                   help="FILE.py:FUNCTION returning the hand gradient (Hessian with --hessian)")
    p.add_argument("--arg", action="append", default=[], metavar="NAME=KIND:SHAPE",
                   help="one argument, in parameter order, e.g. y_pred=probs:8, y=onehot:3:8")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--wrt", metavar="NAME", help="differentiate with respect to this --arg")
    which.add_argument("--argnum", type=int, default=0,
                       help="differentiate with respect to this argument position (default 0)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random point (default 0)")
    p.add_argument("--reference", choices=("auto", "autodiff", "finite_difference"),
                   default="auto", help="reference derivative (default auto)")
    p.add_argument("--rtol", type=float, default=1e-7, help="relative tolerance (default 1e-7)")
    p.add_argument("--atol", type=float, default=None,
                   help="absolute tolerance (default 1e-10 x the largest reference entry)")
    p.add_argument("--hessian", action="store_true",
                   help="GRAD returns the Hessian, an (n, n) matrix over the flattened argument")
    p.set_defaults(handler=run)
    return p
