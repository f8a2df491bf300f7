"""Losses a PyTorch or Keras user reaches for (issue 17): references, edges and errors.

Every loss and option is checked against a float64 numpy reference written from the formula
here (no lossopt call inside a reference), values and gradients (gradients against central
differences of that reference, away from kinks). Where PyTorch has the loss, it is compared
with torch (values and autograd gradients); where it does not, optax (where it overlaps) and
the values Keras publishes in its docstrings (each cited where used). Then the edge table
(finite value, gradient and Hessian at saturation, at kinks and at +-1e4, in float32 and
float64; the minimum-norm subgradient at kinks) and the bad-input errors.
"""

from __future__ import annotations

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import central_difference

from lossopt import losses

RNG = np.random.default_rng(17)


def _np_log_sigmoid(x):
    return -np.logaddexp(0.0, -x)


def _np_log_softmax(x):
    m = np.max(x, -1, keepdims=True)
    return x - m - np.log(np.sum(np.exp(x - m), -1, keepdims=True))


def _check(fn, first, rest, kwargs, ref_none, *, grad_atol=1e-7):
    """Values ("none" and "mean") and the gradient of the "sum" against a numpy reference.

    ``ref_none(first)`` returns the per-example values; rtol 1e-10 on values (float64 formula
    against float64 formula: round-off only); the gradient is compared with central differences
    of the reference (about 1e-10 error, checked at atol 1e-7 scaled by its size).
    """
    xj = jnp.asarray(first)
    rj = tuple(jnp.asarray(r) for r in rest)

    # One compiled program per case (cheaper than op-by-op dispatch). The inputs are closed
    # over, i.e. concrete while tracing: the losses' eager value checks still run on them.
    @jax.jit
    def program():
        return (fn(xj, *rj, **kwargs, reduction="none"), fn(xj, *rj, **kwargs),
                jax.grad(lambda z: fn(z, *rj, **kwargs, reduction="sum"))(xj))

    got, mean, g = program()
    ref = ref_none(np.asarray(first, np.float64))
    np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(float(mean), np.mean(ref), rtol=1e-10, atol=1e-12)
    g = np.asarray(g)
    g_ref = central_difference(lambda z: np.sum(ref_none(z)), first, step=1e-6)
    np.testing.assert_allclose(g, g_ref, atol=grad_atol * max(1.0, np.abs(g_ref).max()))
    return g


# --------------------------------------------------------------------------------------------
# numpy references (float64), written from each loss's formula
# --------------------------------------------------------------------------------------------


def np_multi_margin(s, y, p=1, margin=1.0, w=None):
    n, k = s.shape
    out = np.zeros(n)
    for i in range(n):
        for j in range(k):
            if j != y[i]:
                out[i] += max(0.0, margin - s[i, y[i]] + s[i, j]) ** p
        out[i] *= 1.0 if w is None else w[y[i]]
    return out / k


def np_multilabel_margin(s, t):
    n, k = s.shape
    out = np.zeros(n)
    for i in range(n):
        for j in np.flatnonzero(t[i]):
            for c in np.flatnonzero(~t[i]):
                out[i] += max(0.0, 1.0 - (s[i, j] - s[i, c]))
    return out / k


def np_categorical_hinge(s, t):
    # Keras' formula: max(0, 1 + max((1 - t) * s) - sum(t * s)).
    return np.maximum(0.0, 1.0 + np.max((1 - t) * s, -1) - np.sum(t * s, -1))


def np_hinge_embedding(x, y, margin=1.0):
    return np.where(y == 1, x, np.maximum(0.0, margin - x))


def np_soft_margin(x, y):
    return np.log1p(np.exp(-y * x))


def np_multilabel_soft_margin(x, t, w=None):
    bce = -(t * _np_log_sigmoid(x) + (1 - t) * _np_log_sigmoid(-x))
    if w is not None:
        bce = bce * w
    return bce.mean(-1)


def np_cosine_loss(p, t):
    return -np.sum(p * t, -1) / (np.linalg.norm(p, axis=-1) * np.linalg.norm(t, axis=-1))


def np_circle_keras(e, labels, gamma=80.0, margin=0.4):
    """Keras' circle loss written with its cosine *distances* (the form of keras.losses.circle).

    Independent of lossopt's cosine-similarity form: d = max(1 - <u_i, u_j>, 0), positive
    weights max(m + d, 0), negative weights max(1 + m - d, 0), optimal distances m and 1 - m.
    """
    u = e / np.linalg.norm(e, axis=1, keepdims=True)
    d = np.maximum(1.0 - u @ u.T, 0.0)
    n = len(labels)
    out = np.zeros(n)
    for i in range(n):
        pos = [j for j in range(n) if j != i and labels[j] == labels[i]]
        neg = [j for j in range(n) if labels[j] != labels[i]]
        if not pos or not neg:
            continue
        lp = [-gamma * max(margin + d[i, j], 0) * (margin - d[i, j]) for j in pos]
        ln = [gamma * max(1 + margin - d[i, j], 0) * (1 - margin - d[i, j]) for j in neg]
        z = np.logaddexp.reduce(lp) + np.logaddexp.reduce(ln)
        out[i] = np.logaddexp(0.0, z)
    return out


def np_binary_focal(p, y, gamma=2.0, alpha=None, ls=0.0):
    # Keras' binary_focal_crossentropy, from_logits=False, without its 1e-7 clip.
    y = y * (1 - ls) + 0.5 * ls
    bce = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    pt = y * p + (1 - y) * (1 - p)
    out = (1 - pt) ** gamma * bce
    if alpha is not None:
        out = (y * alpha + (1 - y) * (1 - alpha)) * out
    return out


def np_categorical_focal(p, t, gamma=2.0, alpha=1.0, ls=0.0):
    # Keras' categorical_focal_crossentropy, from_logits=False, without its clip.
    k = p.shape[-1]
    t = t * (1 - ls) + ls / k
    return np.sum(alpha * (1 - p) ** gamma * -t * np.log(p), -1)


def np_gce(x, y, q):
    p = np.exp(_np_log_softmax(x))[np.arange(len(y)), y]
    return (1 - p**q) / q


def np_poisson_rate(r, c, eps):
    return r - c * np.log(r + eps)


def np_stirling(c):
    cs = np.where(c > 1, c, 2.0)
    return np.where(c > 1, cs * np.log(cs) - cs + 0.5 * np.log(2 * np.pi * cs), 0.0)


def np_kl_log(lp, lt):
    return np.sum(np.exp(lt) * (lt - lp), -1)


def _simplex(shape):
    z = RNG.normal(size=shape)
    return np.exp(_np_log_softmax(z))


# --------------------------------------------------------------------------------------------
# Margin family against numpy (always) and torch (where installed)
# --------------------------------------------------------------------------------------------

S = RNG.normal(size=(5, 4))
Y = RNG.integers(0, 4, size=5)
CW = np.array([0.5, 2.0, 1.0, 1.5])
T_MULTI = np.array([[1, 0, 0, 1], [0, 1, 0, 0], [1, 1, 1, 0], [0, 0, 0, 0], [1, 0, 1, 1]], bool)
PM1 = RNG.choice([-1.0, 1.0], size=6)
X6 = RNG.normal(size=6) * 2


@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("margin,cw", [(1.0, None), (0.5, CW)])
def test_multi_margin_matches_numpy(p, margin, cw):
    kw = {"p": p, "margin": margin} | ({} if cw is None else {"class_weights": jnp.asarray(cw)})
    _check(losses.multi_margin, S, (Y,), kw, lambda s: np_multi_margin(s, Y, p, margin, cw))


def test_multilabel_margin_matches_numpy():
    _check(losses.multilabel_margin, S, (T_MULTI,), {}, lambda s: np_multilabel_margin(s, T_MULTI))
    # Rows without targets (row 3) and float 0/1 labels: the same values.
    got = jax.jit(lambda: losses.multilabel_margin(jnp.asarray(S), jnp.asarray(T_MULTI, float),
                                                   reduction="none"))()
    np.testing.assert_allclose(np.asarray(got), np_multilabel_margin(S, T_MULTI), rtol=1e-12)
    assert float(got[3]) == 0.0


def test_categorical_hinge_matches_numpy_for_general_targets():
    soft = _simplex((5, 4))
    multi = T_MULTI.astype(float)
    for t in (np.eye(4)[Y], soft, multi):
        _check(losses.categorical_hinge, S, (t,), {}, functools.partial(
            lambda s, t: np_categorical_hinge(s, t), t=t))
    ids = jax.jit(lambda: losses.categorical_hinge(jnp.asarray(S), jnp.asarray(Y),
                                                   reduction="none"))()
    np.testing.assert_allclose(np.asarray(ids), np_categorical_hinge(S, np.eye(4)[Y]), rtol=1e-12)


def test_categorical_hinge_keras_published_value():
    # tf.keras.losses.CategoricalHinge docstring: y_true = [[0, 1], [0, 0]],
    # y_pred = [[0.6, 0.4], [0.4, 0.6]] -> 1.4.
    s, t = jnp.array([[0.6, 0.4], [0.4, 0.6]]), jnp.array([[0.0, 1.0], [0.0, 0.0]])
    w = jnp.array([1.0, 0.0])

    @jax.jit  # one compiled program (inputs closed over: the eager value checks still run)
    def program():
        return (losses.categorical_hinge(s, t), losses.categorical_hinge(s, t, reduction="sum"),
                losses.categorical_hinge(s, t, weights=w),
                losses.categorical_hinge(s, t, weights=w, reduction="sum"),
                losses.categorical_hinge(jnp.array([1.0, 0.0, 1.0]), jnp.array([0.0, 1.0, 1.0])))

    mean, total, weighted, weighted_sum, got = program()
    assert float(mean) == pytest.approx(1.4, abs=1e-12)
    # ... with reduction SUM -> 2.8; with sample_weight=[1, 0] -> 0.6, because Keras divides
    # by the batch size; lossopt's weighted "mean" divides by sum(w): 1.2 (the sum is 0.6 * 2).
    assert float(total) == pytest.approx(2.8, abs=1e-12)
    assert float(weighted) == pytest.approx(1.2, abs=1e-12)
    assert float(weighted_sum) == pytest.approx(2 * 0.6, abs=1e-12)
    # TF 1.14's documented usage: ch([0., 1., 1.], [1., 0., 1.]) -> 1.0 (one example).
    assert float(got) == pytest.approx(1.0, abs=1e-12)


def test_categorical_hinge_differs_from_crammer_singer_as_documented():
    # s_y = 0.5 above negative wrong scores: Keras' neg is 0 (the true class's (1 - t) s = 0).
    s, y = jnp.array([[0.5, -1.0, -1.0]]), jnp.array([0])
    s2 = jnp.array([[0.5, 0.2, -1.0]])
    # One jitted program, inputs closed over (the eager value checks still run).
    keras, crammer, keras2, crammer2 = jax.jit(lambda: (
        losses.categorical_hinge(s, y), losses.multiclass_hinge(s, y),
        losses.categorical_hinge(s2, y), losses.multiclass_hinge(s2, y)))()
    assert float(keras) == pytest.approx(0.5, abs=1e-12)
    assert float(crammer) == 0.0
    # With a non-negative wrong score they agree.
    assert float(keras2) == pytest.approx(float(crammer2), abs=1e-12)


def test_hinge_embedding_and_soft_margin_match_numpy():
    x = np.abs(X6) + 0.05  # distances, away from the kink at 1
    _check(losses.hinge_embedding, x, (PM1,), {"margin": 1.3},
           lambda z: np_hinge_embedding(z, PM1, 1.3))
    _check(losses.soft_margin, X6, (PM1,), {}, lambda z: np_soft_margin(z, PM1))
    # soft_margin is BCE on logits with labels (y + 1) / 2, elementwise.
    ref, got = jax.jit(lambda: (  # one compiled program, inputs closed over
        losses.sigmoid_binary_cross_entropy(jnp.asarray(X6), jnp.asarray((PM1 + 1) / 2),
                                            reduction="none"),
        losses.soft_margin(jnp.asarray(X6), jnp.asarray(PM1), reduction="none")))()
    np.testing.assert_allclose(np.asarray(got), np.asarray(ref), rtol=1e-12)


def test_multilabel_soft_margin_matches_numpy_and_is_bce_averaged_over_classes():
    t = RNG.uniform(size=(5, 4))
    _check(losses.multilabel_soft_margin, S, (t,), {}, lambda x: np_multilabel_soft_margin(x, t))
    _check(losses.multilabel_soft_margin, S, (t,), {"class_weights": jnp.asarray(CW)},
           lambda x: np_multilabel_soft_margin(x, t, CW))
    # The documented alias: the same "mean" as sigmoid BCE over all N K elements.
    a, b = jax.jit(lambda: (losses.multilabel_soft_margin(jnp.asarray(S), jnp.asarray(t)),
                            losses.sigmoid_binary_cross_entropy(jnp.asarray(S),
                                                                jnp.asarray(t))))()
    assert float(a) == pytest.approx(float(b), rel=1e-12)


def _torch():
    return pytest.importorskip("torch")


# Agreement with torch: both float64; rtol 1e-12 on values and gradients (the same formula in
# a different order of operations).
TORCH_TOL = {"rtol": 1e-12, "atol": 1e-14}


def _vs_torch(theirs, ours, x, their_rest, our_rest, their_kw=None, our_kw=None, *,
              per_example=lambda v: v, reductions=(("mean", "mean"), ("sum", "sum"))):
    """Compare with torch: "none" values and the gradient of their sum, then reduced values.

    ``per_example`` maps torch's "none" output to ours (KLDivLoss is elementwise);
    ``reductions`` pairs our reduction names with torch's.
    """
    torch = _torch()
    their_kw, our_kw = their_kw or {}, our_kw or {}
    xt = torch.tensor(np.asarray(x, np.float64), requires_grad=True)
    out = theirs(xt, *their_rest, **their_kw, reduction="none")
    out.sum().backward()
    xj = jnp.asarray(x)

    # One compiled program for our side (as in _check: the inputs are closed over, so the
    # losses' eager value checks still run on them while tracing).
    @jax.jit
    def program():
        return (ours(xj, *our_rest, **our_kw, reduction="none"),
                jax.grad(lambda z: jnp.sum(ours(z, *our_rest, **our_kw, reduction="none")))(xj),
                [ours(xj, *our_rest, **our_kw, reduction=mine) for mine, _ in reductions])

    got, g, reduced = program()
    np.testing.assert_allclose(np.asarray(got), per_example(out.detach().numpy()), **TORCH_TOL)
    np.testing.assert_allclose(np.asarray(g), xt.grad.numpy(), **TORCH_TOL)
    for (_, their), mine in zip(reductions, reduced, strict=True):
        ref = theirs(xt.detach(), *their_rest, **their_kw, reduction=their).numpy()
        np.testing.assert_allclose(float(mine), ref, **TORCH_TOL)


@pytest.mark.parametrize("p,margin,weighted", [(1, 1.0, False), (2, 0.7, True), (1, 0.0, True)])
def test_multi_margin_matches_torch(p, margin, weighted):
    torch = _torch()
    _vs_torch(torch.nn.functional.multi_margin_loss, losses.multi_margin, S, (torch.tensor(Y),),
              (jnp.asarray(Y),),
              {"p": p, "margin": margin, "weight": torch.tensor(CW) if weighted else None},
              {"p": p, "margin": margin} | ({"class_weights": jnp.asarray(CW)} if weighted else {}))


def _torch_to_multi_hot(t):
    """The conversion documented in ``multilabel_margin``'s docstring, verbatim."""
    valid = jnp.cumprod(t >= 0, axis=-1).astype(bool)
    rows = jnp.arange(t.shape[0])[:, None]
    return jnp.zeros(t.shape, bool).at[rows, jnp.where(valid, t, 0)].max(valid)


def test_multilabel_margin_matches_torch_through_the_documented_conversion():
    torch = _torch()
    # PyTorch's format: class indices, each row read up to its first -1.
    t_torch = np.array([[3, 0, -1, 1], [1, -1, 2, 2], [0, 1, 2, -1], [-1, 0, 0, 0],
                        [2, 0, 3, -1]])
    multi_hot = jax.jit(_torch_to_multi_hot)(jnp.asarray(t_torch))
    np.testing.assert_array_equal(np.asarray(multi_hot), T_MULTI)
    _vs_torch(torch.nn.functional.multilabel_margin_loss, losses.multilabel_margin, S,
              (torch.tensor(t_torch),), (multi_hot,))


def test_binary_margin_losses_match_torch():
    torch = _torch()
    F = torch.nn.functional
    y = torch.tensor(PM1)
    x = np.abs(X6) + 0.05
    for ours, theirs, inp, kw in (
        (losses.hinge_embedding, F.hinge_embedding_loss, x, {"margin": 1.3}),
        (losses.soft_margin, F.soft_margin_loss, X6, {}),
    ):
        _vs_torch(theirs, ours, inp, (y,), (jnp.asarray(PM1),), kw, kw)


@pytest.mark.parametrize("weighted", [False, True])
def test_multilabel_soft_margin_matches_torch(weighted):
    torch = _torch()
    t = T_MULTI.astype(float)
    _vs_torch(torch.nn.functional.multilabel_soft_margin_loss, losses.multilabel_soft_margin, S,
              (torch.tensor(t),), (jnp.asarray(t),),
              {"weight": torch.tensor(CW) if weighted else None},
              {"class_weights": jnp.asarray(CW)} if weighted else {})


def test_torch_documented_examples():
    # torch.nn.MultiMarginLoss and MultiLabelMarginLoss docs: x = [[0.1, 0.2, 0.4, 0.8]],
    # y = [3] -> 0.3250; multi-label targets [[3, 0, -1, 1]] -> 0.8500.
    x = jnp.array([[0.1, 0.2, 0.4, 0.8]])

    @jax.jit  # one compiled program (inputs closed over: the eager value checks still run)
    def program():
        t = _torch_to_multi_hot(jnp.array([[3, 0, -1, 1]]))
        return losses.multi_margin(x, jnp.array([3])), losses.multilabel_margin(x, t)

    multi, multilabel = program()
    assert float(multi) == pytest.approx(0.325, abs=1e-12)
    assert float(multilabel) == pytest.approx(0.85, abs=1e-12)


# --------------------------------------------------------------------------------------------
# Similarity losses
# --------------------------------------------------------------------------------------------


def test_cosine_similarity_matches_numpy_optax_and_keras():
    p, t = RNG.normal(size=(5, 3)), RNG.normal(size=(5, 3))
    _check(losses.cosine_similarity, p, (t,), {}, lambda z: np_cosine_loss(z, t))
    # Keras' sign: the loss is minus optax's cosine similarity (rtol: round-off only).
    ref = -np.asarray(jax.jit(optax.losses.cosine_similarity)(jnp.asarray(p), jnp.asarray(t)))
    # keras.losses.cosine_similarity docstring: [-0., -0.99999994, 0.99999994] (float32;
    # exactly 0, -1, 1 in float64), and keras.losses.CosineSimilarity's mean of the first two
    # rows is -0.5.
    yt = np.array([[0.0, 1.0], [1.0, 1.0], [1.0, 1.0]])
    yp = np.array([[1.0, 0.0], [1.0, 1.0], [-1.0, -1.0]])
    z = jnp.array([[0.0, 0.0]])

    @jax.jit  # one compiled program (inputs closed over: the eager value checks still run)
    def program():
        return (losses.cosine_similarity(jnp.asarray(p), jnp.asarray(t), reduction="none"),
                losses.cosine_similarity(jnp.asarray(yp), jnp.asarray(yt), reduction="none"),
                losses.cosine_similarity(jnp.asarray(yp[:2]), jnp.asarray(yt[:2])),
                losses.cosine_similarity(jnp.asarray(p.T), jnp.asarray(t.T), axis=0,
                                         reduction="none"),
                jax.value_and_grad(lambda q: losses.cosine_similarity(q, jnp.asarray(yt[:1])))(z))

    got, keras_rows, keras_mean, moved, (value, g) = program()
    np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(keras_rows), [0.0, -1.0, 1.0], atol=1e-15)
    assert float(keras_mean) == pytest.approx(-0.5, abs=1e-15)
    # axis: the feature axis may be any axis.
    np.testing.assert_allclose(np.asarray(moved), np.asarray(got), rtol=1e-14)
    # A zero vector gives 0 (Keras' documented rule) with a zero gradient, not NaN.
    assert float(value) == 0.0 and np.all(np.asarray(g) == 0.0)


@pytest.mark.parametrize("gamma,margin", [(80.0, 0.4), (2.0, 0.25), (256.0, 0.0)])
def test_circle_matches_the_keras_distance_form(gamma, margin):
    e = RNG.normal(size=(6, 3))
    labels = np.array([0, 0, 1, 1, 1, 2])  # anchor 5 has no positive: loss 0
    ref = lambda z: np_circle_keras(z, labels, gamma, margin)
    g = _check(losses.circle, e, (labels,), {"gamma": gamma, "margin": margin}, ref,
               grad_atol=1e-6)  # gamma = 256 makes the gradient ~1e2: differences ~1e-8
    assert np.all(g[5] != 0)  # anchor 5 still enters the other anchors' negatives
    per_anchor, a, b = jax.jit(lambda: (  # one compiled program, inputs closed over
        losses.circle(jnp.asarray(e), jnp.asarray(labels), gamma=gamma, margin=margin,
                      reduction="none"),
        losses.circle(jnp.asarray(e), jnp.asarray(labels), gamma=gamma, margin=margin),
        losses.circle(jnp.asarray(3.0 * e), jnp.asarray(labels), gamma=gamma, margin=margin)))()
    assert float(per_anchor[5]) == 0.0
    # Scale invariance: normalised inside.
    assert float(a) == pytest.approx(float(b), rel=1e-12)


def test_circle_is_finite_at_huge_gamma_and_separated_embeddings():
    e = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    y = jnp.array([0, 0, 1, 1])
    value, g = jax.jit(jax.value_and_grad(lambda z: losses.circle(z, y, gamma=1e4)))(e)
    # Each anchor's negative at cosine 1 dominates: l ~ gamma (a_p (D_p - s_p) + a_n (s_n - D_n))
    # = 1e4 (1.4 * 0.6 + 1.4 * 0.6) = 16800 (softplus of a huge argument is the argument).
    assert float(value) == pytest.approx(16800.0, rel=1e-9)
    assert np.all(np.isfinite(np.asarray(g)))


# --------------------------------------------------------------------------------------------
# Focal losses on probabilities
# --------------------------------------------------------------------------------------------

PB = RNG.uniform(0.05, 0.95, size=(4, 3))
YB = (RNG.uniform(size=(4, 3)) < 0.5).astype(float)


@pytest.mark.parametrize("gamma,alpha,ls", [(2.0, None, 0.0), (0.5, 0.25, 0.1), (0.0, None, 0.3),
                                            (3.0, 0.7, 1.0)])
def test_binary_focal_matches_the_keras_formula(gamma, alpha, ls):
    kw = {"gamma": gamma, "alpha": alpha, "label_smoothing": ls}
    _check(losses.binary_focal, PB, (YB,), kw, lambda p: np_binary_focal(p, YB, gamma, alpha, ls))


def test_binary_focal_keras_published_values_and_limits():
    # keras.losses.binary_focal_crossentropy docstring: y_true = [[0, 1], [0, 0]],
    # y_pred = [[0.6, 0.4], [0.4, 0.6]], gamma = 2 -> [0.330, 0.206] (mean over the last axis).
    ys = YB * 0.8 + 0.1

    @jax.jit  # one compiled program (inputs closed over: the eager value checks still run)
    def program():
        return (losses.binary_focal(jnp.array([[0.6, 0.4], [0.4, 0.6]]),
                                    jnp.array([[0, 1], [0, 0]]), reduction="none").mean(-1),
                losses.binary_focal(jnp.asarray(PB), jnp.asarray(YB), gamma=0.0,
                                    label_smoothing=0.2),
                losses.binary_cross_entropy(jnp.asarray(PB), jnp.asarray(ys)))

    got, a, b = program()
    np.testing.assert_allclose(np.asarray(got), [0.330, 0.206], atol=5e-4)  # 3 printed digits
    # gamma = 0, no alpha: binary_cross_entropy on the smoothed labels.
    assert float(a) == pytest.approx(float(b), rel=1e-12)


@pytest.mark.parametrize("gamma,alpha,ls", [(2.0, 1.0, 0.0), (0.5, 0.25, 0.1),
                                            (1.0, np.array([0.2, 1.0, 3.0]), 0.3)])
def test_categorical_focal_matches_the_keras_formula(gamma, alpha, ls):
    p = _simplex((4, 3))
    y = RNG.integers(0, 3, size=4)
    soft = _simplex((4, 3))
    for t, labels in ((np.eye(3)[y], y), (soft, soft)):
        kw = {"gamma": gamma, "alpha": jnp.asarray(alpha), "label_smoothing": ls}
        # Probabilities are perturbed off the simplex by the differences: compare the gradient
        # with the reference's, which is not renormalised either.
        got = jax.jit(lambda kw=kw, labels=labels: losses.categorical_focal(  # one compile;
            jnp.asarray(p), jnp.asarray(labels), **kw, reduction="none"))()  # inputs concrete
        ref = np_categorical_focal(p, t, gamma, alpha, ls)
        np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-10)
        g = jax.grad(lambda q, kw=kw, labels=labels: losses.categorical_focal(
            q, jnp.asarray(labels), **kw, reduction="sum"))
        g = np.asarray(jax.jit(g)(jnp.asarray(p)))  # jit: no value check of the perturbed p
        g_ref = central_difference(
            lambda q, t=t: np.sum(np_categorical_focal(q, t, gamma, alpha, ls)), p, step=1e-6
        )
        np.testing.assert_allclose(g, g_ref, atol=1e-7 * np.abs(g_ref).max())


def test_categorical_focal_keras_published_values_and_limits():
    # keras.losses.categorical_focal_crossentropy docstring (its default alpha = 0.25):
    # [2.63401289e-04, 6.75912094e-01] (float32).
    y_true = jnp.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    y_pred = jnp.array([[0.05, 0.9, 0.05], [0.1, 0.85, 0.05]])
    p, y = _simplex((4, 3)), RNG.integers(0, 3, size=4)

    @jax.jit  # one compiled program (inputs closed over: the eager value checks still run)
    def program():
        pj, yj = jnp.asarray(p), jnp.asarray(y)
        return (losses.categorical_focal(y_pred, y_true, alpha=0.25, reduction="none"),
                losses.categorical_focal(pj, yj, gamma=0.0, label_smoothing=0.2),
                losses.categorical_cross_entropy(pj, yj, label_smoothing=0.2),
                losses.categorical_focal(pj, jnp.asarray(np.eye(3)[y]), label_smoothing=0.2),
                losses.categorical_focal(pj, yj, label_smoothing=0.2))

    got, a, b, c, d = program()
    np.testing.assert_allclose(np.asarray(got), [2.63401289e-04, 6.75912094e-01], rtol=1e-6)
    # gamma = 0, alpha None: categorical_cross_entropy with the same label smoothing.
    assert float(a) == pytest.approx(float(b), rel=1e-12)
    # Class ids and one-hot rows agree.
    assert float(c) == pytest.approx(float(d), rel=1e-12)


# --------------------------------------------------------------------------------------------
# Generalized cross-entropy
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("q", [1e-3, 0.3, 0.7, 1.0])
def test_generalized_cross_entropy_matches_numpy(q):
    _check(losses.generalized_cross_entropy, S, (Y,), {"q": q}, lambda x: np_gce(x, Y, q))
    soft = jax.jit(lambda: losses.generalized_cross_entropy(
        jnp.asarray(S), jnp.asarray(np.eye(4)[Y]), q=q, reduction="none"))()
    np.testing.assert_allclose(np.asarray(soft), np_gce(S, Y, q), rtol=1e-10)


def test_generalized_cross_entropy_tends_to_cross_entropy_as_q_goes_to_0():
    x, y = jnp.asarray(S), jnp.asarray(Y)
    qs = (1e-2, 1e-4, 1e-6, 1e-8)

    @jax.jit  # one compiled program (inputs closed over: the eager value checks still run)
    def program():
        ce = losses.softmax_cross_entropy(x, y, reduction="none")
        g_ce = jax.grad(lambda z: losses.softmax_cross_entropy(z, y, reduction="sum"))(x)
        gces = [(losses.generalized_cross_entropy(x, y, q=q, reduction="none"),
                 jax.grad(lambda z, q=q: losses.generalized_cross_entropy(
                     z, y, q=q, reduction="sum"))(x)) for q in qs]
        return ce, g_ce, gces

    ce, g_ce, gces = jax.tree.map(np.asarray, program())
    for q, (gce, g) in zip(qs, gces, strict=True):
        # (1 - p^q) / q = -log p - q (log p)^2 / 2 + O(q^2): the gap is q ce^2 / 2 to first order.
        np.testing.assert_allclose(ce - gce, q * ce**2 / 2, rtol=2 * q * ce.max() + 1e-7,
                                   atol=1e-15)
        # The gradient p_y^q (p - e_y) -> p - e_y, with |p_y^q - 1| <= q |log p_y|.
        np.testing.assert_allclose(g, g_ce, atol=2 * q * ce.max())
    # q = 1 is 1 - p_y.
    p_y = np.exp(_np_log_softmax(S))[np.arange(5), Y]
    got = losses.generalized_cross_entropy(x, y, q=1.0, reduction="none")
    np.testing.assert_allclose(np.asarray(got), 1 - p_y, rtol=1e-12)


# --------------------------------------------------------------------------------------------
# Probabilistic options: poisson_nll(log_input=False), poisson, gaussian_nll variance shapes
# --------------------------------------------------------------------------------------------

RATES = RNG.uniform(0.2, 4.0, size=6)
COUNTS = np.array([0.0, 1.0, 2.0, 3.0, 5.0, 0.5])


@pytest.mark.parametrize("full", [False, True])
def test_poisson_nll_on_rates_matches_numpy(full):
    ref = lambda r: np_poisson_rate(r, COUNTS, 1e-8) + (np_stirling(COUNTS) if full else 0)
    _check(losses.poisson_nll, RATES, (COUNTS,), {"log_input": False, "full": full}, ref)


def test_poisson_nll_default_is_unchanged_and_the_modes_agree():
    x = np.log(RATES)
    got, on_rates = jax.jit(lambda: (  # one compiled program, inputs closed over
        losses.poisson_nll(jnp.asarray(x), jnp.asarray(COUNTS), reduction="none"),
        losses.poisson_nll(jnp.asarray(RATES), jnp.asarray(COUNTS), log_input=False,
                           eps=1e-300, reduction="none")))()
    np.testing.assert_allclose(np.asarray(got), RATES - COUNTS * x, rtol=1e-12)  # exp(x) - c x
    np.testing.assert_allclose(np.asarray(on_rates), np.asarray(got), rtol=1e-12)


@pytest.mark.parametrize("log_input,full,eps", [(False, False, 1e-8), (False, True, 1e-3),
                                                (True, True, 1e-8)])
def test_poisson_nll_matches_torch(log_input, full, eps):
    torch = _torch()
    x = np.log(RATES) if log_input else RATES
    kw = {"log_input": log_input, "full": full, "eps": eps}
    _vs_torch(torch.nn.functional.poisson_nll_loss, losses.poisson_nll, x,
              (torch.tensor(COUNTS),), (jnp.asarray(COUNTS),), kw, kw)


def test_poisson_is_keras_poisson():
    _check(losses.poisson, RATES, (COUNTS,), {}, lambda r: np_poisson_rate(r, COUNTS, 1e-7))
    # keras.losses.Poisson docstring: y_true = [[0., 1.], [0., 0.]], y_pred = [[1., 1.],
    # [0., 0.]] -> 0.5.
    got = losses.poisson(jnp.array([[1.0, 1.0], [0.0, 0.0]]), jnp.array([[0.0, 1.0], [0.0, 0.0]]))
    assert float(got) == pytest.approx(0.5, abs=1e-7)  # 1 - log(1 + 1e-7) = 1 - 1e-7
    # A rate of 0 with a positive count: finite value and gradient 1 - c / eps.
    value, g = jax.jit(jax.value_and_grad(lambda r: losses.poisson(r, jnp.array([2.0]))))(
        jnp.array([0.0]))
    assert np.isfinite(float(value)) and float(g[0]) == pytest.approx(1 - 2 / 1e-7, rel=1e-12)


def _np_gaussian(mu, y, var):
    return 0.5 * (np.log(var) + (y - mu) ** 2 / var)


MU, YG = RNG.normal(size=(4, 3)), RNG.normal(size=(4, 3))


@pytest.mark.parametrize("vshape,expand", [((4,), lambda v: v[:, None]), ((4, 1), lambda v: v),
                                           ((1, 3), lambda v: v), ((4, 3), lambda v: v),
                                           ((), lambda v: v)])
def test_gaussian_nll_variance_shapes_match_numpy(vshape, expand):
    var = RNG.uniform(0.5, 2.0, size=vshape)
    ref = lambda m: _np_gaussian(m, YG, expand(var))
    _check(losses.gaussian_nll, MU, (YG,), {"variance": jnp.asarray(var)}, ref)
    # The gradient with respect to a shared variance sums over the entries that share it.
    gv = jax.jit(jax.grad(lambda v: losses.gaussian_nll(jnp.asarray(MU), jnp.asarray(YG),
                                                        variance=v, reduction="sum")))(
        jnp.asarray(var))
    g_ref = central_difference(lambda v: np.sum(_np_gaussian(MU, YG, expand(v))), var,
                               step=1e-6)
    np.testing.assert_allclose(np.asarray(gv), g_ref, atol=1e-7 * max(1, np.abs(g_ref).max()))


@pytest.mark.parametrize("mshape,vshape", [((4, 3), (4,)), ((4, 3), (4, 1)), ((4, 3), (1, 3)),
                                           ((2, 3, 4, 5), (2, 1, 4, 5)), ((2, 3, 4), (2, 3))])
def test_gaussian_nll_variance_shapes_match_torch(mshape, vshape):
    torch = _torch()
    mu, y = RNG.normal(size=mshape), RNG.normal(size=mshape)
    var = RNG.uniform(0.5, 2.0, size=vshape)
    _vs_torch(torch.nn.functional.gaussian_nll_loss, losses.gaussian_nll, mu,
              (torch.tensor(y), torch.tensor(var)), (jnp.asarray(y),), {},
              {"variance": jnp.asarray(var)})


@pytest.mark.parametrize("mshape,vshape", [((4, 3), (3,)), ((4, 3), (1, 1)), ((4, 3), (4, 2)),
                                           ((4, 3), (4, 3, 1)), ((4, 3), (2, 3))])
def test_gaussian_nll_rejects_the_variance_shapes_torch_rejects(mshape, vshape):
    mu, var = jnp.zeros(mshape), jnp.ones(vshape)
    with pytest.raises(ValueError, match=re.escape(f"got variance.shape={vshape}")):
        losses.gaussian_nll(mu, mu, variance=var)
    torch = pytest.importorskip("torch")
    with pytest.raises((ValueError, RuntimeError)):
        torch.nn.functional.gaussian_nll_loss(torch.zeros(mshape), torch.zeros(mshape),
                                              torch.ones(vshape))


# --------------------------------------------------------------------------------------------
# kl_divergence with log-space inputs
# --------------------------------------------------------------------------------------------

KP, KT = _simplex((4, 3)), _simplex((4, 3))


@pytest.mark.parametrize("log_p,log_t", [(True, False), (True, True), (False, True)])
def test_kl_divergence_log_inputs_match_numpy(log_p, log_t):
    first = np.log(KP) if log_p else KP
    tgt = np.log(KT) if log_t else KT
    kw = {"log_predictions": log_p, "log_target": log_t}

    def ref(z):
        lp = z if log_p else np.log(z)
        return np_kl_log(lp, np.log(KT))

    # jit: central differences leave the simplex, which the eager check would reject.
    fn = jax.jit(losses.kl_divergence, static_argnames=("log_predictions", "log_target",
                                                         "reduction"))
    got = fn(jnp.asarray(first), jnp.asarray(tgt), **kw, reduction="none")
    np.testing.assert_allclose(np.asarray(got), ref(first), rtol=1e-10)
    eager = losses.kl_divergence(jnp.asarray(first), jnp.asarray(tgt), **kw, reduction="none")
    np.testing.assert_allclose(np.asarray(eager), ref(first), rtol=1e-10)
    g = jax.jit(jax.grad(lambda z: fn(z, jnp.asarray(tgt), **kw, reduction="sum")))(
        jnp.asarray(first))
    g_ref = central_difference(lambda z: np.sum(ref(z)), first, step=1e-6)
    np.testing.assert_allclose(np.asarray(g), g_ref, atol=1e-7 * np.abs(g_ref).max())


def test_kl_divergence_log_inputs_match_optax_and_handle_zero_mass():
    lp, lt = np.log(KP), np.log(KT)
    lt[0, 1] = -np.inf  # a class with zero target mass (renormalised below)
    lt[0] -= np.logaddexp.reduce(lt[0])
    both = losses.kl_divergence(jnp.asarray(lp), jnp.asarray(lt), log_predictions=True,
                                log_target=True, reduction="none")
    ref = np.asarray(optax.losses.kl_divergence_with_log_targets(jnp.asarray(lp), jnp.asarray(lt)))
    np.testing.assert_allclose(np.asarray(both)[1:], ref[1:], rtol=1e-12)
    # optax 0.2.8 gives NaN for the zero-mass row (0 * -inf); the KL skips that class.
    finite = np.isfinite(lt[0])
    row0 = np.sum(np.exp(lt[0, finite]) * (lt[0, finite] - lp[0, finite]))
    assert np.isnan(ref[0]) and float(both[0]) == pytest.approx(row0, rel=1e-12)
    probs_t = losses.kl_divergence(jnp.asarray(lp), jnp.asarray(np.exp(lt)), log_predictions=True,
                                   reduction="none")
    ref = optax.losses.kl_divergence(jnp.asarray(lp), jnp.asarray(np.exp(lt)))
    np.testing.assert_allclose(np.asarray(probs_t), np.asarray(ref), rtol=1e-12)
    # The default (both probabilities) is unchanged and agrees.
    plain = losses.kl_divergence(jnp.asarray(KP), jnp.asarray(np.exp(lt)), reduction="none")
    np.testing.assert_allclose(np.asarray(plain), np.asarray(both), rtol=1e-12)
    # Gradient with respect to the log-targets: finite, 0 at the zero-mass entry.
    g = jax.jit(jax.grad(lambda z: losses.kl_divergence(
        jnp.asarray(lp), z, log_predictions=True, log_target=True, reduction="sum")))(
        jnp.asarray(lt))
    assert np.all(np.isfinite(np.asarray(g))) and float(g[0, 1]) == 0.0


@pytest.mark.parametrize("log_target", [False, True])
def test_kl_divergence_log_inputs_match_torch(log_target):
    torch = _torch()
    lp = np.log(KP)
    tgt = np.log(KT) if log_target else KT
    # torch's "none" is elementwise (our per-example value is its sum over the class axis) and
    # its "batchmean" is our "mean".
    _vs_torch(torch.nn.functional.kl_div, losses.kl_divergence, lp, (torch.tensor(tgt),),
              (jnp.asarray(tgt),), {"log_target": log_target},
              {"log_predictions": True, "log_target": log_target},
              per_example=lambda v: v.sum(-1), reductions=(("mean", "batchmean"), ("sum", "sum")))


def test_kl_divergence_log_inputs_with_where_drop_masked_entries():
    keep = np.array([[True, True, False], [True, True, True], [False, False, False],
                     [True, False, True]])
    p = np.where(keep, KP, 0.0)
    t = np.where(keep, KT, 0.0)
    p = p / np.maximum(p.sum(-1, keepdims=True), 1e-300)
    t = t / np.maximum(t.sum(-1, keepdims=True), 1e-300)
    with np.errstate(divide="ignore"):
        lp, lt = np.log(p), np.log(t)
    lp[~keep] = 5.0  # garbage in masked entries is never read
    lt[~keep] = np.nan
    got = losses.kl_divergence(jnp.asarray(lp), jnp.asarray(lt), log_predictions=True,
                               log_target=True, where=jnp.asarray(keep), reduction="none")
    ref = np.array([np.sum(t[i, keep[i]] * (np.log(t[i, keep[i]]) - np.log(p[i, keep[i]])))
                    for i in range(4)])
    np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-10, atol=1e-15)


# --------------------------------------------------------------------------------------------
# The edge table: finite value, gradient and Hessian at saturation, kinks and +-1e4
# --------------------------------------------------------------------------------------------

BIG = 1e4
ONE_HOT3 = np.eye(3)[[0, 1]]


def _edges():
    """(case id, loss call f(x) -> per-example values, edge points x, kink gradient or None).

    ``kink``: the gradient expected at the first example (the minimum-norm subgradient 0 at a
    kink), or None.
    """
    ids = np.array([0, 1], np.int32)  # int32: the float32 cases run without x64
    pm = np.array([1.0, -1.0])
    return [
        ("multi_margin-p1", lambda x: losses.multi_margin(x, ids, reduction="none"),
         np.array([[1.0, 0.0, 0.0], [-BIG, BIG, 0.0]]), 0.0),  # 1 - s_y + s_j = 0 on row 0
        ("multi_margin-p2", lambda x: losses.multi_margin(x, ids, p=2, reduction="none"),
         np.array([[1.0, 0.0, 0.0], [BIG, -BIG, 0.0]]), 0.0),
        ("multilabel_margin", lambda x: losses.multilabel_margin(
            x, jnp.array([[True, False, False], [False, True, True]]), reduction="none"),
         np.array([[1.0, 0.0, 0.0], [BIG, -BIG, BIG]]), 0.0),
        ("categorical_hinge", lambda x: losses.categorical_hinge(x, ids, reduction="none"),
         np.array([[1.0, 0.0, -0.5], [BIG, -BIG, 0.0]]), 0.0),  # 1 + 0 - 1 = 0 on row 0
        ("hinge_embedding", lambda x: losses.hinge_embedding(x, jnp.array([-1.0, -1.0, 1.0]),
                                                             reduction="none"),
         np.array([1.0, BIG, -BIG]), 0.0),  # x = margin on a dissimilar pair
        ("soft_margin", lambda x: losses.soft_margin(x, pm, reduction="none"),
         np.array([BIG, BIG]), None),
        ("multilabel_soft_margin", lambda x: losses.multilabel_soft_margin(
            x, jnp.asarray(ONE_HOT3), reduction="none"),
         np.array([[BIG, -BIG, BIG], [-BIG, -BIG, 0.0]]), None),
        ("cosine_similarity", lambda x: losses.cosine_similarity(
            x, jnp.array([[1.0, 0.0], [1.0, 0.0], [0.0, 0.0]]), reduction="none"),
         np.array([[0.0, 0.0], [BIG, 1e-3], [1.0, 2.0]]), 0.0),  # zero vector; zero target
        ("circle", lambda x: losses.circle(x, np.array([0, 0, 1], np.int32), reduction="none"),
         np.array([[1.0, 0.0], [1.0, 0.0], [BIG, 0.0]]), None),  # cosines 1: saturated
        ("binary_focal-g0.5-ls", lambda p: losses.binary_focal(
            p, jnp.array([1.0, 0.0, 1.0, 0.0]), gamma=0.5, alpha=0.25, label_smoothing=0.1,
            reduction="none"), np.array([0.0, 1.0, 1.0, 0.0]), None),
        ("categorical_focal-g0.5", lambda p: losses.categorical_focal(
            p, ids, gamma=0.5, label_smoothing=0.2, reduction="none"),
         np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]), None),  # p_y = 1 and p_y = 0
        ("generalized_cross_entropy", lambda x: losses.generalized_cross_entropy(
            x, ids, reduction="none"), np.array([[BIG, -BIG, 0.0], [BIG, -BIG, 0.0]]), None),
        ("generalized_cross_entropy-q1e-3", lambda x: losses.generalized_cross_entropy(
            x, ids, q=1e-3, reduction="none"), np.array([[BIG, -BIG, 0.0], [0.0, -BIG, BIG]]),
         None),
        ("poisson", lambda r: losses.poisson(r, jnp.array([2.0, 0.0, 3.0]), reduction="none"),
         np.array([0.0, 0.0, BIG]), None),
        ("kl_divergence-log", lambda lp: losses.kl_divergence(
            lp, jnp.array([[0.0, -jnp.inf], [-BIG, 0.0]]), log_predictions=True, log_target=True,
            reduction="none"), np.array([[0.0, -BIG], [-BIG, 0.0]]), None),
        ("poisson_nll-rates-full", lambda r: losses.poisson_nll(
            r, jnp.array([2.0, 0.0, 1.0]), log_input=False, full=True, reduction="none"),
         np.array([0.0, BIG, 0.0]), None),
    ]


EDGES = _edges()


@functools.cache
def _edge_program(case_id):
    call = next(c for c in EDGES if c[0] == case_id)[1]
    total = lambda x: jnp.sum(call(x))
    return jax.jit(lambda x: (call(x), jax.grad(total)(x), jax.hessian(total)(x)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", EDGES, ids=lambda c: c[0])
def test_edge_table_value_gradient_and_hessian_are_finite(case, dtype):
    case_id, call, x, kink = case
    with jax.enable_x64(dtype == np.float64):
        xj = jnp.asarray(x, dtype)
        values, grad, hess = _edge_program(case_id)(xj)
    for what, arr in (("value", values), ("gradient", grad), ("Hessian", hess)):
        assert np.all(np.isfinite(np.asarray(arr))), (case_id, what, arr)
    assert values.dtype == dtype
    if dtype == np.float64:  # with concrete inputs, the value checks accept the edge points too
        # (closed over, so concrete while tracing: the checks run as eagerly, in one compile)
        np.testing.assert_allclose(np.asarray(values), np.asarray(jax.jit(lambda: call(xj))()),
                                   rtol=1e-12)
    if kink is not None:
        np.testing.assert_array_equal(np.asarray(grad)[0], kink)  # minimum-norm subgradient


# --------------------------------------------------------------------------------------------
# Bad input: errors naming the argument, what was expected and what was received
# --------------------------------------------------------------------------------------------

Z3 = jnp.zeros((2, 3))
I2 = jnp.array([0, 1])


def _bad_inputs():
    return [
        (lambda: losses.multi_margin(Z3, I2, p=3), ValueError, r"`p` must be 1 or 2; got 3"),
        (lambda: losses.multi_margin(Z3, I2, p=1.0), ValueError, r"`p` must be 1 or 2; got 1.0"),
        (lambda: losses.multi_margin(Z3, I2, p=True), ValueError, r"`p` must be 1 or 2"),
        (lambda: losses.multi_margin(Z3, I2, margin=-0.5), ValueError,
         r"`margin` must be a finite number >= 0; got -0.5"),
        (lambda: losses.multi_margin(Z3, jnp.array([0, 3])), ValueError,
         r"class ids in \[0, 3\); got labels\[1\] = 3"),
        (lambda: losses.multi_margin(Z3, jnp.array([0.0, 1.0])), TypeError, r"integer class ids"),
        (lambda: losses.multi_margin(Z3, jnp.array([0, 1, 2])), ValueError, r"shape \(2,\)"),
        (lambda: losses.multi_margin(jnp.zeros((2, 1)), I2), ValueError, r"K >= 2 classes"),
        (lambda: losses.multi_margin(Z3, I2, class_weights=jnp.ones(2)), ValueError,
         r"`class_weights` must have shape \(3,\)"),
        (lambda: losses.multilabel_margin(Z3, jnp.array([[3, 0, -1], [1, -1, 0]])), TypeError,
         r"multi-hot matrix .* PyTorch's MultiLabelMarginLoss takes class indices"),
        (lambda: losses.multilabel_margin(Z3, jnp.ones((2, 2), bool)), ValueError,
         r"`scores` and `labels` must have the same shape"),
        (lambda: losses.multilabel_margin(Z3, jnp.full((2, 3), 0.5)), ValueError,
         r"multi-hot entries 0 or 1; got labels\[0, 0\] = 0.5"),
        (lambda: losses.categorical_hinge(Z3, jnp.full((2, 3), 1.5)), ValueError,
         r"targets in \[0, 1\]; got labels\[0, 0\] = 1.5"),
        (lambda: losses.categorical_hinge(jnp.array(1.0), jnp.array(1.0)), ValueError,
         r"class axis"),
        (lambda: losses.hinge_embedding(jnp.zeros(2), jnp.array([1.0, 0.0])), ValueError,
         r"labels in \{-1, \+1\}.*got labels\[1\] = 0.0"),
        (lambda: losses.hinge_embedding(jnp.zeros(2), jnp.ones(2), margin=-1.0), ValueError,
         r"`margin` must be a finite number >= 0; got -1.0"),
        (lambda: losses.hinge_embedding(jnp.zeros(2), jnp.ones(3)), ValueError,
         r"`distances` and `labels` must have the same shape"),
        (lambda: losses.soft_margin(jnp.zeros(2), jnp.array([1.0, 2.0])), ValueError,
         r"labels in \{-1, \+1\}"),
        (lambda: losses.multilabel_soft_margin(Z3, jnp.full((2, 3), 2.0)), ValueError,
         r"values in \[0, 1\]; got labels\[0, 0\] = 2.0"),
        (lambda: losses.multilabel_soft_margin(Z3, Z3, class_weights=-jnp.ones(3)), ValueError,
         r"`class_weights` must be a finite number >= 0"),
        (lambda: losses.cosine_similarity(Z3, jnp.zeros((3, 2))), ValueError,
         r"`predictions` and `targets` must have the same shape"),
        (lambda: losses.cosine_similarity(Z3, Z3, axis=2), ValueError, r"got axis=2"),
        (lambda: losses.cosine_similarity(Z3, Z3, axis=1.0), TypeError, r"`axis` must be an int"),
        (lambda: losses.circle(Z3, I2, margin=0.5), ValueError,
         r"`margin` must be in \[0.0, 0.5\); got 0.5"),
        (lambda: losses.circle(Z3, I2, margin=-0.1), ValueError, r"`margin` must be in"),
        (lambda: losses.circle(Z3, I2, gamma=0.0), ValueError, r"`gamma` must be a finite"),
        (lambda: losses.circle(jnp.zeros(3), I2), ValueError, r"must be 2-D"),
        (lambda: losses.circle(Z3, jnp.array([0.0, 1.0])), TypeError, r"integer class ids"),
        (lambda: losses.circle(Z3, jnp.array([0, 1, 1])), ValueError, r"shape \(2,\)"),
        (lambda: losses.binary_focal(jnp.array([1.5]), jnp.array([1.0])), ValueError,
         r"`probs` must hold probabilities in \[0, 1\]; got probs\[0\] = 1.5"),
        (lambda: losses.binary_focal(jnp.array([0.5]), jnp.array([1.0]), gamma=-1.0), ValueError,
         r"`gamma` must be a finite number >= 0"),
        (lambda: losses.binary_focal(jnp.array([0.5]), jnp.array([1.0]), alpha=1.5), ValueError,
         r"`alpha` must be in \[0.0, 1.0\]"),
        (lambda: losses.binary_focal(jnp.array([0.5]), jnp.array([1.0]), label_smoothing=2.0),
         ValueError, r"`label_smoothing` must be in \[0.0, 1.0\]"),
        (lambda: losses.categorical_focal(jnp.full((2, 3), 0.5), I2), ValueError,
         r"`probs` must hold distributions that sum to 1"),
        (lambda: losses.categorical_focal(jnp.full((2, 3), 1 / 3), I2, alpha=jnp.ones(2)),
         ValueError, r"`alpha` must have a scalar or shape \(3,\)"),
        (lambda: losses.generalized_cross_entropy(Z3, I2, q=0.0), ValueError,
         r"`q` must be in \(0.0, 1.0\]; got 0.0"),
        (lambda: losses.generalized_cross_entropy(Z3, I2, q=1.5), ValueError,
         r"`q` must be in \(0.0, 1.0\]; got 1.5"),
        (lambda: losses.generalized_cross_entropy(Z3, I2, q=-0.2), ValueError, r"`q` must be in"),
        (lambda: losses.generalized_cross_entropy(Z3, jnp.array([0.0, 1.0])), TypeError,
         r"must hold integer class ids"),
        (lambda: losses.poisson(jnp.array([-1.0]), jnp.array([1.0])), ValueError,
         r"`rates` must hold rates >= 0; got rates\[0\] = -1.0"),
        (lambda: losses.poisson(jnp.array([1.0]), jnp.array([1.0]), eps=0.0), ValueError,
         r"`eps` must be a finite number > 0"),
        (lambda: losses.poisson_nll(jnp.array([-1.0]), jnp.array([1.0]), log_input=False),
         ValueError, r"`log_rate` must hold rates >= 0; got log_rate\[0\] = -1.0"),
        (lambda: losses.poisson_nll(jnp.array([1.0]), jnp.array([1.0]), log_input=1), TypeError,
         r"`log_input` must be a bool"),
        (lambda: losses.kl_divergence(jnp.log(jnp.full((2, 3), 0.5)), jnp.full((2, 3), 1 / 3),
                                      log_predictions=True), ValueError,
         r"`exp\(probs\)` must hold distributions that sum to 1"),
        (lambda: losses.kl_divergence(jnp.full((2, 3), 1 / 3), jnp.full((2, 3), 0.5),
                                      log_target=True), ValueError,
         r"`exp\(targets\)` must hold probabilities in \[0, 1\]; got exp\(targets\)\[0, 0\]"),
        (lambda: losses.kl_divergence(jnp.full((2, 3), 1 / 3), jnp.full((2, 3), 1 / 3),
                                      log_target="yes"), TypeError, r"`log_target` must be a bool"),
        (lambda: losses.gaussian_nll(Z3, Z3, variance=jnp.ones(3)), ValueError,
         r"`mean` has shape \(2, 3\): `variance` must be a scalar.*got variance.shape=\(3,\)"),
    ]


@pytest.mark.parametrize("case", _bad_inputs(), ids=lambda c: c[2][:40])
def test_bad_inputs_raise_naming_the_argument(case):
    call, error, pattern = case
    with pytest.raises(error, match=pattern):
        call()
