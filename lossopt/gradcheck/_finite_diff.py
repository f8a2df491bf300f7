"""The finite-difference engine: Richardson-extrapolated first and second differences of ``f``
along the coordinates of the flat argument, with an error estimate per entry and the detection
of kinks (jumps of the first derivative) and curvature kinks (jumps of the second)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from lossopt.gradcheck._layout import FlatArg

__all__ = ["FDResult", "FiniteDifferences"]

# First step (relative to each coordinate's scale) of the gradient and of the Hessian (second
# differences lose twice the digits to round-off, so they need a larger step), the step
# reduction per level, and how many levels are tried near kinks / domain boundaries.
_GRAD_STEP = 1e-4
_HESS_STEP = 1e-3
_SHRINK = 8.0
_LEVELS = 8
# Safety factors on the round-off bounds derived in the comments of the routines below.
_ROUNDOFF_SAFETY = 10.0


@dataclasses.dataclass
class FDResult:
    """Finite-difference results over some coordinates (or entries)."""

    value: np.ndarray
    error: np.ndarray
    kink: np.ndarray
    left: np.ndarray
    right: np.ndarray



class FiniteDifferences:
    """Finite differences of ``f`` around the point ``x`` (a :class:`FlatArg`).

    Args:
        evaluate: ``evaluate(points) -> values``: ``f`` at each row of the ``(m, n)`` array of
            flat points (non-finite where ``f`` fails).
        x: the point and its per-coordinate scales.
        f_eps: the relative precision of ``f``'s values (float64's eps, or that of the lower
            precision ``f`` computes in), which sets the round-off bounds.
    """

    def __init__(self, evaluate: Callable[[np.ndarray], np.ndarray], x: FlatArg, f_eps: float):
        self.evaluate = evaluate
        self.x = x
        self.f_eps = f_eps

    def steps(self, base: float) -> np.ndarray:
        """Per-coordinate steps ``base * scale``, rounded to powers of two (exact ``x + h``)."""
        raw = base * self.x.scales()
        return np.exp2(np.round(np.log2(raw)))

    def gradient(self, coords: np.ndarray | None = None) -> FDResult:
        """Richardson-extrapolated central differences, with kink detection, per coordinate.

        At each coordinate, with steps ``h`` and ``h/2``: central differences ``Dc(h)``,
        ``Dc(h/2)`` give ``R = (4 Dc(h/2) - Dc(h)) / 3`` (error ``O(h^4)``); the one-sided
        Richardson estimates ``D+ = 2 D+(h/2) - D+(h)`` and ``D- = 2 D-(h/2) - D-(h)`` share
        their ``O(h^2)`` error term for smooth ``f``, so their gap is ``O(h^3)``. A larger gap
        means ``f`` is not smooth within ``h`` (a kink, a domain boundary): the step shrinks by 8
        and the coordinate is redone. A gap that persists down to the smallest step, without
        growing like round-off (``1/h``), is a kink at the point itself: the left and right
        derivatives are returned. The error estimate of ``R`` is
        ``max(|R - Dc(h/2)|, |R - (D+ + D-)/2|)`` (truncation, conservative for smooth ``f`` and
        exact at a jump of ``f''`` within ``h``) plus round-off: with ``delta = eps * max|f|``,
        at most ``3 delta / h`` in ``R`` and ``20 delta / h`` in the gap, both with a safety
        factor. The step keeps shrinking while that estimate improves and is above
        ``1e-9 * (|R| + |f| / scale)``; the best level is kept.
        """
        x = self.x.flat
        n = x.size
        coords = np.arange(n) if coords is None else np.asarray(coords, dtype=int)
        m = coords.size
        value = np.full(m, np.nan)
        error = np.full(m, np.inf)
        kink = np.zeros(m, dtype=bool)
        left = np.full(m, np.nan)
        right = np.full(m, np.nan)
        first_gap = np.full(m, np.nan)
        last: dict[str, np.ndarray] = {
            key: np.full(m, np.nan) for key in ("central", "fwd", "bwd", "gap", "err")
        }
        scale = self.x.scales()[coords]
        h = self.steps(_GRAD_STEP)[coords]
        pending = np.arange(m)
        for _ in range(_LEVELS):
            if pending.size == 0:
                break
            c, hh = coords[pending], h[pending]
            k = pending.size
            points = np.repeat(x[None, :], 4 * k + 1, axis=0)
            rows = 1 + 4 * np.arange(k)
            points[rows, c] += hh
            points[rows + 1, c] -= hh
            points[rows + 2, c] += hh / 2
            points[rows + 3, c] -= hh / 2
            vals = self.evaluate(points)
            f0 = vals[0]
            fp1, fm1, fp2, fm2 = vals[1:].reshape(k, 4).T
            with np.errstate(all="ignore"):
                dc2 = (fp2 - fm2) / hh
                central = (4 * dc2 - (fp1 - fm1) / (2 * hh)) / 3
                fwd = 2 * (fp2 - f0) / (hh / 2) - (fp1 - f0) / hh
                bwd = 2 * (f0 - fm2) / (hh / 2) - (f0 - fm1) / hh
                finite = np.isfinite(vals[1:].reshape(k, 4)).all(axis=1) & np.isfinite(f0)
                big = np.max(np.abs(np.column_stack([fp1, fm1, fp2, fm2])), axis=1)
                delta = self.f_eps * np.maximum(big, abs(f0))
                gap = np.abs(fwd - bwd)
                gap_ok = gap <= 20 * _ROUNDOFF_SAFETY * delta / hh + 1e-7 * (
                    np.abs(fwd) + np.abs(bwd))
                err = (np.maximum(np.abs(central - dc2), np.abs(central - (fwd + bwd) / 2))
                       + 3 * _ROUNDOFF_SAFETY * delta / hh)
                target = 1e-9 * (np.abs(central) + abs(f0) / scale[pending])
            good = finite & gap_ok
            better = good & (err < error[pending])
            value[pending[better]] = central[better]
            error[pending[better]] = err[better]
            had_best = np.isfinite(error[pending])
            # Done: good enough, or past the best step (round-off now dominates, or a gap
            # opened after a good level: noise).
            done = (good & ((err <= target) | ~better)) | (~good & had_best)
            seen = finite & ~gap_ok & ~had_best
            idx = pending[seen]
            for key, arr in (("central", central), ("fwd", fwd), ("bwd", bwd), ("gap", gap),
                             ("err", err)):
                last[key][idx] = arr[seen]
            first_gap[idx] = np.where(np.isnan(first_gap[idx]), gap[seen], first_gap[idx])
            pending = pending[~done]
            h[pending] /= _SHRINK
        for i in pending:
            if np.isfinite(error[i]) or np.isnan(last["gap"][i]):
                continue  # best level kept, or never finite near x (reference not finite)
            value[i] = last["central"][i]
            if last["gap"][i] <= 10 * first_gap[i]:  # constant gap: a kink at x itself
                kink[i] = True
                left[i], right[i] = last["bwd"][i], last["fwd"][i]
                error[i] = np.nan  # no derivative to estimate; see left/right
            else:  # gap growing like 1/h: noise, not a kink; keep the best we have
                error[i] = max(last["err"][i], last["gap"][i])
        error[np.isinf(error)] = np.nan
        return FDResult(value, error, kink, left, right)

    def hessian(self, pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Richardson-extrapolated second differences for the ``(i, j)`` rows of ``pairs``.

        ``D(h) = [f(x+hi+hj) - f(x+hi-hj) - f(x-hi+hj) + f(x-hi-hj)] / (4 hi hj)`` (the diagonal
        uses ``[f(x+h) - 2 f(x) + f(x-h)] / h^2``), ``R = (4 D(h/2) - D(h)) / 3``. The error
        estimate is ``|R - D(h/2)|`` plus round-off, at most ``23 delta / (hi hj)``. Round-off
        grows like ``1/h^2``, so a step tied to a small coordinate can be too small: three step
        sizes (``1e-3``, ``8e-3`` and ``6.4e-2`` times the coordinate scale) are tried and, per
        entry, the estimate with the smallest error bound is kept.
        """
        best_value, best_err = self._hessian_at(pairs, 1.0)
        for scale in (8.0, 64.0):
            value, err = self._hessian_at(pairs, scale)
            better = np.isfinite(value) & (~np.isfinite(best_err) | (err < best_err))
            best_value = np.where(better, value, best_value)
            best_err = np.where(better, err, best_err)
        return best_value, best_err

    def _hessian_at(self, pairs: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
        x = self.x.flat
        steps = self.steps(_HESS_STEP) * scale
        pairs = np.asarray(pairs, dtype=int).reshape(-1, 2)
        k = pairs.shape[0]
        i, j = pairs[:, 0], pairs[:, 1]
        hi, hj = steps[i], steps[j]
        diag = i == j
        points = np.repeat(x[None, :], 8 * k + 1, axis=0)
        for level, frac in enumerate((1.0, 0.5)):
            for corner, (si, sj) in enumerate(((1, 1), (1, -1), (-1, 1), (-1, -1))):
                rows = 1 + 8 * np.arange(k) + 4 * level + corner
                # Diagonal entries use x +- h only: rows (1,-1) and (-1,1) stay at x.
                wi = np.where(diag, np.where(si == sj, si, 0), si)
                wj = np.where(diag, 0, sj)
                np.add.at(points, (rows, i), wi * frac * hi)
                np.add.at(points, (rows, j), wj * frac * hj)
        vals = self.evaluate(points)
        f0 = vals[0]
        v = vals[1:].reshape(k, 2, 4)

        def second(level: int, frac: float) -> np.ndarray:
            pp, pm, mp, mm = (v[:, level, c] for c in range(4))
            off = (pp - pm - mp + mm) / (4 * frac * frac * hi * hj)
            on = (pp - 2 * f0 + mm) / (frac * frac * hi * hi)
            return np.where(diag, on, off)

        with np.errstate(all="ignore"):
            d1, d2 = second(0, 1.0), second(1, 0.5)
            rich = (4 * d2 - d1) / 3
            delta = self.f_eps * np.maximum(np.max(np.abs(v), axis=(1, 2)), abs(f0))
            err = np.abs(rich - d2) + 23 * _ROUNDOFF_SAFETY * delta / (hi * hj)
        return rich, err

    def curvature_jump(self, coords: np.ndarray) -> np.ndarray:
        """Whether the one-sided second derivatives along each coordinate differ at x.

        Forward ``[f(x+2h) - 2f(x+h) + f(x)] / h^2`` and backward second differences differ by
        ``O(h)`` for smooth ``f`` and by the jump of ``f''`` at a curvature kink: the gap must
        stay put as ``h`` shrinks 8-fold.
        """
        coords = np.asarray(coords, dtype=int)
        gaps = []
        for scale in (1.0, 1.0 / 64):
            h = self.steps(_HESS_STEP)[coords] * scale
            f0, p2, fwd, bwd = self._second_differences(coords, h)
            with np.errstate(all="ignore"):
                noise = 8 * _ROUNDOFF_SAFETY * self.f_eps * np.maximum(abs(f0), np.abs(p2)) / h**2
                gaps.append((np.abs(fwd - bwd), noise, np.abs(fwd) + np.abs(bwd)))
        (g1, _, _), (g2, n2, s2) = gaps
        return (g2 > n2 + 1e-6 * s2) & (g2 > 0.5 * g1)

    def _second_differences(self, coords: np.ndarray, h: np.ndarray):
        """``(f0, f(x + 2h), forward, backward)`` second differences along ``coords``.

        ``[f(x+2h) - 2f(x+h) + f(x)] / h^2`` and ``[f(x-2h) - 2f(x-h) + f(x)] / h^2``, one
        batched evaluation of the ``4k + 1`` points.
        """
        k = coords.size
        points = np.repeat(self.x.flat[None, :], 4 * k + 1, axis=0)
        rows = 1 + 4 * np.arange(k)
        for off, mult in enumerate((2, 1, -1, -2)):
            points[rows + off, coords] += mult * h
        vals = self.evaluate(points)
        f0 = vals[0]
        p2, p1, m1, m2 = vals[1:].reshape(k, 4).T
        with np.errstate(all="ignore"):
            return f0, p2, (p2 - 2 * p1 + f0) / h**2, (m2 - 2 * m1 + f0) / h**2

    def curvature_sides(self, i: np.ndarray, kink: np.ndarray, left: np.ndarray,
                         right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One-sided second derivatives (small step) at curvature kinks."""
        coords = i[kink]
        h = self.steps(_HESS_STEP)[coords] / 64
        _, _, fwd, bwd = self._second_differences(coords, h)
        left, right = left.copy(), right.copy()
        left[kink] = bwd
        right[kink] = fwd
        return left, right
