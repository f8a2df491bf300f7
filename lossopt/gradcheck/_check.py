"""The one check skeleton behind :func:`check_gradient` and :func:`check_hessian`: validate the
call, evaluate the hand value, compute the reference (autodiff, else finite differences), compare
and diagnose, and build the report. What differs between a gradient and a Hessian check (how the
hand value is aligned, which reference, the Hessian's symmetry test) is a small ``_Kind``."""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from lossopt._validation import check_choice, describe
from lossopt.gradcheck._diagnosis import MAX_LISTED, Verdict, compare
from lossopt.gradcheck._finite_diff import FDResult
from lossopt.gradcheck._function import Problem, first_line
from lossopt.gradcheck._layout import (
    FlatArg,
    HessianLayout,
    arg_names,
    batch_sizes,
    is_array,
    is_floating,
    to_numpy64,
    warn_low_precision,
    x64,
)
from lossopt.gradcheck._report import GradientReport, PrecisionWarning

__all__ = ["REFERENCES", "check_gradient", "check_hessian"]

REFERENCES: tuple[str, ...] = ("auto", "autodiff", "finite_difference")


def _check_common(f: Any, other: Any, other_name: str, args: Sequence[Any], argnum: Any,
                  reference: Any, rtol: Any, atol: Any) -> int:
    if not callable(f):
        raise TypeError(f"`f` must be callable; got {describe(f)}")
    if not callable(other):
        raise TypeError(f"`{other_name}` must be callable; got {describe(other)}")
    check_choice(reference, "reference", REFERENCES)
    if isinstance(argnum, bool) or not isinstance(argnum, (int, np.integer)):
        raise TypeError(f"`argnum` must be an int; got {describe(argnum)}")
    if not args:
        raise ValueError("no arguments given: pass the point as check(f, grad_f, *args)")
    if not -len(args) <= argnum < len(args):
        raise ValueError(f"`argnum` must index one of the {len(args)} arguments; got {argnum}")
    if not (isinstance(rtol, (int, float)) and math.isfinite(rtol) and rtol >= 0):
        raise ValueError(f"`rtol` must be a finite number >= 0; got {rtol!r}")
    if atol is not None and not (isinstance(atol, (int, float)) and math.isfinite(atol)
                                 and atol >= 0):
        raise ValueError(f"`atol` must be None or a finite number >= 0; got {atol!r}")
    return int(argnum) % len(args)


def _hand_dtype_rtol(leaves: Sequence[Any], rtol: float, label: str, notes: list[str]) -> float:
    low = [leaf for leaf in leaves if is_array(leaf) and is_floating(leaf.dtype)
           and jnp.finfo(leaf.dtype).bits < 64]
    if not low:
        return rtol
    name = np.dtype(low[0].dtype).name
    warnings.warn(
        f"`{label}` returns {name} values from float64 inputs: its own round-off limits the "
        "check; rtol is raised to 1e-5.",
        PrecisionWarning,
        stacklevel=5,
    )
    notes.append(f"{label} computes in {name}: rtol raised to 1e-5")
    return max(rtol, 1e-5)


def _align_gradient(hand: Any, x: FlatArg) -> tuple[np.ndarray | None, str | None, list[str]]:
    """Hand leaves as one flat vector in the argument's layout, or a shape diagnosis."""
    leaves, treedef = jax.tree_util.tree_flatten(hand)
    if len(leaves) != len(x.shapes):
        expected = x.describe()
        got = describe(hand) if len(leaves) == 1 else f"a pytree of {len(leaves)} arrays"
        return None, f"wrong structure: the hand gradient is {got}; expected {expected}", []
    notes = []
    if treedef != x.treedef and not x.bare:
        notes.append(f"the hand gradient's container ({treedef}) differs from the argument's "
                     f"({x.treedef}); leaves compared in order")
    chunks, shape_msgs, transposed = [], [], []
    for leaf, shape, path in zip(leaves, x.shapes, x.paths, strict=True):
        try:
            arr = np.asarray(leaf)
        except Exception:
            arr = np.asarray(np.nan)
        if arr.dtype.kind not in "fiub" and not is_floating(arr.dtype):
            return None, f"the hand gradient{path} is not a real array: {describe(leaf)}", []
        arr = arr.astype(np.float64)
        label = f"{x.name}{path}"
        if arr.shape == shape:
            chunks.append(arr.ravel())
        elif arr.ndim >= 2 and arr.shape[::-1] == shape:
            transposed.append(f"{path or 'the gradient'} has shape {arr.shape}, {label} has "
                              f"shape {shape}")
            chunks.append(np.transpose(arr).ravel())
        elif arr.size == math.prod(shape):
            shape_msgs.append(f"hand gradient{path} has shape {arr.shape} but {label} has shape "
                              f"{shape}")
            chunks.append(arr.ravel())
        else:
            return None, (f"wrong shape: the hand gradient{path} has shape {arr.shape} "
                          f"({arr.size} entries) but {label} has shape {shape}"), []
    flat = np.concatenate(chunks) if chunks else np.zeros(0)
    issues = []
    if transposed:
        issues.append("transposed: " + "; ".join(transposed))
    issues.extend(shape_msgs)
    return flat, ("; ".join(issues) if issues else None), notes


def _align_hessian(hand: Any, x: FlatArg) -> tuple[np.ndarray | None, str | None]:
    leaves = jax.tree_util.tree_leaves(hand)
    n = x.size
    if len(leaves) != 1:
        return None, (f"wrong structure: the hand Hessian must be one (n, n) matrix over the "
                      f"flattened {x.name} (n = {n}); got {len(leaves)} arrays")
    arr = np.asarray(leaves[0])
    if arr.dtype.kind not in "fiub" and not is_floating(arr.dtype):
        return None, f"the hand Hessian is not a real array: {describe(leaves[0])}"
    arr = arr.astype(np.float64)
    if arr.shape == (n, n):
        return arr, None
    if x.bare and arr.shape == x.shapes[0] + x.shapes[0]:
        return arr.reshape(n, n), None
    return None, (f"wrong shape: the hand Hessian has shape {arr.shape}; expected ({n}, {n}) "
                  f"over the flattened {x.name}"
                  + (f" or {x.shapes[0] + x.shapes[0]}" if x.bare else ""))


def _finish(*, verdict: Verdict, h: np.ndarray, r: np.ndarray, tol: np.ndarray,
            atol_eff: float, rtol: float, layout: Any, what: str, argument: str, method: str,
            ref_err: np.ndarray, notes: list[str], hand_out: Any, ref_out: Any) -> GradientReport:
    with np.errstate(all="ignore"):
        diff = np.abs(h - r)
        diff = np.where(np.isnan(diff), np.inf, diff)
        rel = diff / (np.abs(r) + atol_eff)
        ratio = diff / tol
    wrong = verdict.wrong if verdict.wrong is not None else np.zeros(h.size, dtype=bool)
    if wrong.any():  # the worst entry is one of the entries the diagnosis is about
        ratio = np.where(wrong, np.where(np.isnan(ratio), np.inf, ratio) + 1.0, -1.0)
    if h.size:
        k = int(np.argmax(np.where(np.isnan(ratio), np.inf, ratio)))
        path, idx = layout.locate(k)
        max_abs, max_rel = float(np.max(diff)), float(np.nanmax(rel))
        hand_v, ref_v = float(h[k]), float(r[k])
    else:
        path, idx, max_abs, max_rel, hand_v, ref_v = "", (), 0.0, 0.0, math.nan, math.nan
    wrong_idx = np.flatnonzero(wrong)
    finite_err = ref_err[np.isfinite(ref_err)]
    return GradientReport(
        ok=verdict.ok,
        max_abs_error=max_abs,
        max_rel_error=max_rel,
        worst_index=idx,
        worst_path=path,
        hand_value=hand_v,
        reference_value=ref_v,
        diagnosis=None if verdict.ok else verdict.text,
        kind=None if verdict.ok else verdict.kind,
        factor=verdict.factor,
        wrong_entries=tuple(layout.fmt(k) for k in wrong_idx[:MAX_LISTED]),
        num_wrong=int(wrong_idx.size),
        num_entries=int(h.size),
        what=what,
        argument=argument,
        reference=method,
        reference_error=float(np.max(finite_err)) if finite_err.size else 0.0,
        rtol=rtol,
        atol=atol_eff,
        notes=tuple(notes),
        hand=hand_out,
        expected=ref_out,
    )


def _shape_report(text: str, *, what: str, argument: str, rtol: float, notes: list[str],
                  num_entries: int, hand: Any) -> GradientReport:
    return GradientReport(
        ok=False, max_abs_error=math.nan, max_rel_error=math.nan, worst_index=(),
        worst_path="", hand_value=math.nan, reference_value=math.nan, diagnosis=text,
        kind="shape", num_entries=num_entries, what=what, argument=argument,
        reference="not computed", rtol=rtol, atol=math.nan, notes=tuple(notes), hand=hand,
    )


def _hessian_probe(problem: Problem, entries: np.ndarray, n: int, h: np.ndarray,
                   r: np.ndarray, e: np.ndarray, method: str) -> FDResult:
    """For disagreeing Hessian entries: curvature jumps (kinks of the gradient) and, with an
    autodiff reference, an independent finite-difference value."""
    i, j = np.divmod(entries, n)
    diag = i == j
    kink = np.zeros(entries.size, dtype=bool)
    if diag.any():
        kink[diag] = problem.fd.curvature_jump(i[diag])
    if method == "autodiff":
        value, error = problem.fd.hessian(np.column_stack([i, j]))
    else:
        value, error = r[entries], e[entries]
    left = np.where(kink, np.minimum(value, h[entries]), np.nan)
    right = np.where(kink, np.maximum(value, h[entries]), np.nan)
    if diag.any() and kink.any():
        left, right = problem.fd.curvature_sides(i, kink, left, right)
    return FDResult(value, error, kink, left, right)


@dataclasses.dataclass(frozen=True)
class _Aligned:
    """The hand value laid out like the reference (one flat float64 vector)."""

    flat: np.ndarray | None  # None: it cannot be compared; ``issue`` says why
    issue: str | None  # a shape remark; with ``flat``, the values are compared after aligning
    out: Any  # the hand value as GradientReport.hand holds it
    notes: tuple[str, ...] = ()


class _Kind(Protocol):
    """What differs between a gradient check and a Hessian check; the rest is :func:`_check`."""

    what: str  # "gradient" | "hessian"
    hand_name: str  # the hand function's argument name, for messages
    allow_transpose: bool

    def num_entries(self, x: FlatArg) -> int: ...
    def layout(self, x: FlatArg) -> Any: ...
    def align(self, hand: Any, x: FlatArg) -> _Aligned: ...
    def autodiff(self, problem: Problem) -> tuple[np.ndarray | None, BaseException | None]: ...
    def finite_difference(
        self, problem: Problem) -> tuple[np.ndarray, np.ndarray, FDResult | None]: ...
    def probe(self, problem: Problem, method: str, h: np.ndarray, r: np.ndarray,
              e: np.ndarray) -> Callable[[np.ndarray], FDResult] | None: ...
    def reference_out(self, x: FlatArg, r: np.ndarray) -> Any: ...
    def finalize(self, verdict: Verdict, *, h: np.ndarray, r: np.ndarray, tol: np.ndarray,
                 layout: Any, notes: list[str]) -> Verdict: ...


class _GradientKind:
    what, hand_name, allow_transpose = "gradient", "grad_f", True

    def num_entries(self, x: FlatArg) -> int:
        return x.size

    def layout(self, x: FlatArg) -> Any:
        return x

    def align(self, hand: Any, x: FlatArg) -> _Aligned:
        flat, issue, notes = _align_gradient(hand, x)
        return _Aligned(flat, issue, to_numpy64(hand), tuple(notes))

    def autodiff(self, problem: Problem) -> tuple[np.ndarray | None, BaseException | None]:
        return problem.autodiff_gradient()

    def finite_difference(self, problem: Problem) -> tuple[np.ndarray, np.ndarray, FDResult]:
        fd = problem.fd.gradient()
        return fd.value, fd.error, fd

    def probe(self, problem: Problem, method: str, h: np.ndarray, r: np.ndarray,
              e: np.ndarray) -> Callable[[np.ndarray], FDResult] | None:
        # Finite differences over every coordinate already tell kinks apart; an autodiff
        # reference is probed at the entries that disagree.
        return problem.fd.gradient if method == "autodiff" else None

    def reference_out(self, x: FlatArg, r: np.ndarray) -> Any:
        return x.unflatten_np(r)

    def finalize(self, verdict: Verdict, **_: Any) -> Verdict:
        return verdict


class _HessianKind:
    what, hand_name, allow_transpose = "hessian", "hess_f", False

    def num_entries(self, x: FlatArg) -> int:
        return x.size * x.size

    def layout(self, x: FlatArg) -> Any:
        return HessianLayout(x)

    def align(self, hand: Any, x: FlatArg) -> _Aligned:
        H, issue = _align_hessian(hand, x)
        if H is None:
            return _Aligned(None, issue, to_numpy64(hand))
        return _Aligned(H.ravel(), None, H)

    def autodiff(self, problem: Problem) -> tuple[np.ndarray | None, BaseException | None]:
        R, err = problem.autodiff_hessian()
        return (None if R is None else R.ravel()), err

    def finite_difference(self, problem: Problem) -> tuple[np.ndarray, np.ndarray, None]:
        n = problem.x.size
        iu, ju = np.triu_indices(n)
        vals, errs = problem.fd.hessian(np.column_stack([iu, ju]))
        R, E = np.empty((n, n)), np.empty((n, n))
        R[iu, ju] = R[ju, iu] = vals
        E[iu, ju] = E[ju, iu] = errs
        return R.ravel(), E.ravel(), None

    def probe(self, problem: Problem, method: str, h: np.ndarray, r: np.ndarray,
              e: np.ndarray) -> Callable[[np.ndarray], FDResult]:
        n = problem.x.size
        return lambda entries: _hessian_probe(problem, entries, n, h, r, e, method)

    def reference_out(self, x: FlatArg, r: np.ndarray) -> Any:
        return r.reshape(x.size, x.size)

    def finalize(self, verdict: Verdict, *, h: np.ndarray, r: np.ndarray, tol: np.ndarray,
                 layout: Any, notes: list[str]) -> Verdict:
        """A hand Hessian whose symmetric part is right is "asymmetric"; else a note."""
        n = layout.n
        H = h.reshape(n, n)
        if not np.isfinite(H).all():
            return verdict
        asym = np.abs(H - H.T)
        tol_m = tol.reshape(n, n)
        if not np.any(asym > tol_m + tol_m.T):
            return verdict
        i, j = np.unravel_index(int(np.argmax(asym)), asym.shape)
        where = f"max |H - H.T| = {asym[i, j]:.3g} at {layout.fmt(i * n + j)}"
        sym = ((H + H.T) / 2).ravel()
        if not verdict.ok and np.all(np.abs(sym - r) <= tol):
            return Verdict(
                False, "asymmetric",
                f"the hand Hessian is not symmetric ({where}) but its symmetric part "
                "(H + H.T) / 2 matches the reference: quadratic forms v.H.v are right, "
                "Newton steps and Hessian-vector products are not",
                wrong=verdict.wrong,
            )
        notes.append(f"the hand Hessian is not symmetric: {where}")
        return verdict


def _check(kind: _Kind, f: Any, hand_f: Any, args: Sequence[Any], argnum: Any, reference: Any,
           rtol: Any, atol: Any) -> GradientReport:
    """The body of :func:`check_gradient` and :func:`check_hessian`."""
    argnum = _check_common(f, hand_f, kind.hand_name, args, argnum, reference, rtol, atol)
    names = arg_names(f, len(args))
    notes: list[str] = []
    with x64():
        warn_low_precision(args, names, f"check_{kind.what}", stacklevel=4)
        problem = Problem(f, args, argnum, names)
        x = problem.x
        hand_raw = problem.call(hand_f, kind.hand_name)
        rtol = _hand_dtype_rtol(jax.tree_util.tree_leaves(hand_raw), float(rtol), kind.hand_name,
                                notes)
        hand = kind.align(hand_raw, x)
        notes.extend(hand.notes)
        if hand.flat is None:
            return _shape_report(hand.issue or "wrong shape", what=kind.what, argument=x.name,
                                 rtol=rtol, notes=notes, num_entries=kind.num_entries(x),
                                 hand=hand.out)
        method, r = "autodiff", None
        if reference in ("auto", "autodiff"):
            r, err = kind.autodiff(problem)
            if r is None and reference == "autodiff":
                raise TypeError(
                    f"reference='autodiff' needs a JAX-traceable `f`; tracing it failed with "
                    f"{first_line(err)}. Use reference='finite_difference' or 'auto'."
                ) from err
            if r is None:
                notes.append(f"f is not JAX-traceable ({first_line(err)}); reference by "
                             "finite differences")
        if r is None:
            method = "finite_difference"
            r, ref_err, fd_all = kind.finite_difference(problem)
        else:
            ref_err, fd_all = np.zeros_like(r), None
        h = hand.flat
        layout = kind.layout(x)
        ns = batch_sizes(problem.args_np, names, argnum)
        verdict, atol_eff, tol = compare(h=h, r=r, ref_err=ref_err, rtol=rtol, atol=atol,
                                         layout=layout, ns=ns, fd_all=fd_all,
                                         probe=kind.probe(problem, method, h, r, ref_err),
                                         allow_transpose=kind.allow_transpose, what=kind.what)
        if hand.issue is not None:  # compared after aligning a transposed or reshaped leaf
            if verdict.ok:
                found = "transposed" if hand.issue.startswith("transposed") else "shape"
                suffix = "" if found == "transposed" else " (the values match after reshaping)"
                verdict = Verdict(False, found, hand.issue + suffix,
                                  wrong=np.zeros(h.size, dtype=bool))
            else:
                verdict.text = f"{hand.issue}; and after aligning the shapes: {verdict.text}"
        verdict = kind.finalize(verdict, h=h, r=r, tol=tol, layout=layout, notes=notes)
        return _finish(verdict=verdict, h=h, r=r, tol=tol, atol_eff=atol_eff, rtol=rtol,
                       layout=layout, what=kind.what, argument=x.name, method=method,
                       ref_err=ref_err, notes=notes, hand_out=hand.out,
                       ref_out=kind.reference_out(x, r))


_GRADIENT, _HESSIAN = _GradientKind(), _HessianKind()


def check_gradient(
    f: Callable[..., Any],
    grad_f: Callable[..., Any],
    *args: Any,
    argnum: int = 0,
    reference: str = "auto",
    rtol: float = 1e-7,
    atol: float | None = None,
) -> GradientReport:
    """Check a hand-derived gradient against autodiff or finite differences, and explain errors.

    Computes ``hand = grad_f(*args)`` and the reference gradient of the scalar ``f(*args)`` with
    respect to ``args[argnum]`` (an array or any pytree of floating arrays), in float64 (a scoped
    ``jax.enable_x64`` context; global JAX settings are untouched), and compares them entry by
    entry: an entry is correct when ``|hand - ref| <= atol + rtol * |ref| + ref_error`` where
    ``ref_error`` is the finite-difference error estimate (0 for autodiff). A mismatch is
    diagnosed (sign flip, constant factor such as a missing ``1/n``, offset, transpose, errors
    confined to some entries, NaN/Inf, a kink at the point, wrong shape): see
    :class:`GradientReport` and the module docstring.

    ``f`` may be plain numpy: when JAX cannot trace it, the reference is by finite
    differences (central, Richardson-extrapolated, with a per-entry error estimate and steps
    that shrink off nearby kinks and domain boundaries; see the module docstring). Each
    coordinate costs about 4 evaluations of ``f`` (more near a kink), so keep the argument to a
    few thousand entries. At a kink of ``f`` the gradient does not exist: finite differences
    detect it (left and right derivatives differ) and the report says so (kind "nonsmooth")
    instead of a plain failure. With an autodiff reference, kinks are probed only at entries
    that disagree: a hand value equal to JAX's choice of subgradient passes.

    Args:
        f: ``f(*args) -> scalar`` (a size-1 array is accepted).
        grad_f: ``grad_f(*args)`` -> the hand gradient, same structure and shapes as
            ``args[argnum]`` (a transposed or reshaped leaf is reported, not rejected).
        *args: the point; array leaves are converted to float64 (integer arrays kept).
        argnum: which argument to differentiate (negative counts from the end).
        reference: "auto" (autodiff if ``f`` is JAX-traceable, else finite differences),
            "autodiff" or "finite_difference".
        rtol: relative tolerance per entry (default ``1e-7``: float64 hand formulas agree with
            autodiff to ~1e-12, so 1e-7 flags a 1e-6 relative error with a wide margin).
        atol: absolute tolerance per entry; default ``1e-10 * max|reference|`` (entries far
            below the gradient's scale are judged against that scale, not their own size).

    Returns:
        A :class:`GradientReport`; ``report.ok`` is the verdict, ``str(report)`` the full text.

    Raises:
        TypeError: ``f`` or ``grad_f`` not callable, a non-floating argument to differentiate,
            or ``reference="autodiff"`` for an ``f`` JAX cannot trace.
        ValueError: bad ``argnum`` / ``rtol`` / ``atol`` / ``reference``, ``f`` not returning a
            scalar, or ``f`` / ``grad_f`` failing at the given point.

    Warns:
        PrecisionWarning: when an argument is float32 (or lower), or when ``f`` or ``grad_f``
            compute in lower precision than float64.

    Example:
        >>> import numpy as np
        >>> def loss(y_pred, y_true):                # plain-numpy mean squared error
        ...     return np.mean((y_pred - y_true) ** 2)
        >>> def grad(y_pred, y_true):                # hand-derived: forgot the 1/n
        ...     return 2 * (y_pred - y_true)
        >>> y_pred, y_true = np.array([0.5, 1.0, -2.0, 3.0]), np.zeros(4)
        >>> report = check_gradient(loss, grad, y_pred, y_true)
        >>> report.ok, report.kind
        (False, 'constant_factor')
        >>> print(report.diagnosis)
        hand = 4.000 x reference: a missing 1/n with n = 4 (y_pred.shape[0]): the gradient of
        the sum, not the mean?
        >>> check_gradient(loss, lambda p, t: 2 * (p - t) / p.size, y_pred, y_true).ok
        True
    """
    return _check(_GRADIENT, f, grad_f, args, argnum, reference, rtol, atol)


def check_hessian(
    f: Callable[..., Any],
    hess_f: Callable[..., Any],
    *args: Any,
    argnum: int = 0,
    reference: str = "auto",
    rtol: float = 1e-7,
    atol: float | None = None,
) -> GradientReport:
    """Check a hand-derived Hessian against autodiff or finite differences, and explain errors.

    The Hessian is the ``(n, n)`` matrix of second derivatives of the scalar ``f(*args)`` over
    ``args[argnum]`` flattened (leaves in ``jax.tree_util`` order, each in C order; for a single
    array of shape ``S``, a hand Hessian of shape ``S + S`` is accepted too). The reference is
    ``jax.hessian`` when ``f`` is JAX-traceable, else Richardson-extrapolated second differences
    of ``f`` (about ``4 n^2`` evaluations: keep ``n`` to a few dozen). Everything runs in
    float64 (scoped). Besides the diagnoses of :func:`check_gradient`, the symmetric part is
    checked: a hand Hessian that is not symmetric but whose symmetric part ``(H + H.T) / 2`` is
    right is reported as "asymmetric". At a jump of the second derivative (a kink of the
    gradient, e.g. Huber at ``|r| = delta``) a mismatch is reported as "nonsmooth".

    Args:
        f: ``f(*args) -> scalar``.
        hess_f: ``hess_f(*args)`` -> the hand Hessian.
        *args: the point.
        argnum: which argument to differentiate.
        reference: "auto", "autodiff" or "finite_difference".
        rtol: relative tolerance per entry.
        atol: absolute tolerance per entry; default ``1e-10 * max|reference|``.

    Returns:
        A :class:`GradientReport` with ``what="hessian"``; indices are ``(i, j)`` in the matrix.

    Raises:
        TypeError, ValueError: as :func:`check_gradient`.

    Warns:
        PrecisionWarning: as :func:`check_gradient`.

    Example:
        >>> import numpy as np
        >>> def loss(w, X, y):
        ...     return np.mean((X @ w - y) ** 2)
        >>> X = np.array([[1.0, 2.0], [3.0, -1.0], [0.5, 0.5]])
        >>> w, y = np.array([0.3, -0.2]), np.array([1.0, 0.0, 2.0])
        >>> check_hessian(loss, lambda w, X, y: 2 * X.T @ X / len(y), w, X, y).ok
        True
        >>> print(check_hessian(loss, lambda w, X, y: X.T @ X / len(y), w, X, y).diagnosis)
        hand = 0.500 x reference: a missing factor 2 (from differentiating a square)?
    """
    return _check(_HESSIAN, f, hess_f, args, argnum, reference, rtol, atol)
