"""The diagnosis: compare a hand value with the reference entry by entry, and explain the
mismatch (sign flip, constant factor and its likely cause, offset, transpose, errors confined to
some entries or leaves, NaN/Inf, a kink at the point, autodiff disagreeing with ``f``'s values)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from lossopt.gradcheck._finite_diff import FDResult
from lossopt.gradcheck._layout import Subset, leaf_segments

__all__ = ["MAX_LISTED", "Verdict", "compare"]

MAX_LISTED = 12  # wrong entries listed in a diagnosis and in GradientReport.wrong_entries


def _fmt_factor(c: float) -> str:
    """``8.000`` for factors that are round to 1e-6 (except 1, where small errors matter)."""
    short = f"{c:.3f}"
    if abs(float(short)) not in (0.0, 1.0) and abs(float(short) - c) <= 1e-6 * abs(c):
        return short
    return f"{c:.7g}"


def _fmt_list(items: Sequence[str], total: int) -> str:
    shown = ", ".join(items[:MAX_LISTED])
    more = total - min(total, MAX_LISTED)
    return f"[{shown}{f', ... ({more} more)' if more else ''}]"


def _factor_hints(c: float, ns: Sequence[tuple[int, str]]) -> list[str]:
    """Plausible causes of ``hand = c x reference``: powers of 2 and of a batch size ``n``."""
    a = abs(c)
    two = {0: "", 1: "an extra factor 2",
           -1: "a missing factor 2 (from differentiating a square)"}
    found: list[tuple[int, str]] = []  # (complexity, text): simplest guesses first
    for q, text in two.items():
        if q and math.isclose(a, 2.0**q, rel_tol=1e-6):
            found.append((0, text))
    for n, where in ns:
        for p in (1, -1):
            for q in (0, -1, 1):
                if not math.isclose(a, float(n) ** p * 2.0**q, rel_tol=1e-6):
                    continue
                if p == 1 and q == -1:
                    found.append((1, f"a missing 2/n with n = {n} ({where})"))
                    continue
                part = (
                    f"a missing 1/n with n = {n} ({where}): the gradient of the sum, not the mean"
                    if p == 1
                    else f"an extra 1/n with n = {n} ({where}): divided by n twice"
                )
                found.append((1, part) if q == 0 else (2, f"{two[q]} and {part}"))
    simplest = min((level for level, _ in found), default=0)
    hints = [text for level, text in found if level == simplest][:2]
    if c < 0:
        hints = [f"a sign flip and {h}" for h in hints] or ["a sign flip and a scale error"]
    return hints


@dataclasses.dataclass
class _Pattern:
    kind: str
    text: str
    factor: float | None = None


def _pattern(h: np.ndarray, r: np.ndarray, tol: np.ndarray, rtol: float,
             ns: Sequence[tuple[int, str]], brief: bool = False) -> _Pattern | None:
    """A simple relation ``hand = c * reference``, ``hand = 0`` or ``hand = reference + d``
    (``brief``: without the explanations, for a subset of the entries)."""
    if h.size == 0:
        return None
    if np.all(np.abs(h) <= tol) and not np.all(np.abs(r) <= tol):
        return _Pattern("zero",
                        "the hand value is zero where the reference is not: a missing term?", 0.0)
    # Weighted least squares (weights 1/tol**2): accurate reference entries decide the factor.
    wt = 1.0 / np.square(tol / np.min(tol)) if np.all(tol > 0) else np.ones_like(tol)
    rr = float(np.sum(wt * r * r))
    if rr > 0:
        c = float(np.sum(wt * h * r)) / rr
        fits = np.all(np.abs(h - c * r) <= abs(c) * tol + rtol * np.abs(h))
        if fits and not math.isclose(c, 1.0, rel_tol=1e-12):
            if math.isclose(c, -1.0, rel_tol=1e-6):
                why = ("" if brief else " ((y - ŷ) instead of (ŷ - y), or a descent direction "
                       "returned as the gradient?)")
                return _Pattern("sign_flip", f"sign flip: hand = -1 x reference{why}", c)
            hints = _factor_hints(c, ns)
            text = f"hand = {_fmt_factor(c)} x reference"
            if hints:
                text += ": " + " or ".join(hints) + "?"
            return _Pattern("constant_factor", text, c)
    d = h - r
    shift = float(np.median(d))
    if shift != 0 and np.all(np.abs(d - shift) <= tol + rtol * abs(shift)):
        hint = ""
        for n, where in ns:
            if math.isclose(abs(shift), 1.0 / n, rel_tol=1e-6):
                hint = f" (1/n with n = {n}, {where}?)"
                break
        why = ("" if brief else ". A shift along the all-ones direction is invisible to "
               "directional derivatives that keep sum(x) fixed (probabilities on the simplex), "
               "but it is not the gradient")
        return _Pattern(
            "offset",
            f"hand = reference {'+' if shift > 0 else '-'} {_fmt_factor(abs(shift))} on every "
            f"entry: a constant offset{hint}{why}",
        )
    return None


@dataclasses.dataclass
class Verdict:
    ok: bool
    kind: str | None = None
    text: str | None = None
    factor: float | None = None
    wrong: np.ndarray | None = None




def _transposed(h: np.ndarray, r: np.ndarray, tol: np.ndarray, wrong: np.ndarray,
                layout: Any) -> list[str] | None:
    """Leaves whose hand value is the reference transposed, if that explains every error."""
    fixed = np.zeros_like(wrong)
    names = []
    for off, size, shape, path in leaf_segments(layout):
        sl = slice(off, off + size)
        if len(shape) < 2 or shape[::-1] != shape or not wrong[sl].any():
            continue
        ht = np.transpose(h[sl].reshape(shape)).ravel()
        if np.all(np.abs(ht - r[sl]) <= tol[sl]):
            fixed[sl] = True
            names.append(path or "the gradient")
    if names and not (wrong & ~fixed).any():
        return names
    return None


def _row_offset(h: np.ndarray, r: np.ndarray, tol: np.ndarray, wrong: np.ndarray,
                rtol: float, layout: Any) -> str | None:
    """``hand = reference + c_row`` along the last axis of every wrong leaf (softmax-style)."""
    texts = []
    for off, size, shape, path in leaf_segments(layout):
        sl = slice(off, off + size)
        if not wrong[sl].any():
            continue
        if len(shape) < 2:
            return None
        d = (h[sl] - r[sl]).reshape(-1, shape[-1])
        t = tol[sl].reshape(-1, shape[-1])
        rows = np.median(d, axis=1, keepdims=True)
        if not np.all(np.abs(d - rows) <= t + rtol * np.abs(rows)):
            return None
        if np.any(np.abs(rows) > t.min(axis=1, keepdims=True)):
            texts.append(path or "the gradient")
    if not texts:
        return None
    return (
        f"hand = reference + c_i on each row i of {', '.join(texts)}: an offset constant along "
        "the last axis (differing between rows). It is invisible to directional derivatives "
        "that keep each row's sum fixed (softmax probabilities), but it is not the gradient"
    )


def _classify(h: np.ndarray, r: np.ndarray, tol: np.ndarray, wrong: np.ndarray, rtol: float,
              layout: Any, ns: Sequence[tuple[int, str]], allow_transpose: bool) -> Verdict:
    """Explain the wrong entries (no NaN, no kinks left at this point)."""
    total = wrong.size
    count = int(wrong.sum())
    pattern = _pattern(h, r, tol, rtol, ns)
    if pattern is not None:
        return Verdict(False, pattern.kind, pattern.text, pattern.factor)
    if allow_transpose:
        leaves = _transposed(h, r, tol, wrong, layout)
        if leaves is not None:
            return Verdict(False, "transposed",
                            f"transposed: hand[i, j] = reference[j, i] in {', '.join(leaves)}")
        rows = _row_offset(h, r, tol, wrong, rtol, layout)
        if rows is not None:
            return Verdict(False, "offset", rows)
    segments = leaf_segments(layout)
    if len(segments) > 1:
        parts = []
        explained = True
        for off, size, _shape, path in segments:
            sl = slice(off, off + size)
            w = wrong[sl]
            if not w.any():
                continue
            p = _pattern(h[sl][w], r[sl][w], tol[sl][w], rtol, ns, brief=True)
            explained &= p is not None
            if w.all():
                where = f"{path} (all {size} entries)" if size > 1 else path
            else:
                locs = [layout.fmt(k) for k in off + np.flatnonzero(w)]
                where = f"{path} ({len(locs)} of {size} entries: {_fmt_list(locs, len(locs))})"
            parts.append(f"{where}: {p.text if p else 'no simple pattern'}")
        head = f"{count} of {total} entries wrong, in "
        if count == total and explained:
            return Verdict(False, "per_leaf", head + "; ".join(parts))
        if count < total:
            return Verdict(False, "some_entries", head + "; ".join(parts))
        return Verdict(False, "unexplained", head + "; ".join(parts) + _cosine(h, r))
    if count < total:
        idx = np.flatnonzero(wrong)
        text = (f"{count} of {total} entries wrong: indices "
                f"{_fmt_list([layout.fmt(k) for k in idx], count)}")
        p = _pattern(h[idx], r[idx], tol[idx], rtol, ns, brief=True)
        if p is not None:
            text += f"; there {p.text} (one branch of a piecewise formula?)"
        else:
            text += "; no common pattern among them"
        return Verdict(False, "some_entries", text)
    return Verdict(
        False,
        "unexplained",
        "every entry is wrong, with no simple pattern (not a sign flip, constant factor, "
        "offset or transpose)" + _cosine(h, r),
    )


def _cosine(h: np.ndarray, r: np.ndarray) -> str:
    nh, nr = float(np.linalg.norm(h)), float(np.linalg.norm(r))
    if nh == 0 or nr == 0:
        return ""
    return (f"; cosine similarity with the reference {float(h @ r) / (nh * nr):.4f}, "
            f"norm ratio {nh / nr:.4g}")


def _nonsmooth_text(idx: np.ndarray, h: np.ndarray, fd: FDResult, pos: np.ndarray, layout: Any,
                    what: str) -> str:
    """Describe kinks at entries ``idx`` (``pos`` indexes them in ``fd``)."""
    lo = np.minimum(fd.left[pos], fd.right[pos])
    hi = np.maximum(fd.left[pos], fd.right[pos])
    slack = 1e-7 * (np.abs(lo) + np.abs(hi))
    inside = (h[idx] >= lo - slack) & (h[idx] <= hi + slack)
    first = 0
    locs = _fmt_list([layout.fmt(k) for k in idx], idx.size)
    func, deriv = ("f", "gradient") if what == "gradient" else ("the gradient of f",
                                                                "second derivative")
    text = (
        f"nonsmooth point: {func} has a kink along {idx.size} "
        f"entr{'y' if idx.size == 1 else 'ies'} {locs}, where its one-sided derivatives differ "
        f"(at {layout.fmt(idx[first])}: left {fd.left[pos][first]:.6g}, right "
        f"{fd.right[pos][first]:.6g}), so the {deriv} does not exist there; "
    )
    if inside.all():
        valid = "a valid subgradient" if what == "gradient" else "in the generalized Hessian"
        text += f"the hand value lies between them ({valid}). Check again at a point off the kink"
    else:
        bad = idx[~inside]
        text += ("the hand value lies outside that interval at "
                 f"{_fmt_list([layout.fmt(k) for k in bad], bad.size)}")
    return text


def compare(*, h: np.ndarray, r: np.ndarray, ref_err: np.ndarray, rtol: float,
             atol: float | None, layout: Any, ns: Sequence[tuple[int, str]],
             fd_all: FDResult | None, probe: Callable[[np.ndarray], FDResult] | None,
             allow_transpose: bool, what: str) -> tuple[Verdict, float, np.ndarray]:
    """Compare flat ``h`` with ``r``; returns the verdict, the absolute tolerance, tolerances."""
    finite_r = np.isfinite(r)
    scale = float(np.max(np.abs(r[finite_r]))) if finite_r.any() else 0.0
    atol_eff = float(atol) if atol is not None else (1e-10 * scale if scale > 0 else 1e-300)
    tol = atol_eff + rtol * np.abs(r) + np.where(np.isfinite(ref_err), ref_err, 0.0)
    bad_h = ~np.isfinite(h)
    if bad_h.any():
        idx = np.flatnonzero(bad_h)
        vals = ", ".join(f"{h[k]}" for k in idx[:MAX_LISTED])
        text = (f"NaN/Inf in the hand value: {idx.size} of {h.size} entries "
                f"{_fmt_list([layout.fmt(k) for k in idx], idx.size)} ({vals}); ")
        if np.isfinite(r[idx]).all():
            text += ("the reference is finite there: a division by zero, log(0) or overflow in "
                     "the hand formula? (clip or use a log-space form)")
        else:
            text += ("the reference is not finite there either: the point is outside f's "
                     "domain or f is not differentiable there")
        return Verdict(False, "nonfinite", text, wrong=bad_h), atol_eff, tol
    if not finite_r.all():
        idx = np.flatnonzero(~finite_r)
        text = (f"the reference is not finite at {idx.size} entries "
                f"{_fmt_list([layout.fmt(k) for k in idx], idx.size)}: f is not differentiable "
                "at this point (outside its domain?); check at another point")
        return Verdict(False, "reference_nonfinite", text, wrong=~finite_r), atol_eff, tol
    bad = np.abs(h - r) > tol
    kinks = np.zeros(h.size, dtype=bool) if fd_all is None else fd_all.kink.copy()
    kink_fd, kink_pos = fd_all, np.arange(h.size)
    disagree_text = None
    if probe is not None and bad.any():
        idx = np.flatnonzero(bad)
        fd = probe(idx)
        kinks[idx] = fd.kink
        kink_fd, kink_pos = fd, np.full(h.size, -1)
        kink_pos[idx] = np.arange(idx.size)
        real = ~fd.kink
        fd_tol = atol_eff + rtol * np.abs(fd.value) + fd.error
        agrees = np.abs(h[idx] - fd.value) <= fd_tol
        if real.any() and np.all(agrees[real]):
            sel = idx[real]
            disagree_text = (
                f"the hand value agrees with finite differences of f but not with JAX's autodiff "
                f"at {sel.size} entries {_fmt_list([layout.fmt(k) for k in sel], sel.size)}: f's "
                "JAX derivative is not the derivative of its values there (a stop_gradient, "
                "custom_jvp or integer cast in f?). Use reference='finite_difference' to check "
                "against f's values only"
            )
    wrong = bad & ~kinks
    if not wrong.any() and not kinks.any():
        return Verdict(True), atol_eff, tol
    kink_text = None
    if kinks.any():
        idx = np.flatnonzero(kinks)
        kink_text = _nonsmooth_text(idx, h, kink_fd, kink_pos[idx], layout, what)
    if not wrong.any():
        return Verdict(False, "nonsmooth", kink_text, wrong=kinks), atol_eff, tol
    if disagree_text is not None:
        return Verdict(False, "reference_disagrees", disagree_text, wrong=wrong), atol_eff, tol
    keep = ~kinks
    sub_layout = layout if not kinks.any() else Subset(layout, np.flatnonzero(keep))
    verdict = _classify(h[keep], r[keep], tol[keep], wrong[keep], rtol, sub_layout, ns,
                        allow_transpose and not kinks.any())
    if kink_text:
        verdict.text = f"{verdict.text}. Also a {kink_text}"
    verdict.wrong = wrong | kinks
    return verdict, atol_eff, tol
