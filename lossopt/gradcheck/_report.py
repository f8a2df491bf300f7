"""The report a check returns (:class:`GradientReport`) and the warning it may raise."""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["GradientReport", "PrecisionWarning"]


class PrecisionWarning(UserWarning):
    """Inputs, the function's output or the hand gradient carry less than float64 precision."""


# --------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class GradientReport:
    """The verdict of :func:`check_gradient` or :func:`check_hessian`.

    Attributes:
        ok: True when every entry of the hand value matches the reference within
            ``atol + rtol * |reference| + reference_error``.
        max_abs_error: ``max |hand - reference|`` over all entries (``inf`` with NaN/Inf in the
            hand value, ``nan`` when the shapes do not match).
        max_rel_error: ``max |hand - reference| / (|reference| + atol)``.
        worst_index: index, in the shape of the argument's leaf (of the ``(n, n)`` matrix for a
            Hessian), of the entry that most exceeds its tolerance.
        worst_path: pytree path of that leaf (``jax.tree_util.keystr``), ``""`` for a bare array.
        hand_value: the hand value at the worst entry.
        reference_value: the reference value at the worst entry.
        diagnosis: what is wrong, in words (None when ``ok``).
        kind: the diagnosis as a short key ("sign_flip", "constant_factor", "offset",
            "transposed", "some_entries", "nonfinite", "nonsmooth", ...; see the module
            docstring), None when ``ok``.
        factor: the fitted ``hand / reference`` factor for "sign_flip" and "constant_factor".
        wrong_entries: locations of the wrong entries (at most a dozen are listed).
        num_wrong: how many entries are wrong (kinks included).
        num_entries: how many entries were compared.
        what: "gradient" or "hessian".
        argument: the differentiated argument, as ``name`` or ``args[i]``.
        reference: "autodiff" or "finite_difference".
        reference_error: largest estimated error of the reference (0 for autodiff).
        rtol: relative tolerance used.
        atol: absolute tolerance used.
        notes: further remarks (why finite differences were used, precision, asymmetry).
        hand: the hand value as float64 numpy (pytree for a gradient, matrix for a Hessian).
        expected: the reference, same layout as ``hand``.
    """

    ok: bool
    max_abs_error: float
    max_rel_error: float
    worst_index: tuple[int, ...]
    worst_path: str
    hand_value: float
    reference_value: float
    diagnosis: str | None
    kind: str | None
    factor: float | None = None
    wrong_entries: tuple[str, ...] = ()
    num_wrong: int = 0
    num_entries: int = 0
    what: str = "gradient"
    argument: str = "args[0]"
    reference: str = "autodiff"
    reference_error: float = 0.0
    rtol: float = 0.0
    atol: float = 0.0
    notes: tuple[str, ...] = ()
    hand: Any = dataclasses.field(default=None, repr=False, compare=False)
    expected: Any = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def worst_location(self) -> str:
        """The worst entry as text: pytree path and index (``"['W'][0, 1]"``, ``"[3]"``)."""
        if not self.worst_index:
            return self.worst_path or "()"
        return self.worst_path + "[" + ", ".join(str(i) for i in self.worst_index) + "]"

    def __str__(self) -> str:
        verdict = "OK" if self.ok else "WRONG"
        ref = {
            "autodiff": "JAX autodiff of f",
            "finite_difference": "finite differences of f (Richardson-extrapolated)",
        }.get(self.reference, self.reference)
        lines = [
            f"{self.what} check: {verdict}",
            f"  {self.what} of f with respect to {self.argument}: {self.num_entries} "
            f"entr{'y' if self.num_entries == 1 else 'ies'}",
            f"  reference: {ref}, computed in float64"
            + (f" (estimated error <= {self.reference_error:.1e})"
               if self.reference == "finite_difference" else ""),
            f"  max abs error {self.max_abs_error:.3e}, max rel error {self.max_rel_error:.3e}"
            f" (rtol {self.rtol:.1e}, atol {self.atol:.1e})",
        ]
        if self.worst_index or self.worst_path or self.num_entries:
            lines.append(
                f"  worst entry {self.worst_location}: hand {self.hand_value:.10g}, "
                f"reference {self.reference_value:.10g}"
            )
        if self.diagnosis:
            lines.append(f"  diagnosis: {self.diagnosis}")
        lines.extend(f"  note: {note}" for note in self.notes)
        return "\n".join(lines)

