"""The compile policy: how hard XLA optimises a solver loop (``compile="auto"|"fast"|"optimized"``).

A solve on a small problem runs in about a millisecond once compiled, but XLA:CPU spends one
to four seconds compiling it at full optimisation: for the problems users start with, the
compiler is the whole wait. Four per-call XLA options cut that backend time about three-fold
(measured in ``experiments/benchmarks/RESULTS.md``) at the price of code that runs about two
to three times slower (1.7-3.4x measured on small solves):

- ``xla_backend_optimization_level=0``: LLVM's cheapest optimisation pipeline;
- ``xla_cpu_use_fusion_emitters=False``: XLA:CPU's classic kernel emitters, which compile each
  fusion faster than the newer MLIR ones;
- ``xla_cpu_parallel_codegen_split_count=1``: one LLVM module instead of pieces compiled in
  parallel; at level 0 the pieces' set-up costs more than the parallelism saves (a further
  0.6-0.8x of the fast compile, the same run time; ``experiments/benchmarks/RESULTS.md``).
- ``xla_disable_hlo_passes="while-loop-invariant-code-motion"``: XLA's HLO pass that hoists
  loop-invariant work out of ``while`` bodies, the costliest single HLO pass on solver loops
  (a quarter of the HLO optimisation of real_data.toml's L-BFGS program). Without it the fast
  compile of gradient descent, Newton, L-BFGS and optax's L-BFGS takes 0.68-0.82x the time,
  the shipped configs' programs 0.85x, and the run time is unchanged within noise on 500 x 10
  and 5,000 x 50 logistic regressions (a solver loop's invariants are a few scalars and
  broadcasts).

They change how the program is compiled, not what it computes: the same HLO operations run,
so results agree with the optimised program to floating-point reassociation (tested on the
known-answer table: same statuses, solutions within stated tolerances).

The modes:

- ``"optimized"``: XLA's defaults (what ``jax.jit`` does).
- ``"fast"``: the options above, on XLA:CPU. On other backends (GPU, TPU) it is the same as
  ``"optimized"``: the options are XLA:CPU's, and nothing was measured there.
- ``"auto"`` (the default): ``"fast"`` when the run is short next to the compile, else
  ``"optimized"``. The loop is traced and lowered once (JAX reuses that trace for the compile)
  and XLA's own cost analysis of the unoptimised program gives its floating-point operations
  and bytes accessed: one pass of the loop body plus the set-up around it. The run is then
  estimated pessimistically, as if every one of ``max_iters`` iterations ran (or, for a
  solver with an ``iteration_estimate`` -- Newton's 100 --, the smaller of the two):
  ``max_iters * max(flops / 1e10, bytes / 5e10)`` seconds (rates that optimised XLA:CPU code
  reached on a 2-core machine on logistic regressions from 500 x 10 to 50,000 x 200; the
  unoptimised program's byte count, taken before fusion, over-counts). When that estimate is
  at most 0.25 s, ``"fast"``, whose code may take up to three and a half times as long, costs
  at most about 0.6 s more run time and saves 0.5-2 s of compile; above it, ``"optimized"``, so a
  large problem never runs slower than with ``jax.jit``'s defaults. The choice is made once
  per compiled program (per static options and input shapes) and remembered.
  The mode of a program never changes within a process, so the same call always gives the
  same bits. The price: a small solve called thousands of times in a loop runs its slower
  fast-mode code every time (about 1-2 ms more per call on 500 x 10 problems); pass
  ``compile="optimized"`` there, or batch the calls with ``jax.vmap``/:func:`~lossopt.sweep`.
  A resumed run compiles in the mode its checkpoint was written with.
  On a backend other than the CPU, ``"auto"`` is ``"optimized"``.

Inside an outer ``jax.jit`` or ``jax.vmap`` the loop is part of the caller's program and is
compiled with the caller's options: ``compile`` then has no effect.
:func:`compile_choice` reports what ``"auto"`` would choose, and why.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from lossopt._collector import collector_paused

__all__ = [
    "COMPILE_MODES", "CompileChoice", "Entry", "check_mode", "compile_lowered", "fast_options",
    "iteration_bound",
]

COMPILE_MODES = ("auto", "fast", "optimized")

# "auto": the pessimistic run-time estimate below which the fast compile pays for itself.
FAST_BUDGET_S = 0.25
_FLOPS_PER_S = 1e10
_BUFFER_OVERCOUNT = 6  # bytes XLA's unoptimised cost counts per byte of trace buffer
_BYTES_PER_S = 5e10
_FAST_CANDIDATES = {
    "xla_backend_optimization_level": 0,
    "xla_cpu_use_fusion_emitters": False,
    "xla_cpu_parallel_codegen_split_count": 1,
    "xla_disable_hlo_passes": "while-loop-invariant-code-motion",
}


def check_mode(mode: Any) -> str:
    """Validate a ``compile=`` argument."""
    if not isinstance(mode, str) or mode not in COMPILE_MODES:
        raise ValueError(
            f"`compile` must be one of {list(COMPILE_MODES)}; got {mode!r}"
        )
    return mode


@functools.cache
def fast_options(platform: str) -> tuple[tuple[str, Any], ...]:
    """The fast-compile XLA options this jaxlib accepts on ``platform`` (empty off the CPU).

    The candidates are tried together on a one-line program (one compile, the common case),
    and one by one only if that fails, so an option that a future jaxlib drops is left out
    instead of failing every solve.
    """
    if platform != "cpu":
        return ()
    probe = jax.device_put(np.float32(0), jax.local_devices(backend="cpu")[0])
    lowered = jax.jit(lambda x: x + 1).lower(probe)
    try:
        lowered.compile(dict(_FAST_CANDIDATES))
        return tuple(_FAST_CANDIDATES.items())
    except Exception:  # one is unknown to this jaxlib (XLA: "No such compile option")
        pass
    accepted = []
    for name, value in _FAST_CANDIDATES.items():
        try:
            lowered.compile({name: value})
        except Exception:
            continue
        accepted.append((name, value))
    return tuple(accepted)


@dataclasses.dataclass(frozen=True)
class CompileChoice:
    """How a solver loop is (or would be) compiled, and why.

    Attributes:
        mode: ``"fast"`` or ``"optimized"``: what is compiled.
        requested: the ``compile=`` argument (``"auto"``, ``"fast"`` or ``"optimized"``).
        platform: the backend the loop runs on (``"cpu"``, ``"gpu"``, ...).
        flops, bytes_accessed: XLA's cost analysis of the unoptimised program (one pass of
            the loop body and the set-up around it); None when not computed.
        estimated_run_s: ``max_iters`` times the cost at the rates in the module docstring.
        reason: one sentence.
    """

    mode: str
    requested: str
    platform: str
    flops: float | None = None
    bytes_accessed: float | None = None
    estimated_run_s: float | None = None
    reason: str = ""


def _platform(leaves: Sequence[Any]) -> str:
    for leaf in leaves:
        if isinstance(leaf, jax.Array):
            return next(iter(leaf.devices())).platform
    return jax.default_backend()


def _signature(leaf: Any) -> Any:
    shape = getattr(leaf, "shape", None)
    dtype = getattr(leaf, "dtype", None)
    return type(leaf) if shape is None else (tuple(shape), str(dtype))


def choose(requested: str, lower: Callable[[], Any], work_iters: int,
           platform: str, record_bytes: int = 0) -> CompileChoice:
    """The mode for one program; ``lower()`` gives its ``jax.stages.Lowered`` (for "auto").

    ``record_bytes``: the size of the loop's trace buffers (records x columns x itemsize x
    lanes). The unoptimised program writes one record per iteration as an out-of-place
    update of the whole buffer, so XLA's cost analysis counts about six buffer sizes of
    bytes (and four operations per record) that the optimised, in-place loop never touches:
    they are taken out of the estimate (measured on 2-D Rosenbrock, where they otherwise
    grow it with max_iters squared).
    """
    if requested == "optimized":
        return CompileChoice("optimized", requested, platform, reason="requested")
    if not fast_options(platform):
        return CompileChoice(
            "optimized", requested, platform,
            reason=f"no fast-compile options for the {platform} backend",
        )
    if requested == "fast":
        return CompileChoice("fast", requested, platform, reason="requested")
    cost = lower().cost_analysis() or {}
    if isinstance(cost, (list, tuple)):  # older JAX: one dict per device program
        cost = cost[0] if cost else {}
    flops = float(cost.get("flops", 0.0))
    nbytes = float(cost.get("bytes accessed", 0.0))
    # What is left after the buffer artefact, never below 1% of XLA's count.
    per_iter_flops = max(flops - 0.5 * record_bytes, 0.01 * flops)
    per_iter_bytes = max(nbytes - _BUFFER_OVERCOUNT * record_bytes, 0.01 * nbytes)
    estimate = max(work_iters, 1) * max(per_iter_flops / _FLOPS_PER_S,
                                        per_iter_bytes / _BYTES_PER_S)
    if estimate <= FAST_BUDGET_S:
        mode, why = "fast", "is short next to a full-optimisation compile"
    else:
        mode, why = "optimized", "is long enough for optimised code to pay off"
    return CompileChoice(
        mode, requested, platform, flops, nbytes, estimate,
        reason=f"a run of at most ~{estimate:.3g} s ({work_iters} iterations) {why}",
    )


def iteration_bound(solver: Any, max_iters: int) -> int:
    """The iterations "auto" assumes a run may take: ``max_iters``, or less for a solver that
    states an ``iteration_estimate`` (an int attribute: Newton's methods converge in tens of
    iterations where they converge at all, so a generous ``max_iters`` should not make a
    millisecond solve compile at full optimisation)."""
    estimate = getattr(solver, "iteration_estimate", None)
    if isinstance(estimate, int) and not isinstance(estimate, bool) and estimate > 0:
        return min(max_iters, estimate)
    return max_iters


class Entry:
    """A jitted solver entry point compiled per the policy: one ``jax.jit`` per mode.

    ``entry(mode, *args)`` calls the ``jax.jit`` of ``mode`` ("auto" resolved once per
    program and remembered). ``static_argnums`` name the static arguments (a solver loop's
    :class:`~lossopt.solvers._spec.LoopSpec`); ``work_iters(*args)`` gives the iterations
    that bound a run (``max_iters``, lowered by the solver's ``iteration_estimate``: see
    :func:`iteration_bound`; None: a program without a loop, one pass) and
    ``record_bytes(*args)`` the size of the trace buffers (see :func:`choose`). Under an outer
    transformation (tracer inputs) the optimised wrapper is used: it is inlined into the
    caller's program.
    """

    def __init__(self, fun: Callable[..., Any], static_argnums: Sequence[int],
                 work_iters: Callable[..., int] | None = None,
                 record_bytes: Callable[..., int] | None = None):
        self.fun = fun
        self.static_argnums = tuple(static_argnums)
        self.work_iters = work_iters
        self.record_bytes = record_bytes
        self.optimized = jax.jit(fun, static_argnums=self.static_argnums)
        self._fast: dict[str, Any] = {}
        self._choices: dict[Any, CompileChoice] = {}
        self._lock = threading.Lock()

    def _fast_jit(self, platform: str):
        jitted = self._fast.get(platform)
        if jitted is None:
            jitted = jax.jit(self.fun, static_argnums=self.static_argnums,
                             compiler_options=dict(fast_options(platform)))
            self._fast[platform] = jitted
        return jitted

    def choice(self, mode: str, *args: Any) -> CompileChoice:
        """What ``mode`` compiles for these arguments (lowering them once for "auto")."""
        if mode == "optimized":
            return CompileChoice("optimized", mode, "", reason="requested")
        return self._choice(mode, args, *jax.tree.flatten(self._dynamic(args)))

    def _dynamic(self, args: tuple[Any, ...]) -> list[Any]:
        return [a for i, a in enumerate(args) if i not in self.static_argnums]

    def _choice(self, mode: str, args: tuple[Any, ...], leaves: list[Any],
                treedef: Any) -> CompileChoice:
        platform = _platform(leaves)
        key = (mode, platform, treedef, tuple(_signature(x) for x in leaves),
               tuple(args[i] for i in self.static_argnums), jax.config.jax_enable_x64)
        with self._lock:
            found = self._choices.get(key)
        if found is None:
            work = 1 if self.work_iters is None else self.work_iters(*args)
            buffers = 0 if self.record_bytes is None else self.record_bytes(*args)
            found = choose(mode, lambda: self.optimized.lower(*args), work, platform, buffers)
            with self._lock:
                self._choices[key] = found
        return found

    def jitted(self, mode: str, *args: Any):
        """The ``jax.jit`` wrapper that ``mode`` selects for ``args`` (one flatten per call)."""
        if mode == "optimized":
            return self.optimized
        leaves, treedef = jax.tree.flatten(self._dynamic(args))
        if any(isinstance(x, jax.core.Tracer) for x in leaves):  # static args never are
            return self.optimized
        found = self._choice(mode, args, leaves, treedef)
        return self._fast_jit(found.platform) if found.mode == "fast" else self.optimized

    def __call__(self, mode: str, *args: Any) -> Any:
        # The collector is paused for the whole call: the trace, lowering and compile of a
        # first call, or a warm call's dispatch (the run itself is asynchronous).
        with collector_paused():
            return self.jitted(mode, *args)(*args)

    def eval_shape(self, *args: Any) -> Any:
        with collector_paused():
            return jax.eval_shape(self.optimized, *args)

    def _cache_size(self) -> int:
        return self.optimized._cache_size() + sum(j._cache_size() for j in self._fast.values())


def compile_lowered(lowered: Any, mode: str, work_iters: int,
                    platform: str | None = None) -> tuple[Any, CompileChoice]:
    """Compile a ``jax.stages.Lowered`` per the policy; return ``(compiled, choice)``.

    For programs lowered elsewhere (``lossopt run`` lowers each group's vmapped call itself,
    to compile it ahead in a thread pool). ``work_iters`` bounds the iterations of its loops.
    """
    platform = platform or jax.default_backend()
    with collector_paused():
        found = choose(check_mode(mode), lambda: lowered, work_iters, platform)
        options = dict(fast_options(platform)) if found.mode == "fast" else None
        return lowered.compile(options), found
