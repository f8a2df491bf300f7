"""The 35 More-Garbow-Hillstrom (1981) least-squares test problems.

Each problem is ``f(x) = sum_i r_i(x)^2`` (no factor 1/2: the paper's convention) with
residuals ``r_i`` written here from the paper's definitions (problem numbers and names are the
paper's; indices below are 1-based as in the paper). Data (the paper's tables of ``y_i``,
``t_i``, ``u_i``) is passed in ``args``; structural constants (``m`` for the linear problems,
the band of Broyden banded) follow from the shapes or are closed over as Python ints.

``f_star`` is the value the paper publishes (MGH print six significant digits and truncate:
``8.21487...e-3``). Where a problem's minimum is not zero, ``f_star`` carries more digits,
found by a float64 Levenberg-Marquardt solve of these residuals (``scipy.optimize.least_squares``,
``method="lm"``, ``xtol = ftol = gtol = 1e-15``) from the standard start; they agree with the
paper's digits (the test-suite checks it) and ``source`` quotes both.

Reference:
    More, J. J., Garbow, B. S. and Hillstrom, K. E. (1981). Testing unconstrained optimization
    software. ACM Transactions on Mathematical Software 7(1), 17-41.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

from lossopt._problems._core import Problem, check_int, register, sum_of_squares

__all__: list[str] = []

_PAPER = "More, Garbow & Hillstrom (1981)"
_LM = ("further digits from a float64 Levenberg-Marquardt solve of these residuals "
       "(scipy.optimize.least_squares, method='lm', tolerances 1e-15) from x0")


def _f64(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)


def _problem(name, number, residuals, x0, f_star, *, args=(), x_star=None, published,
             refined=False, note="", tags=()):
    x0 = _f64(x0)
    source = f"{_PAPER}, problem {number}: f* = {published}"
    if refined:
        source += f"; {_LM}"
    if note:
        source += f"; {note}"
    return Problem(
        name=name,
        fun=sum_of_squares(residuals),
        x0=x0,
        args=tuple(_f64(a) for a in args),
        f_star=float(f_star),
        x_star=None if x_star is None else _f64(x_star),
        source=source,
        residuals=residuals,
        n=int(x0.size),
        tags=("mgh", "least_squares", "smooth", *tags),
    )


def _tags(*extra):
    return ("mgh", "least_squares", "smooth", *extra)


# ---------------------------------------------------------------------------------------------
# 1-19: fixed dimension
# ---------------------------------------------------------------------------------------------


def _rosenbrock(x):
    return jnp.stack([10.0 * (x[1] - x[0] ** 2), 1.0 - x[0]])


@register("rosenbrock", _tags("zero_residual"))
def rosenbrock():
    """Rosenbrock (MGH 1): ``r = (10 (x2 - x1^2), 1 - x1)``, n = m = 2.

    Start ``(-1.2, 1)``; ``f* = 0`` at ``(1, 1)``.
    """
    return _problem("rosenbrock", 1, _rosenbrock, [-1.2, 1.0], 0.0, x_star=[1.0, 1.0],
                    published="0 at (1, 1)", tags=("zero_residual",))


def _freudenstein_roth(x):
    x1, x2 = x[0], x[1]
    return jnp.stack([
        -13.0 + x1 + ((5.0 - x2) * x2 - 2.0) * x2,
        -29.0 + x1 + ((x2 + 1.0) * x2 - 14.0) * x2,
    ])


@register("freudenstein_roth", _tags("zero_residual", "multiple_minima"))
def freudenstein_roth():
    """Freudenstein and Roth (MGH 2): ``r1 = -13 + x1 + ((5 - x2) x2 - 2) x2``,
    ``r2 = -29 + x1 + ((x2 + 1) x2 - 14) x2``, n = m = 2.

    Start ``(0.5, -2)``; global ``f* = 0`` at ``(5, 4)``; a local minimum ``f = 48.9842...`` at
    ``(11.41..., -0.8968...)`` attracts many methods from the start.
    """
    return _problem("freudenstein_roth", 2, _freudenstein_roth, [0.5, -2.0], 0.0,
                    x_star=[5.0, 4.0], published="0 at (5, 4)",
                    note="local minimum 48.9842... at (11.41..., -0.8968...)",
                    tags=("zero_residual", "multiple_minima"))


def _powell_badly_scaled(x):
    return jnp.stack([1e4 * x[0] * x[1] - 1.0, jnp.exp(-x[0]) + jnp.exp(-x[1]) - 1.0001])


@register("powell_badly_scaled", _tags("zero_residual", "badly_scaled"))
def powell_badly_scaled():
    """Powell badly scaled (MGH 3): ``r = (1e4 x1 x2 - 1, exp(-x1) + exp(-x2) - 1.0001)``.

    n = m = 2, start ``(0, 1)``; ``f* = 0`` at ``(1.098...e-5, 9.106...)`` (and at the swapped
    point, so ``x_star`` is None).
    """
    return _problem("powell_badly_scaled", 3, _powell_badly_scaled, [0.0, 1.0], 0.0,
                    published="0 at (1.098...e-5, 9.106...)",
                    tags=("zero_residual", "badly_scaled"))


def _brown_badly_scaled(x):
    return jnp.stack([x[0] - 1e6, x[1] - 2e-6, x[0] * x[1] - 2.0])


@register("brown_badly_scaled", _tags("zero_residual", "badly_scaled"))
def brown_badly_scaled():
    """Brown badly scaled (MGH 4): ``r = (x1 - 1e6, x2 - 2e-6, x1 x2 - 2)``, n = 2, m = 3.

    Start ``(1, 1)``; ``f* = 0`` at ``(1e6, 2e-6)``.
    """
    return _problem("brown_badly_scaled", 4, _brown_badly_scaled, [1.0, 1.0], 0.0,
                    x_star=[1e6, 2e-6], published="0 at (1e6, 2e-6)",
                    tags=("zero_residual", "badly_scaled"))


def _beale(x, y):
    x1, x2 = x[0], x[1]
    model = jnp.stack([x1 * (1.0 - x2), x1 * (1.0 - x2 ** 2), x1 * (1.0 - x2 ** 3)])
    return y - model


@register("beale", _tags("zero_residual"))
def beale():
    """Beale (MGH 5): ``r_i = y_i - x1 (1 - x2^i)``, ``y = (1.5, 2.25, 2.625)``, n = 2, m = 3.

    Start ``(1, 1)``; ``f* = 0`` at ``(3, 0.5)``.
    """
    return _problem("beale", 5, _beale, [1.0, 1.0], 0.0, args=([1.5, 2.25, 2.625],),
                    x_star=[3.0, 0.5], published="0 at (3, 0.5)", tags=("zero_residual",))


def _jennrich_sampson(x, i):
    return 2.0 + 2.0 * i - (jnp.exp(i * x[0]) + jnp.exp(i * x[1]))


@register("jennrich_sampson", _tags())
def jennrich_sampson(m=10):
    """Jennrich and Sampson (MGH 6): ``r_i = 2 + 2i - (exp(i x1) + exp(i x2))``, n = 2, m = 10.

    Start ``(0.3, 0.4)``; ``f* = 124.362...`` at ``x1 = x2 = 0.2578...`` (MGH publish it for
    m = 10 only, so m is fixed).
    """
    check_int(m, "m", "jennrich_sampson", lambda v: v == 10, "10 (MGH publish f* for m = 10)")
    return _problem("jennrich_sampson", 6, _jennrich_sampson, [0.3, 0.4], 124.3621823556149,
                    args=(np.arange(1, m + 1),), published="124.362... (m = 10) at "
                    "x1 = x2 = 0.2578...", refined=True)


def _helical_valley(x):
    # theta = arctan(x2/x1) / (2 pi), plus 1/2 when x1 < 0: values in (-1/4, 3/4].
    # arctan2 agrees except for x1 < 0, x2 < 0 (where it is one turn lower).
    theta = jnp.arctan2(x[1], x[0]) / (2.0 * math.pi)
    theta = jnp.where(theta < -0.25, theta + 1.0, theta)
    radius = jnp.sqrt(x[0] ** 2 + x[1] ** 2)
    return jnp.stack([10.0 * (x[2] - 10.0 * theta), 10.0 * (radius - 1.0), x[2]])


@register("helical_valley", ("mgh", "least_squares", "zero_residual"))
def helical_valley():
    """Helical valley (MGH 7): ``r = (10 (x3 - 10 theta(x1, x2)), 10 (sqrt(x1^2 + x2^2) - 1),
    x3)`` with ``2 pi theta = arctan(x2 / x1)`` (``+ pi`` when ``x1 < 0``), n = m = 3.

    Start ``(-1, 0, 0)``; ``f* = 0`` at ``(1, 0, 0)``. ``theta`` jumps across ``x1 = 0,
    x2 < 0`` and is undefined at ``x1 = x2 = 0`` (not tagged smooth).
    """
    p = _problem("helical_valley", 7, _helical_valley, [-1.0, 0.0, 0.0], 0.0,
                 x_star=[1.0, 0.0, 0.0], published="0 at (1, 0, 0)")
    return _retag(p, ("mgh", "least_squares", "zero_residual"))


def _retag(problem, tags):
    import dataclasses

    return dataclasses.replace(problem, tags=tuple(tags))


_BARD_Y = [0.14, 0.18, 0.22, 0.25, 0.29, 0.32, 0.35, 0.39, 0.37, 0.58, 0.73, 0.96, 1.34, 2.10,
           4.39]


def _bard(x, u, v, w, y):
    return y - (x[0] + u / (v * x[1] + w * x[2]))


@register("bard", _tags("multiple_minima"))
def bard():
    """Bard (MGH 8): ``r_i = y_i - (x1 + u_i / (v_i x2 + w_i x3))``, ``u_i = i``,
    ``v_i = 16 - i``, ``w_i = min(u_i, v_i)``, n = 3, m = 15.

    Start ``(1, 1, 1)``; ``f* = 8.21487...e-3``; ``f = 17.4286...`` at ``(0.8406..., -inf,
    -inf)``.
    """
    i = np.arange(1, 16, dtype=np.float64)
    return _problem("bard", 8, _bard, [1.0, 1.0, 1.0], 8.214877306579e-3,
                    args=(i, 16.0 - i, np.minimum(i, 16.0 - i), _BARD_Y),
                    published="8.21487...e-3", refined=True,
                    note="f = 17.4286... at (0.8406..., -inf, -inf)",
                    tags=("multiple_minima",))


_GAUSSIAN_Y = [0.0009, 0.0044, 0.0175, 0.0540, 0.1295, 0.2420, 0.3521, 0.3989, 0.3521, 0.2420,
               0.1295, 0.0540, 0.0175, 0.0044, 0.0009]


def _gaussian(x, t, y):
    return x[0] * jnp.exp(-0.5 * x[1] * (t - x[2]) ** 2) - y


@register("gaussian", _tags())
def gaussian():
    """Gaussian (MGH 9): ``r_i = x1 exp(-x2 (t_i - x3)^2 / 2) - y_i``, ``t_i = (8 - i) / 2``,
    n = 3, m = 15.

    Start ``(0.4, 1, 0)``; ``f* = 1.12793...e-8``.
    """
    t = (8.0 - np.arange(1, 16)) / 2.0
    return _problem("gaussian", 9, _gaussian, [0.4, 1.0, 0.0], 1.127932769619e-8,
                    args=(t, _GAUSSIAN_Y), published="1.12793...e-8", refined=True)


_MEYER_Y = [34780.0, 28610.0, 23650.0, 19630.0, 16370.0, 13720.0, 11540.0, 9744.0, 8261.0,
            7030.0, 6005.0, 5147.0, 4427.0, 3820.0, 3307.0, 2872.0]


def _meyer(x, t, y):
    return x[0] * jnp.exp(x[1] / (t + x[2])) - y


@register("meyer", _tags("badly_scaled"))
def meyer():
    """Meyer (MGH 10): ``r_i = x1 exp(x2 / (t_i + x3)) - y_i``, ``t_i = 45 + 5 i``, n = 3,
    m = 16.

    Start ``(0.02, 4000, 250)``; ``f* = 87.9458...``.
    """
    t = 45.0 + 5.0 * np.arange(1, 17)
    return _problem("meyer", 10, _meyer, [0.02, 4000.0, 250.0], 87.94585517066,
                    args=(t, _MEYER_Y), published="87.9458...", refined=True,
                    tags=("badly_scaled",))


def _gulf(x, t, y):
    d = jnp.abs(y - x[1])
    positive = d > 0
    # |d|^x3 as exp(x3 log d), with a double where so that d = 0 gives 0 and finite gradients.
    power = jnp.where(positive, jnp.exp(x[2] * jnp.log(jnp.where(positive, d, 1.0))), 0.0)
    return jnp.exp(-power / x[0]) - t


@register("gulf", _tags("zero_residual"))
def gulf(m=99):
    """Gulf research and development (MGH 11): ``r_i = exp(-|y_i - x2|^x3 / x1) - t_i``,
    ``t_i = i / 100``, ``y_i = 25 + (-50 log t_i)^(2/3)``, n = 3, 3 <= m <= 100 (default 99).

    Start ``(5, 2.5, 0.15)``; ``f* = 0`` at ``(50, 25, 1.5)``. (The paper's printed formula
    has "mi" where a minus sign is meant.)
    """
    check_int(m, "m", "gulf", lambda v: 3 <= v <= 100, "an int in [3, 100]")
    t = np.arange(1, m + 1) / 100.0
    y = 25.0 + (-50.0 * np.log(t)) ** (2.0 / 3.0)
    return _problem("gulf", 11, _gulf, [5.0, 2.5, 0.15], 0.0, args=(t, y),
                    x_star=[50.0, 25.0, 1.5], published="0 at (50, 25, 1.5)",
                    tags=("zero_residual",))


def _box_3d(x, t):
    return (jnp.exp(-t * x[0]) - jnp.exp(-t * x[1])
            - x[2] * (jnp.exp(-t) - jnp.exp(-10.0 * t)))


@register("box_3d", _tags("zero_residual", "multiple_minima"))
def box_3d(m=10):
    """Box three-dimensional (MGH 12): ``r_i = exp(-t_i x1) - exp(-t_i x2)
    - x3 (exp(-t_i) - exp(-10 t_i))``, ``t_i = 0.1 i``, n = 3, m >= 3 (default 10).

    Start ``(0, 10, 20)``; ``f* = 0`` at ``(1, 10, 1)``, ``(10, 1, -1)`` and wherever
    ``x1 = x2, x3 = 0`` (``x_star`` is None).
    """
    check_int(m, "m", "box_3d", lambda v: v >= 3, "an int >= 3")
    return _problem("box_3d", 12, _box_3d, [0.0, 10.0, 20.0], 0.0,
                    args=(0.1 * np.arange(1, m + 1),),
                    published="0 at (1, 10, 1), (10, 1, -1) and (a, a, 0)",
                    tags=("zero_residual", "multiple_minima"))


def _powell_singular(x):
    return jnp.stack([
        x[0] + 10.0 * x[1],
        math.sqrt(5.0) * (x[2] - x[3]),
        (x[1] - 2.0 * x[2]) ** 2,
        math.sqrt(10.0) * (x[0] - x[3]) ** 2,
    ])


@register("powell_singular", _tags("zero_residual", "singular"))
def powell_singular():
    """Powell singular (MGH 13): ``r = (x1 + 10 x2, sqrt(5) (x3 - x4), (x2 - 2 x3)^2,
    sqrt(10) (x1 - x4)^2)``, n = m = 4.

    Start ``(3, -1, 0, 1)``; ``f* = 0`` at the origin, where the Hessian is singular.
    """
    return _problem("powell_singular", 13, _powell_singular, [3.0, -1.0, 0.0, 1.0], 0.0,
                    x_star=np.zeros(4), published="0 at the origin",
                    tags=("zero_residual", "singular"))


def _wood(x):
    return jnp.stack([
        10.0 * (x[1] - x[0] ** 2),
        1.0 - x[0],
        math.sqrt(90.0) * (x[3] - x[2] ** 2),
        1.0 - x[2],
        math.sqrt(10.0) * (x[1] + x[3] - 2.0),
        (x[1] - x[3]) / math.sqrt(10.0),
    ])


@register("wood", _tags("zero_residual"))
def wood():
    """Wood (MGH 14): ``r = (10 (x2 - x1^2), 1 - x1, sqrt(90) (x4 - x3^2), 1 - x3,
    sqrt(10) (x2 + x4 - 2), (x2 - x4) / sqrt(10))``, n = 4, m = 6.

    Start ``(-3, -1, -3, -1)``; ``f* = 0`` at ``(1, 1, 1, 1)``.
    """
    return _problem("wood", 14, _wood, [-3.0, -1.0, -3.0, -1.0], 0.0, x_star=np.ones(4),
                    published="0 at (1, 1, 1, 1)", tags=("zero_residual",))


_KOWALIK_Y = [0.1957, 0.1947, 0.1735, 0.1600, 0.0844, 0.0627, 0.0456, 0.0342, 0.0323, 0.0235,
              0.0246]
_KOWALIK_U = [4.0, 2.0, 1.0, 0.5, 0.25, 0.167, 0.125, 0.1, 0.0833, 0.0714, 0.0625]


def _kowalik_osborne(x, u, y):
    return y - x[0] * (u ** 2 + u * x[1]) / (u ** 2 + u * x[2] + x[3])


@register("kowalik_osborne", _tags("multiple_minima"))
def kowalik_osborne():
    """Kowalik and Osborne (MGH 15): ``r_i = y_i - x1 (u_i^2 + u_i x2) / (u_i^2 + u_i x3 + x4)``,
    n = 4, m = 11.

    Start ``(0.25, 0.39, 0.415, 0.39)``; ``f* = 3.07505...e-4``; ``f = 1.02734...e-3`` at
    ``(+inf, -14.07..., -inf, -inf)``.
    """
    return _problem("kowalik_osborne", 15, _kowalik_osborne, [0.25, 0.39, 0.415, 0.39],
                    3.075056038492e-4, args=(_KOWALIK_U, _KOWALIK_Y),
                    published="3.07505...e-4", refined=True,
                    note="f = 1.02734...e-3 at (+inf, -14.07..., -inf, -inf)",
                    tags=("multiple_minima",))


def _brown_dennis(x, t):
    a = x[0] + t * x[1] - jnp.exp(t)
    b = x[2] + x[3] * jnp.sin(t) - jnp.cos(t)
    return a ** 2 + b ** 2


@register("brown_dennis", _tags())
def brown_dennis(m=20):
    """Brown and Dennis (MGH 16): ``r_i = (x1 + t_i x2 - exp(t_i))^2 + (x3 + x4 sin t_i
    - cos t_i)^2``, ``t_i = i / 5``, n = 4, m = 20.

    Start ``(25, 5, -5, -1)``; ``f* = 85822.2...`` (m = 20, the value MGH publish).
    """
    check_int(m, "m", "brown_dennis", lambda v: v == 20, "20 (MGH publish f* for m = 20)")
    return _problem("brown_dennis", 16, _brown_dennis, [25.0, 5.0, -5.0, -1.0],
                    85822.20162635681, args=(np.arange(1, m + 1) / 5.0,),
                    published="85822.2... (m = 20)", refined=True)


_OSBORNE1_Y = [0.844, 0.908, 0.932, 0.936, 0.925, 0.908, 0.881, 0.850, 0.818, 0.784, 0.751,
               0.718, 0.685, 0.658, 0.628, 0.603, 0.580, 0.558, 0.538, 0.522, 0.506, 0.490,
               0.478, 0.467, 0.457, 0.448, 0.438, 0.431, 0.424, 0.420, 0.414, 0.411, 0.406]


def _osborne_1(x, t, y):
    return y - (x[0] + x[1] * jnp.exp(-t * x[3]) + x[2] * jnp.exp(-t * x[4]))


@register("osborne_1", _tags())
def osborne_1():
    """Osborne 1 (MGH 17): ``r_i = y_i - (x1 + x2 exp(-t_i x4) + x3 exp(-t_i x5))``,
    ``t_i = 10 (i - 1)``, n = 5, m = 33.

    Start ``(0.5, 1.5, -1, 0.01, 0.02)``; ``f* = 5.46489...e-5``.
    """
    return _problem("osborne_1", 17, _osborne_1, [0.5, 1.5, -1.0, 0.01, 0.02],
                    5.464894697483e-5, args=(10.0 * np.arange(33), _OSBORNE1_Y),
                    published="5.46489...e-5", refined=True)


def _biggs_exp6(x, t):
    y = jnp.exp(-t) - 5.0 * jnp.exp(-10.0 * t) + 3.0 * jnp.exp(-4.0 * t)
    return (x[2] * jnp.exp(-t * x[0]) - x[3] * jnp.exp(-t * x[1])
            + x[5] * jnp.exp(-t * x[4]) - y)


@register("biggs_exp6", _tags("zero_residual", "multiple_minima"))
def biggs_exp6(m=13):
    """Biggs EXP6 (MGH 18): ``r_i = x3 exp(-t_i x1) - x4 exp(-t_i x2) + x6 exp(-t_i x5) - y_i``,
    ``t_i = 0.1 i``, ``y_i = exp(-t_i) - 5 exp(-10 t_i) + 3 exp(-4 t_i)``, n = 6, m >= 6
    (default 13).

    Start ``(1, 2, 1, 1, 1, 1)``; global ``f* = 0`` at ``(1, 10, 1, 5, 4, 3)`` (and at
    ``(4, 10, 3, 5, 1, 1)``: ``x_star`` is None); MGH also list ``f = 5.65565...e-3`` (m = 13),
    a local minimum that many methods reach from the start.
    """
    check_int(m, "m", "biggs_exp6", lambda v: v >= 6, "an int >= 6")
    return _problem("biggs_exp6", 18, _biggs_exp6, [1.0, 2.0, 1.0, 1.0, 1.0, 1.0], 0.0,
                    args=(0.1 * np.arange(1, m + 1),),
                    published="0 at (1, 10, 1, 5, 4, 3)",
                    note="local minimum 5.65565...e-3 (m = 13)",
                    tags=("zero_residual", "multiple_minima"))


_OSBORNE2_Y = [
    1.366, 1.191, 1.112, 1.013, 0.991, 0.885, 0.831, 0.847, 0.786, 0.725, 0.746, 0.679, 0.608,
    0.655, 0.616, 0.606, 0.602, 0.626, 0.651, 0.724, 0.649, 0.649, 0.694, 0.644, 0.624, 0.661,
    0.612, 0.558, 0.533, 0.495, 0.500, 0.423, 0.395, 0.375, 0.372, 0.391, 0.396, 0.405, 0.428,
    0.429, 0.523, 0.562, 0.607, 0.653, 0.672, 0.708, 0.633, 0.668, 0.645, 0.632, 0.591, 0.559,
    0.597, 0.625, 0.739, 0.710, 0.729, 0.720, 0.636, 0.581, 0.428, 0.292, 0.162, 0.098, 0.054,
]


def _osborne_2(x, t, y):
    model = (x[0] * jnp.exp(-t * x[4])
             + x[1] * jnp.exp(-((t - x[8]) ** 2) * x[5])
             + x[2] * jnp.exp(-((t - x[9]) ** 2) * x[6])
             + x[3] * jnp.exp(-((t - x[10]) ** 2) * x[7]))
    return y - model


@register("osborne_2", _tags())
def osborne_2():
    """Osborne 2 (MGH 19): ``r_i = y_i - (x1 exp(-t_i x5) + x2 exp(-(t_i - x9)^2 x6)
    + x3 exp(-(t_i - x10)^2 x7) + x4 exp(-(t_i - x11)^2 x8))``, ``t_i = (i - 1) / 10``,
    n = 11, m = 65.

    Start ``(1.3, 0.65, 0.65, 0.7, 0.6, 3, 5, 7, 2, 4.5, 5.5)``; ``f* = 4.01377...e-2``.
    """
    return _problem("osborne_2", 19, _osborne_2,
                    [1.3, 0.65, 0.65, 0.7, 0.6, 3.0, 5.0, 7.0, 2.0, 4.5, 5.5],
                    4.013773629355e-2, args=(np.arange(65) / 10.0, _OSBORNE2_Y),
                    published="4.01377...e-2", refined=True)


# ---------------------------------------------------------------------------------------------
# 20-35: variable dimension
# ---------------------------------------------------------------------------------------------


def _watson(x, t):
    n = x.shape[0]
    powers = jnp.power(t[:, None], jnp.arange(n, dtype=t.dtype)[None, :])  # t_i^(j-1)
    j = jnp.arange(1, n, dtype=x.dtype)
    s1 = powers[:, : n - 1] @ (j * x[1:])  # sum_{j=2}^n (j-1) x_j t_i^(j-2)
    s2 = powers @ x  # sum_{j=1}^n x_j t_i^(j-1)
    return jnp.concatenate([s1 - s2 ** 2 - 1.0, jnp.stack([x[0], x[1] - x[0] ** 2 - 1.0])])


_WATSON_F = {6: (2.287670053552e-3, "2.28767...e-3"), 9: (1.399760138091e-6, "1.39976...e-6"),
             12: (4.722381105704e-10, "4.72238...e-10")}


@register("watson", _tags("variable_dimension"))
def watson(n=6):
    """Watson (MGH 20): ``r_i = sum_{j=2}^n (j-1) x_j t_i^(j-2) - (sum_{j=1}^n x_j
    t_i^(j-1))^2 - 1``, ``t_i = i / 29`` (i = 1..29), ``r_30 = x1``, ``r_31 = x2 - x1^2 - 1``;
    m = 31, n in {6, 9, 12} (the dimensions MGH publish f* for).

    Start ``0``; ``f* = 2.28767...e-3`` (n = 6), ``1.39976...e-6`` (n = 9),
    ``4.72238...e-10`` (n = 12).
    """
    check_int(n, "n", "watson", lambda v: v in _WATSON_F, f"one of {sorted(_WATSON_F)} (MGH "
              "publish f* for these)")
    f_star, published = _WATSON_F[n]
    return _problem("watson", 20, _watson, np.zeros(n), f_star,
                    args=(np.arange(1, 30) / 29.0,), published=f"{published} (n = {n})",
                    refined=True, tags=("variable_dimension",))


def _extended_rosenbrock(x):
    pairs = x.reshape(-1, 2)
    return jnp.stack([10.0 * (pairs[:, 1] - pairs[:, 0] ** 2), 1.0 - pairs[:, 0]],
                     axis=1).reshape(-1)


@register("extended_rosenbrock", _tags("zero_residual", "variable_dimension"))
def extended_rosenbrock(n=10):
    """Extended Rosenbrock (MGH 21): ``r_{2i-1} = 10 (x_{2i} - x_{2i-1}^2)``,
    ``r_{2i} = 1 - x_{2i-1}``, m = n, n even (default 10).

    Start ``(-1.2, 1, ..., -1.2, 1)``; ``f* = 0`` at ``(1, ..., 1)``.
    """
    check_int(n, "n", "extended_rosenbrock", lambda v: v >= 2 and v % 2 == 0, "an even int >= 2")
    return _problem("extended_rosenbrock", 21, _extended_rosenbrock,
                    np.tile([-1.2, 1.0], n // 2), 0.0, x_star=np.ones(n),
                    published="0 at (1, ..., 1)", tags=("zero_residual", "variable_dimension"))


def _extended_powell(x):
    q = x.reshape(-1, 4)
    r = jnp.stack([
        q[:, 0] + 10.0 * q[:, 1],
        math.sqrt(5.0) * (q[:, 2] - q[:, 3]),
        (q[:, 1] - 2.0 * q[:, 2]) ** 2,
        math.sqrt(10.0) * (q[:, 0] - q[:, 3]) ** 2,
    ], axis=1)
    return r.reshape(-1)


@register("extended_powell", _tags("zero_residual", "singular", "variable_dimension"))
def extended_powell(n=8):
    """Extended Powell singular (MGH 22): Powell singular (MGH 13) on each block of four,
    m = n, n a multiple of 4 (default 8).

    Start ``(3, -1, 0, 1, ...)``; ``f* = 0`` at the origin (singular Hessian).
    """
    check_int(n, "n", "extended_powell", lambda v: v >= 4 and v % 4 == 0,
              "a multiple of 4, >= 4")
    return _problem("extended_powell", 22, _extended_powell,
                    np.tile([3.0, -1.0, 0.0, 1.0], n // 4), 0.0, x_star=np.zeros(n),
                    published="0 at the origin",
                    tags=("zero_residual", "singular", "variable_dimension"))


def _penalty_1(x):
    return jnp.concatenate([math.sqrt(1e-5) * (x - 1.0),
                            jnp.sum(x ** 2, keepdims=True) - 0.25])


_PENALTY1_F = {4: (2.249977500900e-5, "2.24997...e-5"), 10: (7.087651467090e-5, "7.08765...e-5")}


@register("penalty_1", _tags("variable_dimension"))
def penalty_1(n=4):
    """Penalty function I (MGH 23): ``r_i = sqrt(a) (x_i - 1)`` (i = 1..n),
    ``r_{n+1} = sum_j x_j^2 - 1/4``, ``a = 1e-5``, m = n + 1, n in {4, 10}.

    Start ``x_j = j``; ``f* = 2.24997...e-5`` (n = 4), ``7.08765...e-5`` (n = 10).
    """
    check_int(n, "n", "penalty_1", lambda v: v in _PENALTY1_F,
              f"one of {sorted(_PENALTY1_F)} (MGH publish f* for these)")
    f_star, published = _PENALTY1_F[n]
    return _problem("penalty_1", 23, _penalty_1, np.arange(1, n + 1), f_star,
                    published=f"{published} (n = {n})", refined=True,
                    tags=("variable_dimension",))


def _penalty_2(x):
    n = x.shape[0]
    a = math.sqrt(1e-5)
    i = jnp.arange(2, n + 1, dtype=x.dtype)
    y = jnp.exp(i / 10.0) + jnp.exp((i - 1.0) / 10.0)
    e = jnp.exp(x / 10.0)
    weights = jnp.arange(n, 0, -1, dtype=x.dtype)  # n - j + 1
    return jnp.concatenate([
        x[:1] - 0.2,
        a * (e[1:] + e[:-1] - y),
        a * (e[1:] - math.exp(-0.1)),
        jnp.sum(weights * x ** 2, keepdims=True) - 1.0,
    ])


_PENALTY2_F = {4: (9.376293007355e-6, "9.37629...e-6"), 10: (2.936605374567e-4, "2.93660...e-4")}


@register("penalty_2", _tags("variable_dimension"))
def penalty_2(n=4):
    """Penalty function II (MGH 24): ``r_1 = x1 - 0.2``; ``r_i = sqrt(a) (exp(x_i / 10)
    + exp(x_{i-1} / 10) - y_i)`` (2 <= i <= n), ``y_i = exp(i / 10) + exp((i - 1) / 10)``;
    ``r_i = sqrt(a) (exp(x_{i-n+1} / 10) - exp(-1/10))`` (n < i < 2n);
    ``r_{2n} = sum_j (n - j + 1) x_j^2 - 1``; ``a = 1e-5``, m = 2n, n in {4, 10}.

    Start ``(1/2, ..., 1/2)``; ``f* = 9.37629...e-6`` (n = 4), ``2.93660...e-4`` (n = 10).
    """
    check_int(n, "n", "penalty_2", lambda v: v in _PENALTY2_F,
              f"one of {sorted(_PENALTY2_F)} (MGH publish f* for these)")
    f_star, published = _PENALTY2_F[n]
    return _problem("penalty_2", 24, _penalty_2, np.full(n, 0.5), f_star,
                    published=f"{published} (n = {n})", refined=True,
                    tags=("variable_dimension",))


def _variably_dimensioned(x):
    j = jnp.arange(1, x.shape[0] + 1, dtype=x.dtype)
    s = jnp.sum(j * (x - 1.0), keepdims=True)
    return jnp.concatenate([x - 1.0, s, s ** 2])


@register("variably_dimensioned", _tags("zero_residual", "variable_dimension"))
def variably_dimensioned(n=10):
    """Variably dimensioned (MGH 25): ``r_i = x_i - 1`` (i = 1..n), ``r_{n+1} = s``,
    ``r_{n+2} = s^2`` with ``s = sum_j j (x_j - 1)``; m = n + 2 (default n = 10).

    Start ``x_j = 1 - j / n``; ``f* = 0`` at ``(1, ..., 1)``.
    """
    check_int(n, "n", "variably_dimensioned", lambda v: v >= 1, "an int >= 1")
    return _problem("variably_dimensioned", 25, _variably_dimensioned,
                    1.0 - np.arange(1, n + 1) / n, 0.0, x_star=np.ones(n),
                    published="0 at (1, ..., 1)", tags=("zero_residual", "variable_dimension"))


def _trigonometric(x):
    n = x.shape[0]
    i = jnp.arange(1, n + 1, dtype=x.dtype)
    return n - jnp.sum(jnp.cos(x)) + i * (1.0 - jnp.cos(x)) - jnp.sin(x)


@register("trigonometric", _tags("zero_residual", "multiple_minima", "variable_dimension"))
def trigonometric(n=10):
    """Trigonometric (MGH 26): ``r_i = n - sum_j cos x_j + i (1 - cos x_i) - sin x_i``,
    m = n (default 10).

    Start ``x_j = 1 / n``; ``f* = 0`` (at the origin, among other points: ``x_star`` is None).
    Methods started at ``x0`` may stop at a local minimum (about 2.795e-5 for n = 10).
    """
    check_int(n, "n", "trigonometric", lambda v: v >= 1, "an int >= 1")
    return _problem("trigonometric", 26, _trigonometric, np.full(n, 1.0 / n), 0.0,
                    published="0", note="zero at the origin, not unique",
                    tags=("zero_residual", "multiple_minima", "variable_dimension"))


def _brown_almost_linear(x):
    n = x.shape[0]
    return jnp.concatenate([x[:-1] + jnp.sum(x) - (n + 1.0), jnp.prod(x, keepdims=True) - 1.0])


@register("brown_almost_linear", _tags("zero_residual", "multiple_minima",
                                       "variable_dimension"))
def brown_almost_linear(n=10):
    """Brown almost-linear (MGH 27): ``r_i = x_i + sum_j x_j - (n + 1)`` (1 <= i < n),
    ``r_n = prod_j x_j - 1``, m = n (default 10).

    Start ``(1/2, ..., 1/2)``; ``f* = 0`` at ``(a, ..., a, a^(1-n))`` for every root ``a`` of
    ``n a^n - (n + 1) a^(n-1) + 1 = 0`` (``a = 1`` among them: ``x_star`` is None); ``f = 1`` at
    ``(0, ..., 0, n + 1)``.
    """
    check_int(n, "n", "brown_almost_linear", lambda v: v >= 2, "an int >= 2")
    return _problem("brown_almost_linear", 27, _brown_almost_linear, np.full(n, 0.5), 0.0,
                    published="0 at (a, ..., a, a^(1-n)), a = 1 among them",
                    note="f = 1 at (0, ..., 0, n + 1)",
                    tags=("zero_residual", "multiple_minima", "variable_dimension"))


def _grid(x):
    n = x.shape[0]
    h = 1.0 / (n + 1)
    return h, h * jnp.arange(1, n + 1, dtype=x.dtype)


def _discrete_boundary_value(x):
    h, t = _grid(x)
    zero = jnp.zeros((1,), x.dtype)
    left = jnp.concatenate([zero, x[:-1]])
    right = jnp.concatenate([x[1:], zero])
    return 2.0 * x - left - right + 0.5 * h ** 2 * (x + t + 1.0) ** 3


@register("discrete_boundary_value", _tags("zero_residual", "variable_dimension"))
def discrete_boundary_value(n=10):
    """Discrete boundary value (MGH 28): ``r_i = 2 x_i - x_{i-1} - x_{i+1}
    + h^2 (x_i + t_i + 1)^3 / 2``, ``h = 1 / (n + 1)``, ``t_i = i h``, ``x_0 = x_{n+1} = 0``;
    m = n (default 10).

    Start ``x_j = t_j (t_j - 1)``; ``f* = 0`` at the solution of ``r(x) = 0`` (no closed form:
    ``x_star`` is None).
    """
    check_int(n, "n", "discrete_boundary_value", lambda v: v >= 1, "an int >= 1")
    t = np.arange(1, n + 1) / (n + 1)
    return _problem("discrete_boundary_value", 28, _discrete_boundary_value, t * (t - 1.0),
                    0.0, published="0", tags=("zero_residual", "variable_dimension"))


def _discrete_integral_equation(x):
    h, t = _grid(x)
    c = (x + t + 1.0) ** 3
    lower = jnp.cumsum(t * c)  # sum_{j <= i} t_j c_j
    b = (1.0 - t) * c
    upper = jnp.sum(b) - jnp.cumsum(b)  # sum_{j > i} (1 - t_j) c_j
    return x + 0.5 * h * ((1.0 - t) * lower + t * upper)


@register("discrete_integral_equation", _tags("zero_residual", "variable_dimension"))
def discrete_integral_equation(n=10):
    """Discrete integral equation (MGH 29): ``r_i = x_i + h [(1 - t_i) sum_{j<=i} t_j
    (x_j + t_j + 1)^3 + t_i sum_{j>i} (1 - t_j) (x_j + t_j + 1)^3] / 2``, ``h = 1 / (n + 1)``,
    ``t_i = i h``; m = n (default 10).

    Start ``x_j = t_j (t_j - 1)``; ``f* = 0`` (no closed-form minimiser: ``x_star`` is None).
    """
    check_int(n, "n", "discrete_integral_equation", lambda v: v >= 1, "an int >= 1")
    t = np.arange(1, n + 1) / (n + 1)
    return _problem("discrete_integral_equation", 29, _discrete_integral_equation,
                    t * (t - 1.0), 0.0, published="0",
                    tags=("zero_residual", "variable_dimension"))


def _broyden_tridiagonal(x):
    zero = jnp.zeros((1,), x.dtype)
    left = jnp.concatenate([zero, x[:-1]])
    right = jnp.concatenate([x[1:], zero])
    return (3.0 - 2.0 * x) * x - left - 2.0 * right + 1.0


@register("broyden_tridiagonal", _tags("zero_residual", "variable_dimension"))
def broyden_tridiagonal(n=10):
    """Broyden tridiagonal (MGH 30): ``r_i = (3 - 2 x_i) x_i - x_{i-1} - 2 x_{i+1} + 1``,
    ``x_0 = x_{n+1} = 0``; m = n (default 10).

    Start ``(-1, ..., -1)``; ``f* = 0`` (no closed-form minimiser: ``x_star`` is None).
    """
    check_int(n, "n", "broyden_tridiagonal", lambda v: v >= 1, "an int >= 1")
    return _problem("broyden_tridiagonal", 30, _broyden_tridiagonal, -np.ones(n), 0.0,
                    published="0", tags=("zero_residual", "variable_dimension"))


def _broyden_banded(x):
    n = x.shape[0]
    i = jnp.arange(n)[:, None]
    j = jnp.arange(n)[None, :]
    band = (j != i) & (j >= i - 5) & (j <= i + 1)  # J_i: max(1, i-5) <= j <= min(n, i+1)
    return x * (2.0 + 5.0 * x ** 2) + 1.0 - band.astype(x.dtype) @ (x * (1.0 + x))


@register("broyden_banded", _tags("zero_residual", "variable_dimension"))
def broyden_banded(n=10):
    """Broyden banded (MGH 31): ``r_i = x_i (2 + 5 x_i^2) + 1 - sum_{j in J_i} x_j (1 + x_j)``,
    ``J_i = {j != i : max(1, i - 5) <= j <= min(n, i + 1)}``; m = n (default 10).

    Start ``(-1, ..., -1)``; ``f* = 0`` (no closed-form minimiser: ``x_star`` is None).
    """
    check_int(n, "n", "broyden_banded", lambda v: v >= 1, "an int >= 1")
    return _problem("broyden_banded", 31, _broyden_banded, -np.ones(n), 0.0, published="0",
                    tags=("zero_residual", "variable_dimension"))


def _check_nm(name, n, m):
    check_int(n, "n", name, lambda v: v >= 1, "an int >= 1")
    check_int(m, "m", name, lambda v: v >= n, f"an int >= n = {n}")


def _linear_full_rank(x, ones_m):
    m = ones_m.shape[0]
    n = x.shape[0]
    padded = jnp.concatenate([x, jnp.zeros((m - n,), x.dtype)])
    return padded - (2.0 / m) * jnp.sum(x) * ones_m - ones_m


@register("linear_full_rank", ("mgh", "least_squares", "smooth", "linear", "convex",
                               "variable_dimension"))
def linear_full_rank(n=5, m=10):
    """Linear function, full rank (MGH 32): ``r_i = x_i - (2/m) sum_j x_j - 1`` (i <= n),
    ``r_i = -(2/m) sum_j x_j - 1`` (n < i <= m); m >= n (default n = 5, m = 10).

    Start ``(1, ..., 1)``; ``f* = m - n`` at ``(-1, ..., -1)``.
    """
    _check_nm("linear_full_rank", n, m)
    p = _problem("linear_full_rank", 32, _linear_full_rank, np.ones(n), m - n,
                 args=(np.ones(m),), x_star=-np.ones(n), published="m - n at (-1, ..., -1)")
    return _retag(p, ("mgh", "least_squares", "smooth", "linear", "convex",
                      "variable_dimension"))


def _linear_rank_1(x, i):
    j = jnp.arange(1, x.shape[0] + 1, dtype=x.dtype)
    return i * jnp.sum(j * x) - 1.0


@register("linear_rank_1", ("mgh", "least_squares", "smooth", "linear", "convex",
                            "multiple_minima", "variable_dimension"))
def linear_rank_1(n=5, m=10):
    """Linear function, rank 1 (MGH 33): ``r_i = i (sum_j j x_j) - 1``; m >= n (default
    n = 5, m = 10).

    Start ``(1, ..., 1)``; ``f* = m (m - 1) / (2 (2m + 1))`` on the hyperplane
    ``sum_j j x_j = 3 / (2m + 1)`` (``x_star`` is None).
    """
    _check_nm("linear_rank_1", n, m)
    p = _problem("linear_rank_1", 33, _linear_rank_1, np.ones(n),
                 m * (m - 1) / (2.0 * (2 * m + 1)), args=(np.arange(1, m + 1),),
                 published="m (m - 1) / (2 (2m + 1)) where sum_j j x_j = 3 / (2m + 1)")
    return _retag(p, ("mgh", "least_squares", "smooth", "linear", "convex", "multiple_minima",
                      "variable_dimension"))


def _linear_rank_1_zero(x, i):
    # i holds 0, 1, ..., m-3, 0: r_1 = -1, r_i = (i - 1) sum_{j=2}^{n-1} j x_j - 1, r_m = -1.
    n = x.shape[0]
    j = jnp.arange(2, n, dtype=x.dtype)
    return i * jnp.sum(j * x[1 : n - 1]) - 1.0


@register("linear_rank_1_zero", ("mgh", "least_squares", "smooth", "linear", "convex",
                                 "multiple_minima", "variable_dimension"))
def linear_rank_1_zero(n=5, m=10):
    """Linear function, rank 1 with zero columns and rows (MGH 34): ``r_1 = r_m = -1``,
    ``r_i = (i - 1) (sum_{j=2}^{n-1} j x_j) - 1`` (2 <= i < m); m >= n >= 3 (default n = 5,
    m = 10).

    Start ``(1, ..., 1)``; ``f* = (m^2 + 3m - 6) / (2 (2m - 3))`` where
    ``sum_{j=2}^{n-1} j x_j = 3 / (2m - 3)`` (``x_star`` is None).
    """
    check_int(n, "n", "linear_rank_1_zero", lambda v: v >= 3, "an int >= 3")
    _check_nm("linear_rank_1_zero", n, m)
    i = np.concatenate([[0.0], np.arange(1, m - 1), [0.0]])
    p = _problem("linear_rank_1_zero", 34, _linear_rank_1_zero, np.ones(n),
                 (m * m + 3 * m - 6) / (2.0 * (2 * m - 3)), args=(i,),
                 published="(m^2 + 3m - 6) / (2 (2m - 3)) where sum_{j=2}^{n-1} j x_j = "
                 "3 / (2m - 3)")
    return _retag(p, ("mgh", "least_squares", "smooth", "linear", "convex", "multiple_minima",
                      "variable_dimension"))


def _chebyquad(x, y):
    m = y.shape[0]
    z = 2.0 * x - 1.0  # shifted Chebyshev polynomials T_i(2x - 1) on [0, 1]
    previous, current = jnp.ones_like(z), z
    rows = [current]
    for _ in range(m - 1):
        previous, current = current, 2.0 * z * current - previous
        rows.append(current)
    return jnp.mean(jnp.stack(rows), axis=1) - y


_CHEBYQUAD_F = {8: (3.516873725678e-3, "3.51687...e-3"), 10: (6.503954800882e-3, "6.50395...e-3")}


@register("chebyquad", _tags("variable_dimension"))
def chebyquad(n=8):
    """Chebyquad (MGH 35): ``r_i = (1/n) sum_j T_i(x_j) - y_i`` with ``T_i`` the Chebyshev
    polynomial shifted to [0, 1], ``y_i = 0`` (i odd), ``-1 / (i^2 - 1)`` (i even); m = n, n in
    1..10 (default 8).

    Start ``x_j = j / (n + 1)``; ``f* = 0`` for n in 1..7 and 9, ``3.51687...e-3`` (n = 8),
    ``6.50395...e-3`` (n = 10).
    """
    check_int(n, "n", "chebyquad", lambda v: 1 <= v <= 10, "an int in [1, 10] (MGH publish f* "
              "for m = n <= 10)")
    i = np.arange(1, n + 1)
    y = np.where(i % 2 == 0, -1.0 / np.maximum(i * i - 1.0, 1.0), 0.0)
    f_star, published = _CHEBYQUAD_F.get(n, (0.0, "0"))
    tags = ("variable_dimension",) if n in _CHEBYQUAD_F else ("zero_residual",
                                                              "variable_dimension")
    return _problem("chebyquad", 35, _chebyquad, i / (n + 1.0), f_star, args=(y,),
                    published=f"{published} (m = n = {n})", refined=n in _CHEBYQUAD_F,
                    tags=tags)
