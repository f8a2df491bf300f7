"""Check a hand-derived gradient or Hessian, and say what is wrong with it.

:func:`check_gradient` compares ``grad_f(*args)`` with the gradient of ``f(*args)`` with respect
to ``args[argnum]`` (an array or any pytree of arrays); :func:`check_hessian` does the same for a
Hessian. The reference is

* **autodiff** (``jax.grad`` / ``jax.hessian``) when ``f`` is JAX-traceable, or
* **finite differences** when ``f`` is plain numpy that JAX cannot trace: central differences with
  a step scaled to each coordinate (a power of two, so ``x + h`` is exact), Richardson
  extrapolation (error ``O(h^4)``), an error estimate per entry (truncation + round-off) that
  widens the tolerance where the reference is less accurate, and adaptive step reduction that
  steps off nearby kinks and domain boundaries. In float64 the reference is typically accurate to
  ``1e-10`` relative, so a ``1e-6`` relative error in a hand gradient is caught.

Everything is computed in float64 inside a scoped ``jax.enable_x64(True)`` context, whatever the
global JAX setting (which is never changed); inputs that carry less precision (float32 arrays)
trigger a :class:`PrecisionWarning`.

A mismatch is explained, not just reported (:attr:`GradientReport.diagnosis` and its
machine-readable :attr:`GradientReport.kind`):

| ``kind``                | meaning                                                             |
|-------------------------|---------------------------------------------------------------------|
| ``sign_flip``           | hand = -1 x reference                                               |
| ``constant_factor``     | hand = c x reference; guesses when ``c`` is ``n``, ``1/n``, ``2``,  |
|                         | ``1/2`` (or products, or negative), ``n`` a dimension of an argument |
| ``zero``                | the hand gradient is zero where the reference is not                |
| ``offset``              | hand = reference + constant (overall, or per row of the last axis) |
| ``transposed``          | the hand gradient is the reference transposed                       |
| ``some_entries``        | only some entries are wrong (their indices, any pattern among them) |
| ``per_leaf``            | each wrong leaf of a pytree has its own simple error                |
| ``nonfinite``           | NaN or Inf in the hand gradient                                     |
| ``reference_nonfinite`` | the reference is not finite: ``f`` is not differentiable here       |
| ``nonsmooth``           | the point is a kink of ``f``: one-sided derivatives differ, so the  |
|                         | gradient does not exist; says if the hand value lies between them   |
| ``reference_disagrees`` | the hand gradient agrees with finite differences of ``f`` but not   |
|                         | with its autodiff (its JAX derivative is not that of its values)   |
| ``shape``               | the hand gradient has the wrong shape or structure                  |
| ``asymmetric``          | (Hessian) not symmetric, but its symmetric part is right            |
| ``unexplained``         | none of the above                                                   |

The package holds one idea per module: ``_report`` (:class:`GradientReport`,
:class:`PrecisionWarning`), ``_layout`` (float64 copies of the arguments, the flat layout of the
differentiated argument and of its Hessian), ``_function`` (the function under test: calling,
batched and cached compiled evaluation, autodiff), ``_finite_diff`` (the finite-difference
engine), ``_diagnosis`` (comparison and explanation) and ``_check`` (the one check skeleton and
the two public checks). Its internal API is what each of those modules lists in its
``__all__``; modules import nothing else from each other, and nothing outside this package
imports them.
"""

from lossopt.gradcheck._check import REFERENCES, check_gradient, check_hessian
from lossopt.gradcheck._report import GradientReport, PrecisionWarning

__all__ = ["REFERENCES", "GradientReport", "PrecisionWarning", "check_gradient", "check_hessian"]
