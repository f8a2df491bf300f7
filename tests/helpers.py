"""Shared test inputs and numerical helpers (DESIGN.md: ``tests/helpers.py``).

* ``RECIPES``: the one catalogue of loss inputs. Every registered loss
  (``lossopt.losses.catalog()``) has a recipe; ``missing_recipes()`` names those that do not,
  and the catalogue tests (tests/test_loss_properties.py, tests/test_gradcheck.py) fail on
  them instead of skipping. ``gradcheck_feeds(name, rng)`` derives the gradient-check inputs
  from a recipe.
* ``central_difference`` / ``central_difference_hessian``: the one finite-difference engine
  of the tests (central differences in float64, the step always stated by the caller).
* ``third_party()``: the one opt-out from the suite's strict dtype promotion, for calls into
  other libraries' code (optax's own functions) whose internals mix dtypes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lossopt import losses

N, K = 4, 3  # examples, classes


@contextlib.contextmanager
def third_party() -> Iterator[None]:
    """Run a call into another library's code under JAX's *standard* dtype promotion.

    The suite runs with ``jax_numpy_dtype_promotion="strict"`` (tests/conftest.py), so that
    lossopt code -- and the tests' own references -- never mix dtypes silently. Some optax
    functions do internally (``optax.lbfgs``: int32 counts against int64;
    ``projection_simplex``: float64 over an int64 index; ``ctc_loss``: float32 constants
    against float64 data; ``ntxent``: a bool mask xor a Python int): their calls, and only
    those, go through this::

        with third_party():
            ref = optax.losses.ctc_loss(...)

    (also a decorator: ``@third_party()``). Promotion is decided at trace time and is part of
    ``jax.jit``'s cache key: a jitted function that calls optax is *called* inside the block,
    every time. Keep the block to the third-party call: an objective that optax itself calls
    (its L-BFGS's value_fn) runs inside too, but the lossopt results that a test compares
    with it are computed outside, under strict promotion.
    """
    with jax.numpy_dtype_promotion("standard"):
        yield


@dataclass(frozen=True)
class Recipe:
    """Draw ``(first, rest, kwargs)`` with ``first`` the differentiated argument.

    ``draw(rng, scale)``: at ``scale = None`` a random point of moderate size (for convexity);
    at a large ``scale`` a point whose error grows with ``scale`` (for robustness).
    """

    draw: Callable[[np.random.Generator, float | None], tuple[Any, tuple, dict]]
    witness: Callable[[], tuple[Any, tuple, dict]] | None = None
    hyper: dict[str, Any] = field(default_factory=dict)
    reduce: bool = True  # False for the multi-task combinators (no `reduction` argument)
    # Further positional arguments (indices into ``(first, *rest)``) whose gradient
    # tests/test_gradcheck.py checks too: argument 0 is always checked.
    gradcheck_argnums: tuple[int, ...] = ()


def _regression(rng, scale):
    t = rng.normal(size=N)
    if scale is None:
        return t + rng.normal(size=N) * 2, (t,), {}
    return t + scale * np.sign(rng.normal(size=N)), (t,), {}


def _msle(rng, scale):
    t = rng.uniform(0, 2, size=N)
    if scale is None:
        return rng.uniform(0, 3, size=N), (t,), {}
    return np.full(N, -1.0 + 1.0 / scale), (t,), {}  # error grows as predictions -> -1


def _labels01(rng):
    return rng.integers(0, 2, size=N).astype(np.float64)


def _binary_logits(rng, scale):
    y = _labels01(rng)
    if scale is None:
        return rng.normal(size=N) * 3, (y,), {}
    return -(2 * y - 1) * scale, (y,), {}  # confidently wrong


def _binary_probs(rng, scale):
    y = _labels01(rng)
    if scale is None:
        return rng.uniform(0.05, 0.95, size=N), (y,), {}
    return np.where(y == 1, 1.0 / scale, 1 - 1.0 / scale), (y,), {}


def _margin_scores(rng, scale):
    y = 2 * _labels01(rng) - 1
    if scale is None:
        return rng.normal(size=N) * 3, (y,), {}
    return -y * scale, (y,), {}


def _class_ids(rng):
    return rng.integers(0, K, size=N)


def _wrong_onehot(y):
    return np.eye(K)[(y + 1) % K]


def _multiclass_logits(rng, scale):
    y = _class_ids(rng)
    if scale is None:
        return rng.normal(size=(N, K)) * 3, (y,), {}
    return scale * _wrong_onehot(y), (y,), {}


def _soft_targets(rng):
    t = rng.uniform(0.1, 1.0, size=(N, K))
    return t / t.sum(-1, keepdims=True)


def _kl_logits(rng, scale):
    t = _soft_targets(rng)
    if scale is None:
        return rng.normal(size=(N, K)) * 3, (t,), {}
    return -scale * np.eye(K)[np.argmax(t, -1)], (t,), {}


def _simplex_probs(rng, scale, targets):
    if scale is None:
        p = rng.uniform(0.1, 1.0, size=(N, K))
        return p / p.sum(-1, keepdims=True)
    # Mass 1/scale on the class the targets weigh most: the error grows with scale.
    small = np.eye(K)[np.argmax(targets, -1)] if targets.ndim == 2 else np.eye(K)[targets]
    return np.where(small == 1, 1.0 / scale, (1 - 1.0 / scale) / (K - 1))


def _categorical_probs(rng, scale):
    y = np.eye(K)[_class_ids(rng)]
    return _simplex_probs(rng, scale, y), (y,), {}


def _kl_probs(rng, scale):
    t = _soft_targets(rng)
    return _simplex_probs(rng, scale, t), (t,), {}


def _nll(rng, scale):
    y = _class_ids(rng)
    logp = np.log(_simplex_probs(rng, scale, y))
    return logp, (y,), {}


def _gaussian(rng, scale):
    t = rng.normal(size=N)
    var = rng.uniform(0.5, 2.0, size=N)
    if scale is None:
        return t + rng.normal(size=N), (t,), {"variance": var}
    return t + scale, (t,), {"variance": var}


def _poisson(rng, scale):
    counts = rng.poisson(3.0, size=N).astype(np.float64)
    if scale is None:
        return rng.normal(size=N), (counts,), {}
    return np.full(N, np.log(scale) * 30), (counts,), {}  # rate = scale**30: overflows by design


def _robust_witness(r=3.0, **hyper):
    # Redescending robust losses bend down beyond their scale: r = 3 c has negative curvature
    # (Tukey's is flat beyond c; inside, rho'' = (1 - u)(1 - 5u) < 0 for u = (r/c)^2 > 1/5).
    return lambda: (np.array([r]), (np.array([0.0]),), hyper)


def _pairs(rng, scale, labels):
    x2 = rng.normal(size=(N, 3))
    if scale is None:
        return x2 + rng.normal(size=(N, 3)), (x2, labels), {}
    return x2 + scale * np.ones((N, 3)), (x2, labels), {}


def _contrastive(rng, scale):
    return _pairs(rng, scale, np.zeros(N))  # similar pairs (label 0) pulled together


def _cosine_embedding(rng, scale):
    y = np.ones(N)
    x2 = rng.normal(size=(N, 3))
    if scale is None:
        return rng.normal(size=(N, 3)), (x2, y), {}
    return -scale * x2, (x2, y), {}  # pointing away from its partner, ever longer


def _margin_ranking(rng, scale):
    y = np.ones(N)
    x2 = rng.normal(size=N)
    if scale is None:
        return rng.normal(size=N), (x2, y), {}
    return x2 - scale, (x2, y), {}  # ranked the wrong way round by `scale`


def _triplet(rng, scale):
    p, n = rng.normal(size=(N, 3)), rng.normal(size=(N, 3))
    if scale is None:
        return rng.normal(size=(N, 3)), (p, n), {}
    return p + scale * np.ones((N, 3)), (p, n), {}  # anchor far from its positive


def _info_nce(rng, scale):
    labels = np.array([0, 0, 1, 1])
    e = rng.normal(size=(N, 3))
    return (e if scale is None else scale * e), (labels,), {}


def _segmentation(rng, scale):
    t = (rng.uniform(size=(2, 6)) < 0.5).astype(np.float64)
    if scale is None:
        return rng.uniform(0.05, 0.95, size=(2, 6)), (t,), {}
    return np.where(t == 1, 1.0 / scale, 1 - 1.0 / scale), (t,), {}


def _ctc(rng, scale):
    T, V = 5, 4
    labels = np.array([[1, 2, 0], [3, 3, 0]])
    label_pad = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    logit_pad = np.zeros((2, T))
    if scale is None:
        logits = rng.normal(size=(2, T, V)) * 2
    else:
        logits = scale * np.eye(V)[np.zeros((2, T), dtype=int)]  # confident blanks everywhere
    return logits, (logit_pad, labels, label_pad), {}


def _task_losses(rng, scale):
    values = rng.uniform(0.1, 2.0, size=2) if scale is None else np.full(2, scale)
    return {"a": values[0], "b": values[1]}, (), {}


def _uncertainty(rng, scale):
    first, _, _ = _task_losses(rng, scale)
    return first, ({"a": 0.3, "b": -0.2},), {}


PART_2 = {
    "tukey": Recipe(_regression, witness=_robust_witness(r=0.8, c=1.0)),
    "cauchy": Recipe(_regression, witness=_robust_witness(c=1.0)),
    "geman_mcclure": Recipe(_regression, witness=_robust_witness(c=1.0)),
    "welsch": Recipe(_regression, witness=_robust_witness(c=1.0)),
    "barron": Recipe(_regression, witness=_robust_witness(alpha=0.0, c=1.0)),
    "barron_nll": Recipe(_regression, witness=_robust_witness(alpha=0.0, c=1.0)),
    # (m - |d|)^2 near d = 0 has tangential curvature -2 (m - |d|) / |d| < 0 (similar pairs
    # use label 0, dissimilar label 1 as in the seed).
    "contrastive": Recipe(
        _contrastive,
        witness=lambda: (np.array([[0.3, 0.0]]), (np.zeros((1, 2)), np.ones(1)), {}),
    ),
    # 1 - cos(x1, x2) peaks where x1 points away from x2: negative tangential curvature there.
    "cosine_embedding": Recipe(
        _cosine_embedding,
        gradcheck_argnums=(1,),
        witness=lambda: (np.array([[-1.0, 0.1]]), (np.array([[1.0, 0.0]]), np.ones(1)), {}),
    ),
    "margin_ranking": Recipe(_margin_ranking),
    # |a - p| - |a - n| + margin with the euclidean distance: -|a - n| bends down.
    "triplet": Recipe(
        _triplet,
        gradcheck_argnums=(2,),
        witness=lambda: (np.array([[0.0, 0.0]]), (np.array([[3.0, 0.0]]), np.array([[0.5, 0.1]])),
                         {"distance": "euclidean", "margin": 10.0}),
    ),
    "info_nce": Recipe(
        _info_nce,
        witness=lambda: (np.array([[1.0, 0.2], [0.9, -0.4], [-1.0, 0.3], [0.2, -1.0]]),
                         (np.array([0, 0, 1, 1]),), {}),
    ),
    # Linear-fractional in p: curvature of both signs (all-positive targets, mixed predictions).
    "dice": Recipe(
        _segmentation,
        witness=lambda: (np.array([[0.9, 0.1, 0.8, 0.2]]), (np.array([[1.0, 0.0, 1.0, 1.0]]),),
                         {"smooth": 0.1}),
    ),
    "tversky": Recipe(
        _segmentation,
        witness=lambda: (np.array([[0.9, 0.1, 0.8, 0.2]]), (np.array([[1.0, 0.0, 1.0, 1.0]]),),
                         {"smooth": 0.1}),
    ),
    "focal_tversky": Recipe(
        _segmentation,
        witness=lambda: (np.array([[0.9, 0.1, 0.8, 0.2]]), (np.array([[1.0, 0.0, 1.0, 1.0]]),),
                         {"smooth": 0.1}),
    ),
    "ctc": Recipe(
        _ctc,
        witness=lambda: _ctc(np.random.default_rng(0), None),
    ),
    "combine": Recipe(_task_losses, reduce=False),
    "uncertainty_weighted": Recipe(_uncertainty, reduce=False, gradcheck_argnums=(1,)),
}


def _multilabel_scores(rng, scale):
    t = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]], dtype=bool)  # mixed rows
    if scale is None:
        return rng.normal(size=(N, K)) * 3, (t,), {}
    return scale * np.where(t, -1.0, 1.0), (t,), {}  # every target below every non-target


def _multilabel_logits(rng, scale):
    t = (rng.uniform(size=(N, K)) < 0.5).astype(np.float64)
    if scale is None:
        return rng.normal(size=(N, K)) * 3, (t,), {}
    return -(2 * t - 1) * scale, (t,), {}  # confidently wrong on every class


def _cosine_similarity(rng, scale):
    t = rng.normal(size=(N, 3))
    p = rng.normal(size=(N, 3))
    return (p if scale is None else scale * p), (t,), {}  # ever longer predictions


def _rates(rng, scale):
    counts = rng.poisson(3.0, size=N).astype(np.float64) + 1.0  # >= 1: the log term matters
    if scale is None:
        return rng.uniform(0.5, 5.0, size=N), (counts,), {}
    return np.full(N, 1.0 / scale), (counts,), {}  # rates -> 0 below counts >= 1


# Issue 17 (PyTorch and Keras losses): margin, soft-margin, similarity, focal-on-probabilities,
# label-noise and count losses.
TORCH_KERAS = {
    "multi_margin": Recipe(_multiclass_logits),
    "multilabel_margin": Recipe(_multilabel_scores),
    "categorical_hinge": Recipe(_multiclass_logits),
    "hinge_embedding": Recipe(_margin_scores),
    "soft_margin": Recipe(_margin_scores),
    "multilabel_soft_margin": Recipe(_multilabel_logits),
    # -cos(p, t) peaks where p points away from t: negative tangential curvature there.
    "cosine_similarity": Recipe(
        _cosine_similarity,
        witness=lambda: (np.array([[-1.0, 0.1]]), (np.array([[1.0, 0.0]]),), {}),
    ),
    # Cosines of unit vectors: the same kind of saddle as info_nce (eigenvalue about -470 at
    # gamma = 80 here).
    "circle": Recipe(
        _info_nce,
        witness=lambda: (np.array([[1.0, 0.2], [0.9, -0.4], [-1.0, 0.3], [0.2, -1.0]]),
                         (np.array([0, 0, 1, 1]),), {}),
    ),
    "binary_focal": Recipe(_binary_probs),
    "categorical_focal": Recipe(_categorical_probs),
    # (1 - p_y^q) / q in the logits: eigenvalue -0.15 at x = (-1, 0, 0), y = 0 (q = 0.7).
    "generalized_cross_entropy": Recipe(
        _multiclass_logits,
        witness=lambda: (np.array([[-1.0, 0.0, 0.0]]), (np.array([0]),), {}),
    ),
    "poisson": Recipe(_rates),
}


def _generalized_kl(rng, scale):
    t = rng.uniform(0.0, 2.0, size=(N, K))  # unnormalised measures
    if scale is None:
        return rng.uniform(0.2, 2.0, size=(N, K)), (t,), {}
    return np.full((N, K), 1.0 / scale), (t,), {}  # p -> 0 below t > 0: gradient 1 - t/p grows


def _ranking(rng, scale):
    y = rng.integers(0, 3, size=(N, K)).astype(np.float64)
    y[:, 0] = 2.0  # every list has a relevant item
    if scale is None:
        return rng.normal(size=(N, K)) * 3, (y,), {}
    return -scale * (y > 0), (y,), {}  # every relevant item ranked far below the others


# Issue 17 (optax losses): Poly-1, sparsemax / Fenchel-Young, perceptrons, generalized KL,
# ranking softmax, l2_loss.
OPTAX_LOSSES = {
    # Two classes, margin m = x_y - x_1 = -2: curvature along (1, -1) is
    # 2 s (1 - s) (1 - eps (1 - 2 s)) = -0.11 at s = sigmoid(-2), eps = 2 (numpy closed form).
    "poly_loss": Recipe(
        _multiclass_logits, witness=lambda: (np.array([[-2.0, 0.0]]), (np.array([0]),), {})
    ),
    "sparsemax_loss": Recipe(_binary_logits),
    "multiclass_sparsemax_loss": Recipe(_multiclass_logits),
    "fenchel_young": Recipe(_multiclass_logits),
    "perceptron": Recipe(_margin_scores),
    "multiclass_perceptron": Recipe(_multiclass_logits),
    "generalized_kl_divergence": Recipe(_generalized_kl),
    "ranking_softmax": Recipe(_ranking),
    "l2_loss": Recipe(_regression),
}


RECIPES: dict[str, Recipe] = {
    **{
        name: Recipe(_regression)
        for name in ("mse", "mae", "huber", "smooth_l1", "quantile", "log_cosh",
                     "epsilon_insensitive", "mape")
    },
    # (log1p(p) - c)^2 has curvature 2(1 - (log1p(p) - c)) / (1 + p)^2 < 0 once log1p(p) > c + 1.
    "msle": Recipe(_msle, witness=lambda: (np.array([100.0]), (np.array([10.0]),), {})),
    "sigmoid_binary_cross_entropy": Recipe(_binary_logits),
    # Focal's (1 - p)^gamma factor bends the loss: -(1 - s)^2 log s, s = sigmoid(x), has second
    # difference -0.047 at x = -3.8 (a badly classified positive; numpy closed form, h = 1e-3).
    "sigmoid_focal": Recipe(
        _binary_logits, witness=lambda: (np.array([-3.8]), (np.array([1.0]),), {})
    ),
    "binary_cross_entropy": Recipe(_binary_probs),
    "hinge": Recipe(_margin_scores),
    "squared_hinge": Recipe(_margin_scores),
    "multiclass_hinge": Recipe(_multiclass_logits),
    "softmax_cross_entropy": Recipe(_multiclass_logits),
    "softmax_focal": Recipe(
        _multiclass_logits,
        witness=lambda: (np.array([[-3.25, 0.0, 0.0]]), (np.array([0]),), {}),
    ),
    "categorical_cross_entropy": Recipe(_categorical_probs),
    "kl_divergence": Recipe(_kl_probs),
    "kl_divergence_with_logits": Recipe(_kl_logits),
    "nll": Recipe(_nll),
    "gaussian_nll": Recipe(_gaussian),
    "poisson_nll": Recipe(_poisson),
    **PART_2,
    **TORCH_KERAS,
    **OPTAX_LOSSES,
}

def missing_recipes() -> list[str]:
    """Registered losses without a recipe (the catalogue tests fail naming them)."""
    return sorted(set(losses.names()) - set(RECIPES))


def as_jax(tree):
    """Float leaves as float64 jax arrays, other arrays as jax arrays, strings unchanged."""
    return jax.tree.map(lambda v: v if isinstance(v, str) else jnp.asarray(v, jnp.float64)
                        if np.asarray(v).dtype.kind == "f" else jnp.asarray(v), tree)


def gradcheck_feeds(name: str, rng: np.random.Generator) -> list[tuple[tuple, dict, int]]:
    """``[(args, kwargs, argnum), ...]``: the gradient checks of loss ``name``, from its recipe.

    The recipe's moderate draw (``scale=None``) gives ``args = (first, *rest)``; the first
    argument is always checked, and ``Recipe.gradcheck_argnums`` adds the other differentiable
    arguments (the second embedding of a pair, the log-variances of uncertainty weighting).
    Points are random, so away from every kink with probability 1.
    """
    recipe = RECIPES[name]
    first, rest, kwargs = recipe.draw(rng, None)
    args = (first, *rest)
    kwargs = {**recipe.hyper, **kwargs}
    return [(args, kwargs, argnum) for argnum in (0, *recipe.gradcheck_argnums)]


def central_difference(f: Callable[[np.ndarray], Any], x: Any, *, step: float) -> np.ndarray:
    """Jacobian of ``f`` at ``x`` by central differences in float64.

    ``J[..., i] = (f(x + step e_i) - f(x - step e_i)) / (2 step)``, returned with shape
    ``f(x).shape + x.shape`` (the gradient for a scalar ``f``; for ``f`` a gradient, the
    Hessian with ``H[j, i] = d g_j / d x_i``). Error ``~ step^2 |f'''| + eps |f| / step``:
    ``step = 1e-6`` balances both near 1e-10 for values of order 1. ``f`` receives numpy
    float64 arrays shaped like ``x`` and may return numpy or jax values.
    """
    x = np.asarray(x, dtype=np.float64)
    cols = []
    for i in range(x.size):
        e = np.zeros(x.size)
        e[i] = step
        e = e.reshape(x.shape)
        hi = np.asarray(f(x + e), dtype=np.float64)
        lo = np.asarray(f(x - e), dtype=np.float64)
        cols.append((hi - lo) / (2 * step))
    out_shape = cols[0].shape if cols else ()
    return np.stack(cols, axis=-1).reshape(out_shape + x.shape)


def central_difference_hessian(f: Callable[[np.ndarray], Any], x: Any, *, step: float
                               ) -> np.ndarray:
    """Hessian of a scalar ``f`` by second central differences of its values, in float64.

    ``H[i, j] = (f(x + h e_i + h e_j) - f(x + h e_i - h e_j) - f(x - h e_i + h e_j)
    + f(x - h e_i - h e_j)) / (4 h^2)`` with ``h = step``, shape ``(x.size, x.size)``. Error
    ``~ h^2 |f''''| + eps |f| / h^2``: ``h = 1e-4`` gives about 1e-8 for values of order 1.
    """
    x = np.asarray(x, dtype=np.float64)
    flat = x.ravel()
    n = flat.size
    H = np.zeros((n, n))

    def at(i, j, si, sj):
        z = flat.copy()
        z[i] += si * step
        z[j] += sj * step
        return float(f(z.reshape(x.shape)))

    for i in range(n):
        for j in range(i, n):
            H[i, j] = H[j, i] = (at(i, j, 1, 1) - at(i, j, 1, -1) - at(i, j, -1, 1)
                                 + at(i, j, -1, -1)) / (4 * step * step)
    return H
