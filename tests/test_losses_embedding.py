"""Embedding losses: float64 references, PyTorch formulas, optax parity, zero-distance and
zero-vector derivatives, bad inputs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import third_party

from lossopt import losses

N, D = 6, 4


def _vectors(seed, count=3, shape=(N, D)):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=shape) for _ in range(count)]


# Independent float64 references (numpy, from the papers / PyTorch documentation).


def _dist_ref(x, y, kind):
    if kind == "squared_euclidean":
        return np.sum((x - y) ** 2, -1)
    if kind == "euclidean":
        return np.sqrt(np.sum((x - y) ** 2, -1))
    cos = np.sum(x * y, -1) / (np.linalg.norm(x, axis=-1) * np.linalg.norm(y, axis=-1))
    return 1 - cos


def _triplet_ref(a, p, n, margin, kind, swap):
    d_neg = _dist_ref(a, n, kind)
    if swap:
        d_neg = np.minimum(d_neg, _dist_ref(p, n, kind))
    return np.maximum(_dist_ref(a, p, kind) - d_neg + margin, 0)


def test_registered_with_properties():
    expected = {
        # name: (input_kind, convex, smooth, robust)
        # Bounded anchor gradient (2 (n - p) for squared distances): checked numerically in
        # tests/test_loss_properties.py like every robust claim.
        "triplet": ("embeddings", False, False, True),
        "contrastive": ("embeddings", False, False, False),
        "cosine_embedding": ("embeddings", False, False, True),
        "margin_ranking": ("scores", True, False, True),
        "info_nce": ("embeddings", False, True, True),
    }
    for name, props in expected.items():
        e = losses.info(name)
        assert e.task == "embedding" and (e.input_kind, e.convex, e.smooth, e.robust) == props


def _triplets():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(N, D))
    p = a + 0.5 * rng.normal(size=(N, D))
    n = a + np.array([0.1, 0.4, 0.8, 1.5, 0.3, 2.5])[:, None] * rng.normal(size=(N, D))
    return a, p, n


MARGINS = {"squared_euclidean": 1.0, "euclidean": 0.5, "cosine": 0.1}


@pytest.mark.parametrize("distance", ["squared_euclidean", "euclidean", "cosine"])
@pytest.mark.parametrize("swap", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_triplet_matches_reference(distance, swap, reduction):
    a, p, n = _triplets()
    margin = MARGINS[distance]
    expected = _triplet_ref(a, p, n, margin, distance, swap)
    assert 0 < np.count_nonzero(expected) < N  # both sides of the hinge are exercised
    assert np.any(_dist_ref(p, n, distance) < _dist_ref(a, n, distance))  # swap matters
    expected = {"mean": expected.mean(), "sum": expected.sum(), "none": expected}[reduction]
    got = losses.triplet(*map(jnp.asarray, (a, p, n)), margin=margin, distance=distance,
                         swap=swap, reduction=reduction)
    # Same float64 formulas; the unit-vector route to the cosine differs by round-off.
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)


def test_triplet_seed_document_formula():
    a, p, n = _vectors(1)
    # The seed's TensorFlow code: mean(max(sum((a-p)^2) - sum((a-n)^2) + margin, 0)).
    seed = np.mean(np.maximum(((a - p) ** 2).sum(-1) - ((a - n) ** 2).sum(-1) + 0.2, 0.0))
    got = losses.triplet(jnp.asarray(a), jnp.asarray(p), jnp.asarray(n))  # defaults
    assert float(got) == pytest.approx(seed, rel=1e-13)  # same formula, float64


def test_triplet_pytorch_euclidean_convention_and_optax_l2():
    a, p, n = (0.3 * v for v in _vectors(2))
    # torch.nn.TripletMarginLoss(p=2): d(x, y) = ||x - y + eps||_2 with eps = 1e-6 (docs of
    # pairwise_distance), loss = max(d(a, p) - d(a, n) + margin, 0), mean over the batch.
    eps = 1e-6
    d = lambda x, y: np.linalg.norm(x - y + eps, axis=-1)
    torch_like = np.maximum(d(a, p) - d(a, n) + 1.0, 0)
    ours = losses.triplet(*map(jnp.asarray, (a, p, n)), margin=1.0, distance="euclidean",
                          reduction="none")
    # The eps shift moves each distance by at most eps * sqrt(D) = 2e-6.
    np.testing.assert_allclose(ours, torch_like, atol=4 * eps * np.sqrt(D))
    # optax's norm_degree = 2 (where it is right) without its eps: the same function.
    ref = optax.losses.triplet_margin_loss(*map(jnp.asarray, (a, p, n)), margin=1.0, eps=0.0)
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-14)


def test_optax_odd_norm_triplet_is_not_a_distance():
    # Why optax is not a reference for odd norms: with norm_degree=1 its "distance" is
    # sum(a - p), negative when a < p. Ours has no such option; the L2 case is checked above.
    a, p, n = jnp.zeros((1, 2)), jnp.ones((1, 2)), jnp.zeros((1, 2))
    value = optax.losses.triplet_margin_loss(a, p, n, norm_degree=1, margin=1.0, eps=0.0)
    assert float(value[0]) == pytest.approx(0.0)  # -2 - 0 + 1 < 0: a far positive is "free"
    assert float(losses.triplet(a, p, n, margin=1.0, distance="euclidean")) > 1.0


@jax.jit
def _triplet_derivatives(a, p, n):
    out = {}
    for kind in ("squared_euclidean", "euclidean", "cosine"):
        f = lambda a, p, n, kind=kind: losses.triplet(a, p, n, distance=kind, swap=True,
                                                      reduction="sum")
        out[kind] = (f(a, p, n), jax.grad(f, (0, 1, 2))(a, p, n), jax.hessian(f)(a, p, n))
    return out


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("case", ["all_equal", "anchor_is_positive", "zero_vectors"])
def test_triplet_finite_derivatives_at_zero_distance(dtype, case):
    v = jnp.asarray([[0.5, -1.0, 2.0]], dtype)
    zero = jnp.zeros_like(v)
    a, p, n = {"all_equal": (v, v, v), "anchor_is_positive": (v, v, -v),
               "zero_vectors": (zero, zero, v)}[case]
    for kind, results in _triplet_derivatives(a, p, n).items():
        for leaf in jax.tree_util.tree_leaves(results):
            assert leaf.dtype == dtype and np.all(np.isfinite(np.asarray(leaf))), (kind, case)
    if case == "all_equal":
        # Every distance is 0: loss = margin, and the minimum-norm subgradient is 0.
        value, grads, _ = _triplet_derivatives(a, p, n)["euclidean"]
        assert float(value) == pytest.approx(0.2, rel=1e-6)
        assert all(np.all(np.asarray(g) == 0) for g in grads)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_contrastive_matches_reference(reduction):
    x1, x2 = (0.4 * v for v in _vectors(3, count=2))
    y = np.array([0, 1, 1, 0, 1, 0.25])  # 1 = dissimilar (seed); a soft label too
    d = np.linalg.norm(x1 - x2, axis=-1)
    expected = (1 - y) * d**2 + y * np.maximum(1.0 - d, 0) ** 2  # the seed's formula
    assert np.any((y > 0) & (d < 1.0)) and np.any((y > 0) & (d > 1.0))  # hinge both ways
    expected = {"mean": expected.mean(), "sum": expected.sum(), "none": expected}[reduction]
    got = losses.contrastive(jnp.asarray(x1), jnp.asarray(x2), jnp.asarray(y), margin=1.0,
                             reduction=reduction)
    np.testing.assert_allclose(got, expected, rtol=1e-12)  # same float64 formula


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_contrastive_finite_derivatives_at_zero_distance(dtype):
    x = jnp.asarray([[1.0, 2.0], [1.0, 2.0]], dtype)
    labels = jnp.asarray([0.0, 1.0], dtype)
    f = lambda a: losses.contrastive(a, x, labels, reduction="sum")
    value, grad, hess = jax.jit(lambda a: (f(a), jax.grad(f)(a), jax.hessian(f)(a)))(x)
    # d = 0: similar pair contributes 0, dissimilar margin^2 = 1; the minimum-norm
    # subgradient of -2 m d at d = 0 is 0, so the gradient is exactly 0.
    assert float(value) == pytest.approx(1.0)
    assert np.all(np.asarray(grad) == 0) and np.all(np.isfinite(np.asarray(hess)))


def test_cosine_embedding_and_margin_ranking_match_pytorch_formulas():
    x1, x2 = _vectors(4, count=2)
    y = np.array([1, -1, 1, -1, -1, 1])
    cos = np.sum(x1 * x2, -1) / (np.linalg.norm(x1, axis=-1) * np.linalg.norm(x2, axis=-1))
    # torch.nn.CosineEmbeddingLoss docs: 1 - cos if y = 1, max(0, cos - margin) if y = -1.
    expected = np.where(y == 1, 1 - cos, np.maximum(0, cos - 0.1))
    # Jitted, inputs closed over (the eager value checks still run): one compile, not one per
    # operation.
    got = jax.jit(lambda: losses.cosine_embedding(jnp.asarray(x1), jnp.asarray(x2),
                                                  jnp.asarray(y), margin=0.1,
                                                  reduction="none"))()
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)  # float64 round-off
    s1, s2 = x1[:, 0], x2[:, 0]
    # torch.nn.MarginRankingLoss docs: max(0, -y (x1 - x2) + margin).
    expected = np.maximum(0, -y * (s1 - s2) + 0.3)
    got = jax.jit(lambda: losses.margin_ranking(jnp.asarray(s1), jnp.asarray(s2),
                                                jnp.asarray(y), margin=0.3, reduction="none"))()
    np.testing.assert_allclose(got, expected, rtol=1e-14, atol=1e-15)
    # At the hinge the minimum-norm subgradient 0 (jnp.maximum would give 1/2).
    g = jax.jit(jax.grad(losses.margin_ranking))(jnp.asarray([1.0]), jnp.asarray([1.0]),
                                                 jnp.asarray([1]))
    assert float(g[0]) == 0.0


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_cosine_losses_are_safe_at_zero_vectors(dtype):
    zero = jnp.zeros((2, 3), dtype)
    other = jnp.asarray([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]], dtype)
    labels = jnp.asarray([1, -1])
    f = lambda a: losses.cosine_embedding(a, other, labels, reduction="sum")
    value, grad, hess = jax.jit(lambda a: (f(a), jax.grad(f)(a), jax.hessian(f)(a)))(zero)
    # cos(0, .) := 0: the similar pair costs 1 - 0, the dissimilar one max(0, 0 - 0) = 0.
    assert float(value) == pytest.approx(1.0)
    assert np.all(np.isfinite(np.asarray(grad))) and np.all(np.isfinite(np.asarray(hess)))
    e = jnp.asarray([[0.0, 0.0], [1.0, 0.5], [0.3, -1.0], [0.0, 0.0]], dtype)
    g = lambda x: losses.info_nce(x, jnp.asarray([0, 0, 1, 1]), temperature=0.5)
    results = jax.jit(lambda x: (g(x), jax.grad(g)(x), jax.hessian(g)(x)))(e)
    for leaf in results:
        assert np.all(np.isfinite(np.asarray(leaf)))


def _info_nce_ref(e, labels, tau):
    """Khosla et al.'s L_out, written with explicit loops."""
    u = e / np.linalg.norm(e, axis=1, keepdims=True)
    s = u @ u.T / tau
    per_anchor, has = [], []
    for i in range(len(e)):
        others = [k for k in range(len(e)) if k != i]
        positives = [j for j in others if labels[j] == labels[i]]
        log_den = np.log(np.sum(np.exp(s[i, others])))
        has.append(bool(positives))
        per_anchor.append(-np.mean([s[i, j] - log_den for j in positives]) if positives else 0.0)
    return np.array(per_anchor), np.array(has)


@pytest.mark.parametrize(
    "labels",
    [
        [0, 0, 1, 1, 2, 2],  # SimCLR pairs: NT-Xent
        [0, 0, 0, 1, 1, 2],  # several positives, and an anchor (id 2) without any
    ],
)
def test_info_nce_matches_reference(labels):
    (e,) = _vectors(5, count=1)
    labels = np.array(labels)
    per_anchor, has = _info_nce_ref(e, labels, 0.3)
    got = losses.info_nce(jnp.asarray(e), jnp.asarray(labels), temperature=0.3, reduction="none")
    np.testing.assert_allclose(got, per_anchor, rtol=1e-12, atol=1e-14)  # float64 round-off
    mean = losses.info_nce(jnp.asarray(e), jnp.asarray(labels), temperature=0.3)
    # Anchors without positives are left out of the mean.
    assert float(mean) == pytest.approx(per_anchor[has].mean(), rel=1e-12)


def test_info_nce_equals_optax_ntxent_for_one_positive_per_anchor():
    (e,) = _vectors(6, count=1, shape=(8, 5))
    labels = jnp.asarray([0, 1, 2, 3, 0, 1, 2, 3])
    ours = losses.info_nce(jnp.asarray(e), labels, temperature=0.07)
    with third_party():  # optax's ntxent xors a bool mask with a Python int
        theirs = jax.jit(optax.losses.ntxent)(jnp.asarray(e), labels, 0.07)
    # optax normalises with an epsilon = machine eps on the norms (~1e-16 relative here).
    assert float(ours) == pytest.approx(float(theirs), rel=1e-10)


def test_jit_and_eager_agree_and_weights_reduce():
    a, p, n = map(jnp.asarray, _vectors(7))
    jitted = jax.jit(lambda a, p, n: losses.triplet(a, p, n, margin=2.0, reduction="none"))
    eager = losses.triplet(a, p, n, margin=2.0, reduction="none")
    np.testing.assert_allclose(jitted(a, p, n), eager, rtol=1e-14)  # same arithmetic
    w = jnp.asarray([1.0, 0.0, 2.0, 0.0, 0.0, 1.0])
    expected = (eager[0] + 2 * eager[2] + eager[5]) / 4
    got = losses.triplet(a, p, n, margin=2.0, weights=w)
    assert float(got) == pytest.approx(float(expected), rel=1e-14)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: losses.triplet(jnp.ones((2, 3)), jnp.ones((2, 3)), jnp.ones((2, 4))),
         ValueError, "negative"),
        (lambda: losses.triplet(*[jnp.ones((2, 3))] * 3, distance="l1"), ValueError, "distance"),
        (lambda: losses.triplet(*[jnp.ones((2, 3))] * 3, margin=-1.0), ValueError, "margin"),
        (lambda: losses.contrastive(jnp.ones((2, 3)), jnp.ones((2, 3)), jnp.asarray([0, 2])),
         ValueError, "labels"),
        (lambda: losses.contrastive(jnp.ones((2, 3)), jnp.ones((2, 3)), jnp.asarray([0, 1, 1])),
         ValueError, "labels"),
        (lambda: losses.cosine_embedding(jnp.ones((2, 3)), jnp.ones((2, 3)), jnp.asarray([0, 1])),
         ValueError, "labels"),
        (lambda: losses.margin_ranking(jnp.ones(2), jnp.ones(2), jnp.asarray([1, 1, 1])),
         ValueError, "labels"),
        (lambda: losses.info_nce(jnp.ones((4, 2)), jnp.asarray([0.0, 0, 1, 1])),
         TypeError, "labels"),
        (lambda: losses.info_nce(jnp.ones((4, 2)), jnp.asarray([0, 0, 1])), ValueError, "labels"),
        (lambda: losses.info_nce(jnp.ones((4, 2)), jnp.asarray([0, 0, 1, 1]), temperature=0.0),
         ValueError, "temperature"),
        (lambda: losses.info_nce(jnp.ones(4), jnp.asarray([0, 0, 1, 1])), ValueError, "2-D"),
    ],
)
def test_invalid_inputs_raise_naming_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()
