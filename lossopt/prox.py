"""Penalties with their proximal operators, for :class:`lossopt.solvers.ProximalGradient`.

A penalty ``g`` is a small frozen pytree dataclass with two pure methods over any parameter
pytree (an array, a tuple, a dict, a Flax/Equinox tree):

- ``value(params)``: ``g(params)``, a scalar (``+inf`` outside a constraint set);
- ``prox(params, step)``: the proximal operator
  ``prox_{t g}(x) = argmin_z  g(z) + ||z - x||^2 / (2 t)`` with ``t = step > 0``.

Numeric strengths and bounds are pytree leaves, so ``jax.vmap`` (or :func:`lossopt.sweep`) over
a solver holding the penalty sweeps them in one compiled call; choices (how the groups of
:func:`group_lasso` are formed) are static. Every penalty applies to all leaves of ``params``;
:func:`partition` gives each part of a parameter tree its own penalty (``partition({"w":
l1(0.1), "b": None})`` leaves the bias unpenalised).

The constructors and the closed forms of their proximal operators (``t`` the step, ``S`` the
soft-thresholding ``S_a(x) = sign(x) max(|x| - a, 0)``):

- ``l1(s)``: ``g = s sum|x_i|``; prox ``S_{t s}(x)``.
- ``elastic_net(a, r)``: ``g = a (r sum|x_i| + (1 - r) sum x_i^2)``; prox
  ``S_{t a r}(x) / (1 + 2 t a (1 - r))``.
- ``group_lasso(s, groups)``: ``g = s sum_G ||x_G||_2``; prox ``x_G max(0, 1 - t s / ||x_G||_2)``
  per group.
- ``nonnegative()``: the indicator of ``x >= 0``; prox ``max(x, 0)``.
- ``box(lo, hi)``: the indicator of ``lo <= x <= hi``; prox ``clip(x, lo, hi)``.
- ``zero()``: ``g = 0``; prox the identity.
- ``partition(parts)``: ``g = sum_j g_j(x_j)`` over the parts ``x_j`` of the tree; prox: each
  part's own prox (a separable sum).

``elastic_net`` has exactly the scaling of :func:`lossopt.regularizers.elastic_net` (the seed's
convention, no 1/2 on the squared term; scikit-learn's ``ElasticNet`` halves it, so its
``(alpha, l1_ratio)`` is ours with ``a r = alpha l1_ratio`` and ``a (1 - r) = alpha (1 -
l1_ratio) / 2``).

References:
    Parikh, N. and Boyd, S. (2014). Proximal algorithms. *Foundations and Trends in
    Optimization* 1(3), Sections 6.1 (projections), 6.5 (norms, soft-thresholding, group
    shrinkage) and 2.2 (the elastic net's scaled shrinkage).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from lossopt._pytree import PyTree, pytree_dataclass, static_field
from lossopt._validation import (
    check_in_interval,
    check_nonnegative,
    concrete_value,
    describe,
    float_leaves,
)

__all__ = [
    "L1",
    "Box",
    "ElasticNet",
    "GroupLasso",
    "NonNegative",
    "Partition",
    "Penalty",
    "Zero",
    "as_penalty",
    "box",
    "elastic_net",
    "group_lasso",
    "l1",
    "nonnegative",
    "partition",
    "zero",
]


@runtime_checkable
class Penalty(Protocol):
    """What :class:`~lossopt.solvers.ProximalGradient` needs of ``g``: its value and prox."""

    def value(self, params: PyTree) -> jax.Array: ...

    def prox(self, params: PyTree, step: ArrayLike) -> PyTree: ...


# --- helpers -----------------------------------------------------------------------------------


def _total(parts: list[jax.Array], params: Any) -> jax.Array:
    """Sum of per-leaf scalars in the params' dtype (0 for an empty tree)."""
    leaves = float_leaves(params)
    dtype = leaves[0].dtype if leaves else jnp.result_type(float)
    return sum((p.astype(dtype) for p in parts), start=jnp.zeros((), dtype))


def _soft_threshold(x: jax.Array, threshold: Any) -> jax.Array:
    # sign(x) max(|x| - a, 0) written as x - clip(x, -a, a): exactly +0 wherever |x| <= a.
    return (x - jnp.clip(x, -threshold, threshold)).astype(x.dtype)


def _abs_sum(x: jax.Array) -> jax.Array:
    return jnp.sum(jnp.abs(x))


def _check_step(step: Any) -> None:
    value = concrete_value(step)
    if value is not None and not np.all(value > 0):
        raise ValueError(f"`step` must be > 0; got {value!r}")


# --- the penalties -----------------------------------------------------------------------------


@pytree_dataclass
class Zero:
    """No penalty: ``g = 0`` and ``prox = identity`` (plain gradient descent)."""

    def value(self, params: PyTree) -> jax.Array:
        return _total([], params)

    def prox(self, params: PyTree, step: ArrayLike) -> PyTree:
        return params


@pytree_dataclass
class L1:
    """``strength * sum_i |x_i|`` over every leaf; prox: soft-thresholding at ``step*strength``."""

    strength: ArrayLike

    def __post_init__(self) -> None:
        check_nonnegative(self.strength, "strength")

    def value(self, params: PyTree) -> jax.Array:
        return self.strength * _total([_abs_sum(x) for x in float_leaves(params)], params)

    def prox(self, params: PyTree, step: ArrayLike) -> PyTree:
        _check_step(step)
        return jax.tree.map(lambda x: _soft_threshold(x, step * self.strength), params)


@pytree_dataclass
class ElasticNet:
    """``alpha * (l1_ratio sum|x_i| + (1 - l1_ratio) sum x_i^2)`` (lossopt.regularizers' scaling).

    Prox: ``S_{t alpha l1_ratio}(x) / (1 + 2 t alpha (1 - l1_ratio))``.
    """

    alpha: ArrayLike
    l1_ratio: ArrayLike

    def __post_init__(self) -> None:
        check_nonnegative(self.alpha, "alpha")
        check_in_interval(self.l1_ratio, "l1_ratio", 0.0, 1.0, closed_low=True, closed_high=True)

    def value(self, params: PyTree) -> jax.Array:
        leaves = float_leaves(params)
        l1_part = _total([_abs_sum(x) for x in leaves], params)
        l2_part = _total([jnp.sum(x * x) for x in leaves], params)
        return self.alpha * (self.l1_ratio * l1_part + (1 - self.l1_ratio) * l2_part)

    def prox(self, params: PyTree, step: ArrayLike) -> PyTree:
        _check_step(step)
        threshold = step * self.alpha * self.l1_ratio
        scale = 1 + 2 * step * self.alpha * (1 - self.l1_ratio)
        return jax.tree.map(lambda x: (_soft_threshold(x, threshold) / scale).astype(x.dtype),
                            params)


def _group_norms(x: jax.Array, groups: Any) -> jax.Array:
    """The Euclidean norm of each group of one leaf, shaped to broadcast against it."""
    if groups == "leaves":
        return jnp.sqrt(jnp.sum(x * x))
    axis = groups % x.ndim if x.ndim else None
    if axis is None:  # a scalar leaf is its own group
        return jnp.abs(x)
    others = tuple(a for a in range(x.ndim) if a != axis)
    return jnp.sqrt(jnp.sum(x * x, axis=others, keepdims=True))


@pytree_dataclass
class GroupLasso:
    """``strength * sum_G ||x_G||_2`` (unweighted); prox: ``x_G max(0, 1 - t s / ||x_G||)``.

    ``groups="leaves"``: each leaf of ``params`` is one group. ``groups=axis`` (an int): in
    every leaf, each index along ``axis`` is one group, its norm taken over the other axes
    (``axis=0`` on a ``(features, outputs)`` matrix: one group per feature row, as in
    multi-task Lasso); a 1-D leaf then has one group per entry (plain L1).
    """

    strength: ArrayLike
    groups: Any = static_field("leaves")

    def __post_init__(self) -> None:
        check_nonnegative(self.strength, "strength")
        ok = self.groups == "leaves" if isinstance(self.groups, str) else (
            isinstance(self.groups, int) and not isinstance(self.groups, bool)
        )
        if not ok:
            raise ValueError(
                f"`groups` must be 'leaves' (each leaf one group) or an int axis (each index "
                f"along it one group); got {self.groups!r}"
            )

    def _check_axis(self, x: jax.Array) -> None:
        if isinstance(self.groups, int) and x.ndim and not -x.ndim <= self.groups < x.ndim:
            raise ValueError(
                f"`groups` axis {self.groups} is out of range for a params leaf of shape "
                f"{tuple(x.shape)}"
            )

    def value(self, params: PyTree) -> jax.Array:
        parts = []
        for x in float_leaves(params):
            self._check_axis(x)
            parts.append(jnp.sum(_group_norms(x, self.groups)))
        return self.strength * _total(parts, params)

    def prox(self, params: PyTree, step: ArrayLike) -> PyTree:
        _check_step(step)

        def shrink(x):
            self._check_axis(x)
            norm = _group_norms(x, self.groups)
            # 1 - t s / ||x_G|| without dividing by a zero norm (the group then stays 0).
            safe = jnp.where(norm > 0, norm, 1)
            factor = jnp.where(norm > 0, jnp.maximum(1 - step * self.strength / safe, 0), 0)
            return (x * factor).astype(x.dtype)

        return jax.tree.map(shrink, params)


def _indicator(feasible: list[jax.Array], params: Any) -> jax.Array:
    dtype = _total([], params).dtype
    ok = jnp.all(jnp.stack([jnp.all(f) for f in feasible])) if feasible else jnp.asarray(True)
    return jnp.where(ok, jnp.zeros((), dtype), jnp.asarray(jnp.inf, dtype))


@pytree_dataclass
class NonNegative:
    """The indicator of ``x >= 0`` (0 there, ``+inf`` elsewhere); prox: ``max(x, 0)``."""

    def value(self, params: PyTree) -> jax.Array:
        return _indicator([x >= 0 for x in float_leaves(params)], params)

    def prox(self, params: PyTree, step: ArrayLike) -> PyTree:
        return jax.tree.map(lambda x: jnp.maximum(x, 0).astype(x.dtype), params)


@pytree_dataclass
class Box:
    """The indicator of ``lower <= x <= upper`` (0 inside, ``+inf`` outside); prox: ``clip``.

    ``lower``/``upper``: numbers or arrays broadcast against every leaf, or pytrees with the
    structure of ``params`` (one bound per leaf). Infinite bounds leave a side open.
    """

    lower: PyTree
    upper: PyTree

    def __post_init__(self) -> None:
        for name in ("lower", "upper"):
            for leaf in jax.tree.leaves(getattr(self, name)):
                value = concrete_value(leaf)
                if value is not None and (value.dtype.kind not in "biuf" or np.isnan(
                        value.astype(np.float64)).any()):
                    raise ValueError(f"`{name}` must hold real numbers (not NaN); got "
                                     f"{describe(leaf)}")
        lo_leaves, hi_leaves = jax.tree.leaves(self.lower), jax.tree.leaves(self.upper)
        if len(lo_leaves) == len(hi_leaves):
            for lo, hi in zip(lo_leaves, hi_leaves, strict=True):
                lo_v, hi_v = concrete_value(lo), concrete_value(hi)
                if lo_v is None or hi_v is None:
                    continue
                try:
                    bad = np.any(lo_v > hi_v)
                except ValueError as err:
                    raise ValueError(
                        f"`lower` and `upper` must broadcast together; got shapes "
                        f"{lo_v.shape} and {hi_v.shape}"
                    ) from err
                if bad:
                    raise ValueError(
                        f"`lower` must be <= `upper` everywhere; got lower={lo_v!r} and "
                        f"upper={hi_v!r}"
                    )

    def _bounds(self, params: Any) -> tuple[Any, Any]:
        structure = jax.tree.structure(params)

        def spread(bound):
            if jax.tree.structure(bound) == structure:
                return bound
            return jax.tree.map(lambda _: bound, params)

        return spread(self.lower), spread(self.upper)

    def value(self, params: PyTree) -> jax.Array:
        lower, upper = self._bounds(params)
        feasible = jax.tree.leaves(
            jax.tree.map(lambda x, lo, hi: (x >= lo) & (x <= hi), params, lower, upper)
        )
        float_leaves(params)
        return _indicator(feasible, params)

    def prox(self, params: PyTree, step: ArrayLike) -> PyTree:
        lower, upper = self._bounds(params)
        return jax.tree.map(lambda x, lo, hi: jnp.clip(x, lo, hi).astype(x.dtype),
                            params, lower, upper)


def _is_penalty(x: Any) -> bool:
    return callable(getattr(x, "value", None)) and callable(getattr(x, "prox", None))


@pytree_dataclass
class Partition:
    """A separable sum ``sum_j g_j(x_j)``: each penalty of ``parts`` on its part of ``params``.

    ``parts`` is a pytree whose leaves are penalties and whose structure is a prefix of the
    parameters' (a dict ``{"w": l1(0.1), "b": zero()}`` for params ``{"w": ..., "b": ...}``).
    """

    parts: PyTree

    def _map(self, fn: Any, params: Any) -> Any:
        try:
            return jax.tree.map(fn, self.parts, params, is_leaf=_is_penalty)
        except ValueError as err:
            raise ValueError(
                "the penalties of `partition` must have a prefix of the structure of `params`; "
                f"got penalties {jax.tree.structure(self.parts, is_leaf=_is_penalty)} for "
                f"params {jax.tree.structure(params)}"
            ) from err

    def value(self, params: PyTree) -> jax.Array:
        values = jax.tree.leaves(self._map(lambda g, x: g.value(x), params))
        dtype = _total([], params).dtype
        return sum((v.astype(dtype) for v in values), start=jnp.zeros((), dtype))

    def prox(self, params: PyTree, step: ArrayLike) -> PyTree:
        return self._map(lambda g, x: g.prox(x, step), params)


# --- constructors ------------------------------------------------------------------------------


def zero() -> Zero:
    """No penalty (``g = 0``, ``prox`` the identity).

    Example:
        >>> import jax.numpy as jnp
        >>> print(zero().prox(jnp.array([1.0, -2.0]), 0.5))
        [ 1. -2.]
    """
    return Zero()


def l1(strength: ArrayLike) -> L1:
    """The L1 (lasso) penalty ``g(x) = strength * sum_i |x_i|`` over every leaf.

    Its proximal operator is soft-thresholding,
    ``prox_{t g}(x)_i = sign(x_i) max(|x_i| - t strength, 0)``: entries with
    ``|x_i| <= t strength`` become exactly 0.

    Args:
        strength: ``>= 0``; a pytree leaf (sweepable by ``jax.vmap``).

    Returns:
        An :class:`L1` penalty.

    Raises:
        ValueError: ``strength < 0`` (or not finite).

    Example:
        >>> import jax.numpy as jnp
        >>> g = l1(0.5)
        >>> print(g.prox(jnp.array([2.0, -0.3, 0.5]), 1.0))
        [1.5 0.  0. ]
        >>> float(g.value(jnp.array([2.0, -1.0])))
        1.5
    """
    return L1(strength)


def elastic_net(alpha: ArrayLike, l1_ratio: ArrayLike) -> ElasticNet:
    """Elastic net ``g(x) = alpha * (l1_ratio sum|x_i| + (1 - l1_ratio) sum x_i^2)``.

    The scaling of :func:`lossopt.regularizers.elastic_net` (no 1/2 on the squared term).
    Its proximal operator is a soft-threshold followed by a shrinkage:

    ``prox_{t g}(x) = S_{t alpha rho}(x) / (1 + 2 t alpha (1 - rho))`` with
    ``rho = l1_ratio`` and ``S_a(x) = sign(x) max(|x| - a, 0)`` the soft-threshold.

    scikit-learn's ``ElasticNet(alpha=A, l1_ratio=R)`` penalty ``A R ||x||_1 + A (1 - R)/2
    ||x||_2^2`` is ``elastic_net(a, r)`` with ``a r = A R`` and ``a (1 - r) = A (1 - R) / 2``.

    Args:
        alpha: overall strength, ``>= 0`` (a leaf).
        l1_ratio: the L1 share, in ``[0, 1]`` (a leaf).

    Returns:
        An :class:`ElasticNet` penalty.

    Raises:
        ValueError: ``alpha < 0`` or ``l1_ratio`` outside ``[0, 1]``.

    Example:
        >>> import jax.numpy as jnp
        >>> print(elastic_net(1.0, 0.5).prox(jnp.array([3.0, 0.2]), 1.0))  # S_0.5(x) / 2
        [1.25 0.  ]
    """
    return ElasticNet(alpha, l1_ratio)


def group_lasso(strength: ArrayLike, groups: str | int = "leaves") -> GroupLasso:
    """Group lasso ``g(x) = strength * sum_G ||x_G||_2`` (unweighted group norms).

    Its proximal operator, ``prox_{t g}(x)_G = x_G max(0, 1 - t strength / ||x_G||_2)``,
    sets a whole group to exactly 0 when its norm is at most ``t strength``.

    Args:
        strength: ``>= 0`` (a leaf).
        groups: ``"leaves"`` (default): each leaf of ``params`` is one group. An int
            ``axis``: in every leaf each index along ``axis`` is a group, its norm taken over
            the remaining axes (``axis=0`` on a ``(features, outputs)`` weight matrix selects
            whole feature rows). Static.

    Returns:
        A :class:`GroupLasso` penalty.

    Raises:
        ValueError: ``strength < 0``, or ``groups`` neither ``"leaves"`` nor an int (and,
            when used, an axis out of range for a leaf).

    Example:
        >>> import jax.numpy as jnp
        >>> g = group_lasso(1.0)
        >>> p = g.prox({"a": jnp.array([3.0, 4.0]), "b": jnp.array([0.3, 0.4])}, 1.0)
        >>> print(p["a"], p["b"])  # ||a|| = 5 -> scaled by 4/5; ||b|| = 0.5 <= 1 -> 0
        [2.4 3.2] [0. 0.]
    """
    return GroupLasso(strength, groups)


def nonnegative() -> NonNegative:
    """The constraint ``x >= 0``: its indicator (``+inf`` outside) and projection ``max(x, 0)``.

    Start the solve from a feasible point (e.g. ``nonnegative().prox(x0, 1.0)``): at an
    infeasible one the objective is ``+inf`` and :func:`lossopt.minimize` stops at once with
    status ``NONFINITE``.

    Example:
        >>> import jax.numpy as jnp
        >>> print(nonnegative().prox(jnp.array([-1.0, 2.0]), 1.0))
        [0. 2.]
    """
    return NonNegative()


def box(lower: PyTree, upper: PyTree) -> Box:
    """The constraint ``lower <= x <= upper``: its indicator and projection ``clip``.

    Args:
        lower, upper: numbers or arrays (broadcast against every leaf), or pytrees with the
            structure of ``params``; ``-inf``/``+inf`` leave a side open. Leaves (sweepable).

    Returns:
        A :class:`Box` penalty. Start from a feasible point (see :func:`nonnegative`).

    Raises:
        ValueError: NaN bounds, bounds that do not broadcast together, or ``lower > upper``
            anywhere.

    Example:
        >>> import jax.numpy as jnp
        >>> print(box(-1.0, 1.0).prox(jnp.array([-3.0, 0.5, 2.0]), 1.0))
        [-1.   0.5  1. ]
    """
    return Box(lower, upper)


def partition(parts: PyTree) -> Partition:
    """Give each part of a parameter tree its own penalty: ``g(x) = sum_j g_j(x_j)``.

    The proximal operator of a separable sum is the parts' own proximal operators, each on its
    part (Parikh & Boyd, Section 2.1).

    Args:
        parts: a pytree (dict, tuple, list) whose leaves are penalties, or ``None`` for an
            unpenalised part; its structure must be a prefix of the parameters' structure.

    Returns:
        A :class:`Partition` penalty.

    Raises:
        TypeError: a leaf of ``parts`` that is not a penalty.
        ValueError: (when used) ``params`` whose structure does not extend ``parts``'.

    Example:
        >>> import jax.numpy as jnp
        >>> g = partition({"w": l1(1.0), "b": None})  # the bias is not penalised
        >>> out = g.prox({"w": jnp.array([3.0, 0.5]), "b": jnp.array([0.5])}, 1.0)
        >>> print(out["w"], out["b"])
        [2. 0.] [0.5]
    """
    checked = jax.tree.map(lambda g: as_penalty(g, "partition's parts"), parts,
                           is_leaf=lambda x: x is None or _is_penalty(x))
    return Partition(checked)


def as_penalty(penalty: Penalty | None, name: str = "prox") -> Penalty:
    """``None`` -> :func:`zero`; a :class:`Penalty` is returned as is; anything else raises.

    Raises:
        TypeError: an object without ``value(params)`` and ``prox(params, step)``.
    """
    if penalty is None:
        return Zero()
    if isinstance(penalty, type):
        raise TypeError(
            f"`{name}` must be a penalty instance such as lossopt.prox.l1(0.1); got the class "
            f"{penalty.__name__} itself"
        )
    if not (callable(getattr(penalty, "value", None)) and callable(getattr(penalty, "prox", None))):
        raise TypeError(
            f"`{name}` must be a penalty with value(params) and prox(params, step) (from "
            f"lossopt.prox: l1, elastic_net, group_lasso, nonnegative, box, zero) or None; got "
            f"{describe(penalty)}"
        )
    return penalty
