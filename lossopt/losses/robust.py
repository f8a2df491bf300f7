"""Robust penalties for M-estimation and IRLS: ``rho``, ``psi = rho'`` and ``psi(r) / r``.

Each name is a :class:`RobustPenalty` with three elementwise functions of the residual ``r``::

    robust.tukey.rho(r, c=4.685)      # the penalty (the loss lossopt.losses.tukey reduces)
    robust.tukey.psi(r, c=4.685)      # its derivative, the influence function
    robust.tukey.weight(r, c=4.685)   # the IRLS weight psi(r) / r (its limit rho''(0) at r = 0)

Penalties: ``tukey`` and ``cauchy`` (hyperparameter ``c``, classical normalisation
``rho ~ r^2/2`` near 0), ``geman_mcclure`` and ``welsch`` (``c``, scaled units
``rho ~ (r/c)^2/2``), ``barron`` (``alpha``, ``c``: Barron's general loss, which contains
the others up to scaling). Closed forms are in each loss's docstring in :mod:`lossopt.losses`;
``psi`` and ``weight`` are closed forms too (not autodiff), finite at ``r = 0`` and at the
kinks. ``barron_log_partition`` is the normaliser of Barron's adaptive NLL.

Iteratively reweighted least squares minimises ``sum_i rho(y_i - x_i @ beta)`` by repeatedly
solving the weighted least-squares problem with weights ``weight(r_i)`` at the current
residuals (Holland & Welsch, 1977). A robust location estimate with one gross outlier:

Example:
    >>> import jax.numpy as jnp
    >>> from lossopt.losses import robust
    >>> y = jnp.array([1.0, 1.2, 0.9, 1.1, 1.0, 10.0])
    >>> mu = jnp.median(y)
    >>> for _ in range(20):
    ...     w = robust.tukey.weight(y - mu, c=1.0)
    ...     mu = jnp.sum(w * y) / jnp.sum(w)
    >>> round(float(mu), 3), round(float(w[-1]), 3)  # the outlier's weight is 0
    (1.039, 0.0)

References:
    Holland, P. W. & Welsch, R. E. (1977). Robust regression using iteratively reweighted
    least-squares. Communications in Statistics - Theory and Methods 6(9), 813-827.
"""

from lossopt.losses._robust import PENALTIES, RobustPenalty, barron_log_partition

__all__ = [
    "PENALTIES",
    "RobustPenalty",
    "barron",
    "barron_log_partition",
    "cauchy",
    "geman_mcclure",
    "tukey",
    "welsch",
]

tukey = PENALTIES["tukey"]
cauchy = PENALTIES["cauchy"]
geman_mcclure = PENALTIES["geman_mcclure"]
welsch = PENALTIES["welsch"]
barron = PENALTIES["barron"]
