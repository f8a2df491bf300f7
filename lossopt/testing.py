"""Assertions for test suites: a hand-derived gradient or Hessian is correct, or the test fails
with the full :class:`~lossopt.GradientReport` (what is wrong, where, and a likely cause) as the
assertion message.

Example (in a pytest test)::

    from lossopt.testing import assert_gradient_correct

    def test_my_gradient():
        assert_gradient_correct(my_loss, my_loss_gradient, y_pred, y_true)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lossopt.gradcheck import GradientReport, check_gradient, check_hessian

__all__ = ["assert_gradient_correct", "assert_hessian_correct"]


def assert_gradient_correct(
    f: Callable[..., Any],
    grad_f: Callable[..., Any],
    *args: Any,
    argnum: int = 0,
    reference: str = "auto",
    rtol: float = 1e-7,
    atol: float | None = None,
) -> GradientReport:
    """Assert that ``grad_f(*args)`` is the gradient of ``f`` with respect to ``args[argnum]``.

    Runs :func:`lossopt.check_gradient` with the same arguments (see there for the reference,
    the float64 computation and the tolerances).

    Returns:
        The (passing) :class:`~lossopt.GradientReport`.

    Raises:
        AssertionError: when the check fails; the message is the report's text, diagnosis
            included.
        TypeError, ValueError: bad arguments, as :func:`lossopt.check_gradient`.

    Example:
        >>> import numpy as np
        >>> f = lambda w: np.sum(w ** 3)
        >>> report = assert_gradient_correct(f, lambda w: 3 * w ** 2, np.array([1.0, -2.0]))
        >>> report.ok
        True
        >>> assert_gradient_correct(f, lambda w: -3 * w ** 2, np.array([1.0, -2.0]))
        Traceback (most recent call last):
        ...
        AssertionError: gradient check: WRONG
        ...
          diagnosis: sign flip: hand = -1 x reference ...
    """
    report = check_gradient(f, grad_f, *args, argnum=argnum, reference=reference, rtol=rtol,
                            atol=atol)
    if not report.ok:
        raise AssertionError(str(report))
    return report


def assert_hessian_correct(
    f: Callable[..., Any],
    hess_f: Callable[..., Any],
    *args: Any,
    argnum: int = 0,
    reference: str = "auto",
    rtol: float = 1e-7,
    atol: float | None = None,
) -> GradientReport:
    """Assert that ``hess_f(*args)`` is the Hessian of ``f`` with respect to ``args[argnum]``.

    Runs :func:`lossopt.check_hessian` (the Hessian as an ``(n, n)`` matrix over the flattened
    argument).

    Returns:
        The (passing) :class:`~lossopt.GradientReport`.

    Raises:
        AssertionError: when the check fails, with the report's text as the message.
        TypeError, ValueError: bad arguments, as :func:`lossopt.check_hessian`.

    Example:
        >>> import numpy as np
        >>> f = lambda w: np.sum(w ** 3)
        >>> assert_hessian_correct(f, lambda w: np.diag(6 * w), np.array([1.0, -2.0])).ok
        True
    """
    report = check_hessian(f, hess_f, *args, argnum=argnum, reference=reference, rtol=rtol,
                           atol=atol)
    if not report.ok:
        raise AssertionError(str(report))
    return report
