"""Losses from optax's suite, and per-entry class masks (``where=``), issue 17 part 2.

Sections:

1. every new loss against optax (where optax has it: same inputs, float64, values and
   gradients) and against an independent numpy formula (always run; no lossopt inside the
   references), plus torch where it has the loss (``pytest.importorskip``);
2. Fenchel-Young reproduces the softmax cross-entropy and the sparsemax loss;
3. the segmentation extensions: ``dice(ignore_background=...)`` against optax and numpy, and
   the generalized Dice (Sudre et al.) against a numpy formula, with its empty-class guard;
4. the edge table: finite value / gradient / Hessian at saturation (+-1e4 logits, float32 and
   float64) and at the kinks, with the minimum-norm subgradient there; the registry's claims
   for the new names (checked numerically through RECIPES in test_loss_properties.py);
5. ``where``: against optax's ``where``, against dropping the masked classes by hand, -inf /
   NaN at masked entries (finite, gradient 0 there), all-masked rows (0, out of the mean);
6. bad input: errors name the argument, the expectation and what was received.

Tolerances: float64 throughout; 1e-12 relative where both sides evaluate the same closed form
in a different order (a few ulps of cancellation at most), looser where stated.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import RECIPES, third_party

from lossopt import losses

RTOL = 1e-12  # same closed form, different evaluation order (float64)
ATOL = 1e-12


def _np_softmax(x, keep=None):
    x = np.asarray(x, np.float64)
    if keep is not None:
        x = np.where(keep, x, -np.inf)
    m = np.max(x, -1, keepdims=True)
    e = np.exp(x - m)
    return e / e.sum(-1, keepdims=True)


def _np_sparsemax(z):
    """Euclidean projection onto the simplex, row by row (Duchi et al. 2008's sort rule)."""
    z = np.atleast_2d(np.asarray(z, np.float64))
    out = np.zeros_like(z)
    for i, row in enumerate(z):
        u = np.sort(row)[::-1]
        css = np.cumsum(u)
        ks = np.arange(1, len(u) + 1)
        k = ks[u - (css - 1) / ks > 0].max()
        tau = (css[k - 1] - 1) / k
        out[i] = np.maximum(row - tau, 0)
    return out


def _np_sparsemax_loss(z, q):
    """Martins & Astudillo (2016), eq. (20) for label proportions q: -q.z + 1/2 sum_S
    (z_j^2 - tau^2) + 1/2 ||q||^2, with tau recovered from the projection."""
    z = np.atleast_2d(np.asarray(z, np.float64))
    p = _np_sparsemax(z)
    out = []
    for row, prow, qrow in zip(z, p, np.atleast_2d(q), strict=True):
        s = prow > 0
        tau = (row[s] - prow[s])[0]
        out.append(-qrow @ row + 0.5 * np.sum(row[s] ** 2 - tau**2) + 0.5 * qrow @ qrow)
    return np.array(out)


_JIT: dict = {}


def vg(fn, x, *rest, static=(), **traced):
    """``(fn(x, *rest, reduction="none"), grad of the sum)`` in one compiled program.

    Keyword hyperparameters in ``traced`` are jit arguments (one compile serves every value);
    ``static`` ones (strings) are bound. Compiling once is several times cheaper than JAX's
    op-by-op eager path for a value and a gradient (most of this file's time is compiling).
    """
    key = (fn, tuple(static), tuple(sorted(traced)), len(rest))
    if key not in _JIT:
        kw_static = dict(static)

        def run(x, rest, traced):
            def total(z):
                return jnp.sum(fn(z, *rest, **traced, **kw_static, reduction="sum"))

            return fn(x, *rest, **traced, **kw_static, reduction="none"), jax.grad(total)(x)

        _JIT[key] = jax.jit(run)
    v, g = _JIT[key](jnp.asarray(x), tuple(jnp.asarray(r) for r in rest), traced)
    return np.asarray(v), np.asarray(g)


def ovg(fn, x, *rest, **traced):
    """The same for an optax loss (no ``reduction``: it returns per-example values)."""
    key = ("optax", fn, tuple(sorted(traced)), len(rest))
    if key not in _JIT:
        def run(x, rest, traced):
            return fn(x, *rest, **traced), jax.grad(lambda z: jnp.sum(fn(z, *rest, **traced)))(x)

        _JIT[key] = jax.jit(run)
    with third_party():  # optax's internals mix dtypes (projection_simplex: float / int index)
        v, g = _JIT[key](jnp.asarray(x), tuple(jnp.asarray(r) for r in rest), traced)
    return np.asarray(v), np.asarray(g)


@pytest.fixture(scope="module")
def draws():
    rng = np.random.default_rng(20260)
    n, k = 5, 4
    x = rng.normal(size=(n, k)) * 2
    ids = rng.integers(0, k, size=n)
    soft = rng.uniform(0.05, 1.0, size=(n, k))
    soft /= soft.sum(-1, keepdims=True)
    return {"x": x, "ids": ids, "onehot": np.eye(k)[ids], "soft": soft, "rng": rng}


# --------------------------------------------------------------------------------------------
# 1. Each new loss against optax and numpy
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("eps", [-1.0, 0.0, 2.0])
@pytest.mark.parametrize("kind", ["ids", "onehot", "soft"])
def test_poly_loss_matches_optax_and_the_closed_form(draws, eps, kind):
    x, labels = draws["x"], draws[kind]
    t = draws["soft"] if kind == "soft" else draws["onehot"]
    got, g = vg(losses.poly_loss, x, labels, epsilon=eps)  # eps traced: one compile per kind
    ref_o, ref_og = ovg(optax.losses.poly_loss_cross_entropy, x, t, epsilon=eps)
    p = _np_softmax(x)
    ref = -np.sum(t * np.log(p), -1) + eps * np.sum(t * (1 - p), -1)  # Leng et al., eq. (3)
    np.testing.assert_allclose(got, ref_o, rtol=RTOL)
    np.testing.assert_allclose(got, ref, rtol=RTOL)
    np.testing.assert_allclose(g, ref_og, rtol=1e-10, atol=ATOL)
    if kind != "soft":
        # d/dx [-log p_y + eps (1 - p_y)] = (p - e_y)(1 + eps p_y): closed form.
        py = p[np.arange(len(x)), draws["ids"]][:, None]
        np.testing.assert_allclose(g, (p - t) * (1 + eps * py), atol=1e-12)
    if eps == 0.0:
        np.testing.assert_allclose(got, vg(losses.softmax_cross_entropy, x, labels)[0],
                                   rtol=RTOL)  # Poly-1 at epsilon 0 is the cross-entropy


def test_binary_sparsemax_loss_matches_optax_and_the_piecewise_form():
    x = np.array([-3.0, -1.0, -0.5, 0.0, 0.3, 1.0, 2.5, -1e4, 1e4])
    for y in (np.zeros_like(x), np.ones_like(x)):
        z = np.where(y == 1, -x, x)
        ref = np.where(z <= -1, 0, np.where(z >= 1, z, (z + 1) ** 2 / 4))  # sparse_plus
        got, g = vg(losses.sparsemax_loss, x, y)
        np.testing.assert_allclose(got, ref, rtol=RTOL)
        ref_o, ref_og = ovg(optax.losses.sparsemax_loss, x, y)
        np.testing.assert_allclose(got, ref_o, rtol=RTOL)
        dz = np.where(z <= -1, 0, np.where(z >= 1, 1, (z + 1) / 2))
        np.testing.assert_allclose(g, np.where(y == 1, -dz, dz), atol=ATOL)
        np.testing.assert_allclose(g, ref_og, atol=ATOL)
    # Martins & Astudillo's multiclass loss on scores (x, 0), target class 0 (label 1).
    xs = np.linspace(-3, 3, 13)
    two = np.stack([xs, np.zeros_like(xs)], -1)
    ref = _np_sparsemax_loss(two, np.tile([1.0, 0.0], (len(xs), 1)))
    np.testing.assert_allclose(vg(losses.sparsemax_loss, xs, np.ones(len(xs)))[0], ref,
                               rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("kind", ["ids", "soft"])
def test_multiclass_sparsemax_loss_matches_optax_numpy_and_its_gradient(draws, kind):
    x, labels = draws["x"], draws[kind]
    q = draws["soft"] if kind == "soft" else draws["onehot"]
    got, g = vg(losses.multiclass_sparsemax_loss, x, labels)
    np.testing.assert_allclose(got, _np_sparsemax_loss(x, q), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(g, _np_sparsemax(x) - q, atol=1e-12)  # sparsemax(x) - q
    if kind == "ids":
        ref, ref_g = ovg(optax.losses.multiclass_sparsemax_loss, x, labels)
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(g, ref_g, atol=1e-12)


def test_multiclass_sparsemax_hessian_is_the_sparsemax_jacobian():
    x = np.array([[1.0, 0.5, -1.0, 0.2]])  # support {0, 1, 3}
    h = jax.jit(jax.hessian(lambda z: losses.multiclass_sparsemax_loss(
        z, jnp.array([1]), reduction="sum")))(jnp.asarray(x))
    s = (_np_sparsemax(x)[0] > 0).astype(float)
    ref = np.diag(s) - np.outer(s, s) / s.sum()  # Martins & Astudillo, Prop. 2
    np.testing.assert_allclose(np.asarray(h)[0, :, 0, :], ref, atol=1e-12)


def test_perceptrons_match_optax_and_numpy(draws):
    s = np.array([2.0, -0.5, 0.3, -1.2, 4.0])
    y = np.array([1.0, 1.0, -1.0, -1.0, -1.0])
    got, g = vg(losses.perceptron, s, y)
    np.testing.assert_allclose(got, np.maximum(0, -y * s), rtol=RTOL)
    np.testing.assert_allclose(got, ovg(optax.losses.perceptron_loss, s, y)[0], rtol=RTOL)
    np.testing.assert_allclose(g, np.where(y * s < 0, -y, 0))
    x, ids = draws["x"], draws["ids"]
    got, g = vg(losses.multiclass_perceptron, x, ids)
    np.testing.assert_allclose(got, x.max(-1) - x[np.arange(len(x)), ids], rtol=RTOL)
    ref, ref_g = ovg(optax.losses.multiclass_perceptron_loss, x, ids)
    np.testing.assert_allclose(got, ref, rtol=RTOL)
    np.testing.assert_allclose(g, ref_g, atol=ATOL)  # no ties in these draws: same subgradient


def test_generalized_kl_matches_optax_numpy_and_torch(draws):
    rng = draws["rng"]
    p = rng.uniform(0.1, 3.0, size=(4, 5))
    t = rng.uniform(0.0, 3.0, size=(4, 5))
    t[0, 1] = 0.0  # t log t = 0 at t = 0
    ref = np.sum(np.where(t > 0, t * np.log(np.where(t > 0, t, 1) / p), 0) - t + p, -1)
    got, g = vg(losses.generalized_kl_divergence, p, t)
    np.testing.assert_allclose(got, ref, rtol=RTOL)
    np.testing.assert_allclose(got, ovg(optax.losses.generalized_kl_divergence, np.log(p), t)[0],
                               rtol=1e-12)
    np.testing.assert_allclose(g, 1 - t / p, rtol=1e-12, atol=ATOL)
    # For distributions it is the plain KL divergence (the sum(p) - sum(t) term vanishes).
    pn = p / p.sum(-1, keepdims=True)
    tn = np.concatenate([draws["soft"][:4], np.zeros((4, 1))], -1)
    np.testing.assert_allclose(vg(losses.generalized_kl_divergence, pn, tn)[0],
                               vg(losses.kl_divergence, pn, tn)[0], rtol=1e-12)
    torch = pytest.importorskip("torch")
    # torch's PoissonNLLLoss(log_input=False, full=False) is p - t log(p + 1e-8) per entry:
    # the generalized KL minus its target-only part t log t - t (1e-8 shifts it by ~1e-8 t/p).
    tp = torch.nn.functional.poisson_nll_loss(
        torch.tensor(p), torch.tensor(t), log_input=False, full=False, reduction="none"
    ).numpy()
    xlogx = np.where(t > 0, t * np.log(np.where(t > 0, t, 1)), 0)
    np.testing.assert_allclose(got, np.sum(tp + xlogx - t, -1), rtol=1e-7)


def test_ranking_softmax_matches_optax_and_numpy(draws):
    rng = draws["rng"]
    s = rng.normal(size=(3, 6))
    y = rng.integers(0, 3, size=(3, 6)).astype(float)
    y[:, 0] = 1.0
    keep = rng.uniform(size=(3, 6)) < 0.7
    keep[:, 0] = True
    iw = rng.uniform(0.5, 2.0, size=(3, 6))
    with np.errstate(divide="ignore"):  # log 0 = -inf at padding, selected away below
        logp = np.log(_np_softmax(s, keep))
    ref = -np.sum(np.where(keep, iw * y * np.where(keep, logp, 0), 0), -1)
    got, g = vg(losses.ranking_softmax, s, y, where=keep, item_weights=iw)
    np.testing.assert_allclose(got, ref, rtol=RTOL)
    wy = np.where(keep, iw * y, 0)
    p = np.where(keep, _np_softmax(s, keep), 0)
    np.testing.assert_allclose(g, wy.sum(-1, keepdims=True) * p - wy, atol=1e-12)
    opt = jax.jit(lambda: optax.losses.ranking_softmax_loss(  # jitted: one compile, not one
        jnp.asarray(s), jnp.asarray(y), where=jnp.asarray(keep), weights=jnp.asarray(iw),
        reduce_fn=None))()  # per operation
    np.testing.assert_allclose(got, np.asarray(opt), rtol=RTOL)
    # optax's default reduce_fn=jnp.mean averages over the lists with a valid item.
    keep[1] = False
    # One jitted program, inputs closed over (our eager value checks still run).
    opt_mean, ours = jax.jit(lambda: (
        optax.losses.ranking_softmax_loss(jnp.asarray(s), jnp.asarray(y), where=jnp.asarray(keep)),
        losses.ranking_softmax(jnp.asarray(s), jnp.asarray(y), where=jnp.asarray(keep))))()
    np.testing.assert_allclose(float(ours), float(opt_mean), rtol=RTOL)


def test_l2_loss_is_half_mse_and_matches_optax_and_torch():
    p, t = np.array([3.0, -1.0, 0.5]), np.array([1.0, 0.0, 0.5])
    got, g = vg(losses.l2_loss, p, t)
    np.testing.assert_allclose(got, 0.5 * (p - t) ** 2, rtol=RTOL)
    np.testing.assert_allclose(got, np.asarray(optax.losses.l2_loss(jnp.asarray(p),
                                                                    jnp.asarray(t))), rtol=RTOL)
    np.testing.assert_allclose(got, vg(losses.mse, p, t)[0] / 2, rtol=RTOL)
    np.testing.assert_allclose(g, p - t, rtol=RTOL)  # the residual itself
    torch = pytest.importorskip("torch")
    ref = 0.5 * torch.nn.functional.mse_loss(torch.tensor(p), torch.tensor(t)).item()
    assert math.isclose(got.mean(), ref, rel_tol=1e-12)


# --------------------------------------------------------------------------------------------
# 2. Fenchel-Young reproduces softmax cross-entropy and sparsemax
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["ids", "onehot"])
def test_fenchel_young_shannon_is_the_softmax_cross_entropy(draws, kind):
    fy, g = vg(losses.fenchel_young, draws["x"], draws[kind])
    ce = ovg(optax.losses.softmax_cross_entropy, draws["x"], draws["onehot"])[0]
    np.testing.assert_allclose(fy, ce, rtol=RTOL)
    np.testing.assert_allclose(g, _np_softmax(draws["x"]) - draws["onehot"], atol=1e-12)


def test_fenchel_young_shannon_with_soft_labels_is_optax_fy_plus_negentropy(draws):
    x, q = draws["x"], draws["soft"]
    fy_optax = optax.losses.make_fenchel_young_loss(jax.scipy.special.logsumexp)
    ref = np.asarray(jax.jit(fy_optax)(jnp.asarray(x), jnp.asarray(q))) + np.sum(q * np.log(q),
                                                                                 -1)
    got = vg(losses.fenchel_young, x, q)[0]
    np.testing.assert_allclose(got, ref, rtol=1e-12)
    np.testing.assert_allclose(got, vg(losses.kl_divergence_with_logits, x, q)[0], rtol=1e-12)


@pytest.mark.parametrize("kind", ["ids", "soft"])
def test_fenchel_young_squared_is_the_sparsemax_loss(draws, kind):
    q = draws["soft"] if kind == "soft" else draws["onehot"]
    fy, g = vg(losses.fenchel_young, draws["x"], draws[kind], static=(("regularizer", "squared"),))
    np.testing.assert_allclose(fy, _np_sparsemax_loss(draws["x"], q), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(g, _np_sparsemax(draws["x"]) - q, atol=1e-12)

    def max_fun(z):  # the sparsemax conjugate <z, p> - ||p||^2 / 2 via optax's projection
        p = optax.projections.projection_simplex(z)
        return jnp.dot(z, p) - 0.5 * jnp.dot(p, p)

    # optax's FY loss from that max function omits Omega(q) = ||q||^2 / 2.
    with third_party():  # optax's projection_simplex divides floats by an int index
        ref = np.asarray(jax.jit(optax.losses.make_fenchel_young_loss(max_fun))(
            jnp.asarray(draws["x"]), jnp.asarray(q)))
    np.testing.assert_allclose(fy, ref + 0.5 * np.sum(q * q, -1), rtol=1e-12, atol=1e-14)


def _np_entmax15(z):
    """1.5-entmax by bisection on tau: sum max(z/2 - tau, 0)^2 = 1 (Peters et al. 2019, eq. 9;
    tau lies in [max(z)/2 - 1, max(z)/2]; 200 halvings reach float64 resolution)."""
    out = []
    for row in np.atleast_2d(z):
        u = row / 2
        lo, hi = u.max() - 1, u.max()
        for _ in range(200):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if np.sum(np.maximum(u - mid, 0) ** 2) > 1 else (lo, mid)
        out.append(np.maximum(u - hi, 0) ** 2)
    return np.array(out)


@pytest.mark.parametrize("kind", ["ids", "soft"])
def test_fenchel_young_tsallis15_is_the_entmax_loss(draws, kind):
    x = draws["x"]
    q = draws["soft"] if kind == "soft" else draws["onehot"]
    fy, g = vg(losses.fenchel_young, x, draws[kind], static=(("regularizer", "tsallis15"),))
    p = _np_entmax15(x)

    def omega(v):  # Tsallis alpha = 1.5 negentropy (Blondel et al. 2020, eq. 9)
        return (np.sum(v**1.5, -1) - 1) / 0.75

    ref = np.sum(x * p, -1) - omega(p) + omega(q) - np.sum(x * q, -1)  # Omega* + Omega - <x,q>
    np.testing.assert_allclose(fy, ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(g, p - q, atol=1e-12)
    h = np.asarray(jax.jit(jax.hessian(lambda z: losses.fenchel_young(
        z, jnp.asarray(draws[kind]), regularizer="tsallis15", reduction="sum")))(jnp.asarray(x)))
    s = np.sqrt(p[0])
    np.testing.assert_allclose(h[0, :, 0, :], np.diag(s) - np.outer(s, s) / s.sum(), atol=1e-12)


def test_fenchel_young_is_zero_exactly_at_its_prediction():
    # sparsemax((1, 0.5, -1)) = (0.75, 0.25, 0): the squared FY loss of that target is 0;
    # softmax's prediction is the Shannon one's zero.
    x = np.array([[1.0, 0.5, -1.0]])
    sq = vg(losses.fenchel_young, x, np.array([[0.75, 0.25, 0.0]]),
            static=(("regularizer", "squared"),))
    assert abs(float(sq[0][0])) < 1e-15 and np.all(np.abs(sq[1]) < 1e-15)
    assert abs(float(vg(losses.fenchel_young, x, _np_softmax(x))[0][0])) < 1e-15


# --------------------------------------------------------------------------------------------
# 3. Dice: ignore_background and the generalized Dice
# --------------------------------------------------------------------------------------------


def _seg(rng, n=2, hw=6, c=3):
    logits = rng.normal(size=(n, hw, c))
    p = _np_softmax(logits)
    t = np.eye(c)[rng.integers(0, c, size=(n, hw))]
    return p, t


CLS = (("class_axis", -1),)
IGNORE_BG = (*CLS, ("ignore_background", True))
GENERALIZED = (*CLS, ("generalized", True))


def test_dice_ignore_background_matches_optax_and_numpy(draws):
    p, t = _seg(draws["rng"])
    s = 0.5
    got = vg(losses.dice, p, t, static=IGNORE_BG, smooth=s)[0]
    inter = np.sum(p * t, 1)
    per_class = 1 - (2 * inter + s) / (p.sum(1) + t.sum(1) + s)
    np.testing.assert_allclose(got, per_class[:, 1:].mean(-1), rtol=RTOL)
    # optax adds `smooth` to the intersection (not twice it): optax(smooth=s/2) = ours(s).
    opt = optax.losses.dice_loss(jnp.asarray(p), jnp.asarray(t), smooth=s / 2,
                                 apply_softmax=False, ignore_background=True, reduction="mean")
    np.testing.assert_allclose(got, np.asarray(opt), rtol=1e-12)
    # class_weights has one entry per class; the background's is ignored.
    w = np.array([100.0, 1.0, 3.0])
    got_w = vg(losses.dice, p, t, static=IGNORE_BG, smooth=s, class_weights=w)[0]
    np.testing.assert_allclose(got_w, per_class[:, 1:] @ w[1:] / w[1:].sum(), rtol=RTOL)


def _np_generalized_dice(p, t, smooth):
    """Sudre et al. (2017), eq. (2) per example, w_c = 1/mass_c^2, MONAI's empty-class guard
    (an empty class gets the largest present weight), weights normalised to sum to 1."""
    out = []
    for pe, te in zip(p, t, strict=True):
        mass = te.reshape(-1, te.shape[-1]).sum(0)
        w = np.where(mass > 0, 1.0 / np.where(mass > 0, mass, 1) ** 2, 0.0)
        w = np.where(mass > 0, w, w.max() if (mass > 0).any() else 1.0)
        w = w / w.sum()
        pf, tf = pe.reshape(-1, pe.shape[-1]), te.reshape(-1, te.shape[-1])
        num = 2 * np.sum(w * np.sum(pf * tf, 0)) + smooth
        den = np.sum(w * (pf.sum(0) + tf.sum(0))) + smooth
        out.append(1 - num / den)
    return np.array(out)


def test_generalized_dice_matches_the_numpy_formula_and_sudre_without_smoothing(draws):
    p, t = _seg(np.random.default_rng(20261202), n=3, c=4)
    t[0, :4] = np.eye(4)  # example 0: every class present (whatever the draw)
    t[1, :, 2] = 0.0  # example 1: class 2 empty (the guard)
    t[1, :, 0] = 1.0 - t[1, :, 1] - t[1, :, 3]
    for s in (1.0, 1e-3, 1e-12):
        got, g = vg(losses.dice, p, t, static=GENERALIZED, smooth=s)
        np.testing.assert_allclose(got, _np_generalized_dice(p, t, s), rtol=1e-12)
        assert np.all(np.isfinite(g))
    # Without smoothing the weights' normalisation cancels: Sudre's raw 1/mass^2 ratio.
    e = 0  # example 0 has every class present
    w = 1 / t[e].sum(0) ** 2
    raw = 1 - 2 * np.sum(w * (p[e] * t[e]).sum(0)) / np.sum(w * (p[e].sum(0) + t[e].sum(0)))
    assert math.isclose(got[e], raw, rel_tol=1e-9)  # smooth 1e-12 shifts it by ~1e-12


def test_generalized_dice_edge_cases():
    # One class: weight 1, the plain Dice loss.
    p, t = np.array([[0.9, 0.1, 0.8, 0.0]]), np.array([[1.0, 0.0, 1.0, 0.0]])
    plain = vg(losses.dice, p, t)[0]
    np.testing.assert_allclose(vg(losses.dice, p, t, static=(("generalized", True),))[0], plain,
                               rtol=1e-15)
    # No target mass at all: equal weights, 1 - s / (sum p / C + s) (numpy by hand).
    value, g = vg(losses.dice, np.full((1, 4, 2), 0.5), np.zeros((1, 4, 2)), static=GENERALIZED)
    assert math.isclose(value[0], 1 - 1 / (0.5 * 2.0 + 0.5 * 2.0 + 1), rel_tol=1e-12)
    assert np.all(np.isfinite(g))
    # ignore_background leaves a single class alone (as optax and MONAI do).
    np.testing.assert_array_equal(
        vg(losses.dice, p, t, static=(("ignore_background", True),))[0], plain)


# --------------------------------------------------------------------------------------------
# 4. Edge table: saturation and kinks; the registry's claims
# --------------------------------------------------------------------------------------------

BIG = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4], [0.0, 0.0, 0.0]])
BIG_IDS = np.array([1, 0, 2])

EDGE_CASES = {
    "poly_loss": (BIG, BIG_IDS, {}),
    "multiclass_sparsemax_loss": (BIG, BIG_IDS, {}),
    "fenchel_young": (BIG, BIG_IDS, {"regularizer": "shannon"}),
    "fenchel_young-squared": (BIG, BIG_IDS, {"regularizer": "squared"}),
    "fenchel_young-tsallis15": (BIG, BIG_IDS, {"regularizer": "tsallis15"}),
    "multiclass_perceptron": (BIG, BIG_IDS, {}),
    "ranking_softmax": (BIG, np.array([[1.0, 0.0, 2.0], [0.0, 1.0, 0.0], [1.0, 1.0, 1.0]]), {}),
    "sparsemax_loss": (np.array([1e4, -1e4, 1.0, -1.0]), np.array([0.0, 1.0, 1.0, 0.0]), {}),
    "perceptron": (np.array([1e4, -1e4, 0.0]), np.array([-1.0, 1.0, 1.0]), {}),
    "generalized_kl_divergence": (np.array([[0.0, 1e4, 1.0]]), np.array([[1.0, 0.0, 0.0]]), {}),
    "l2_loss": (np.array([1e4, -1e4]), np.array([0.0, 0.0]), {}),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(EDGE_CASES))
def test_value_gradient_and_hessian_stay_finite_at_the_edges(name, dtype):
    x, y, kw = EDGE_CASES[name]
    fn = losses.info(name.split("-")[0]).fn

    def f(z, y):
        return fn(z, y, **kw, reduction="sum")

    xj = jnp.asarray(x, dtype)
    yj = jnp.asarray(y) if y.dtype.kind == "i" else jnp.asarray(y, dtype)
    outs = jax.jit(lambda z, y: (f(z, y), jax.grad(f)(z, y), jax.hessian(f)(z, y)))(xj, yj)
    for out in outs:
        assert np.all(np.isfinite(np.asarray(out))), (name, dtype, out)
    assert np.asarray(outs[1]).dtype == dtype


def test_saturated_values_are_exact():
    x = BIG.astype(np.float32)
    # Row 0: target 1 at -1e4 against 1e4: sparsemax loss = 1e4 - (-1e4) - 1/2 + 1/2 = 2e4
    # (p = e_0); rows 1 and 2 are at their margin/uniform point (numpy closed forms).
    got = vg(losses.multiclass_sparsemax_loss, x, BIG_IDS)[0]
    ref = _np_sparsemax_loss(BIG, np.eye(3)[BIG_IDS])
    np.testing.assert_allclose(got, ref, rtol=1e-6)  # float32: 1 ulp at 2e4 is 2e-3
    got_fy = vg(losses.fenchel_young, x, BIG_IDS)[0]
    # Row 1: target 0 at -1e4 against two at 1e4: 2e4 + log 2; row 2 uniform: log 3.
    np.testing.assert_allclose(got_fy, [2e4, 2e4 + math.log(2), math.log(3)], rtol=1e-6)


def test_minimum_norm_subgradients_at_the_kinks():
    # perceptron at y s = 0: 0 (not -y/2).
    assert vg(losses.perceptron, np.array([0.0, 0.0]), np.array([1.0, -1.0]))[1].tolist() == [0, 0]
    # Multiclass perceptron with the target tied at the top: 0, the minimum-norm element
    # (optax's jnp.max splits: (e_top - e_y) / 2); two wrong classes tied above the target
    # share the +1 equally.
    s = np.array([[1.0, 1.0, 0.0], [0.0, 2.0, 2.0]])
    g = vg(losses.multiclass_perceptron, s, np.array([0, 0]))[1]
    np.testing.assert_allclose(g, [[0.0, 0.0, 0.0], [-1.0, 0.5, 0.5]])
    g_opt = ovg(optax.losses.multiclass_perceptron_loss, s, np.array([0, 0]))[1]
    np.testing.assert_allclose(g_opt[0], [-0.5, 0.5, 0.0])
    # Binary sparsemax is C1: at its kinks z = +-1 the gradient is continuous (0 and 1).
    gx = vg(losses.sparsemax_loss, np.array([-1.0, 1.0]), np.array([0.0, 0.0]))[1]
    assert gx.tolist() == [0.0, 1.0]


def test_generalized_kl_gradient_is_finite_at_zero_predictions():
    g = vg(losses.generalized_kl_divergence, np.array([[0.0, 2.0]]), np.array([[1.0, 0.0]]))[1]
    eps = float(jnp.finfo(jnp.float64).eps)
    # 1 - t / max(p, eps) at p = 0 (the clamped log's derivative), 1 where t = 0.
    np.testing.assert_allclose(g, [[1 - 1 / eps, 1.0]], rtol=1e-12)


NEW_CLAIMS = {  # name: (convex, smooth, robust)
    "poly_loss": (False, True, True),
    "sparsemax_loss": (True, False, True),
    "multiclass_sparsemax_loss": (True, False, True),
    "fenchel_young": (True, False, True),
    "perceptron": (True, False, True),
    "multiclass_perceptron": (True, False, True),
    "generalized_kl_divergence": (True, True, False),
    "ranking_softmax": (True, True, True),
    "l2_loss": (True, True, False),
}


@pytest.mark.parametrize("name", sorted(NEW_CLAIMS))
def test_new_losses_are_registered_with_recipes_and_their_claims(name):
    entry = losses.info(name)
    assert (entry.convex, entry.smooth, entry.robust) == NEW_CLAIMS[name]
    # test_loss_properties.py checks these claims numerically through the recipe.
    assert name in RECIPES
    assert entry.fn.__doc__ and "Example" in entry.fn.__doc__


# --------------------------------------------------------------------------------------------
# 5. where=: optax's semantics, dropping by hand, -inf / NaN at masked entries, all-masked rows
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def masked():
    rng = np.random.default_rng(7)
    n, k = 6, 5
    x = rng.normal(size=(n, k)) * 2
    ids = rng.integers(0, k, size=n)
    # Three kept classes per row, the target among them (one shape for the by-hand reference).
    keep = np.zeros((n, k), bool)
    for i in range(n):
        others = rng.choice(np.delete(np.arange(k), ids[i]), size=2, replace=False)
        keep[i, [ids[i], *others]] = True
    soft = rng.uniform(0.1, 1.0, size=(n, k)) * keep
    soft /= soft.sum(-1, keepdims=True)
    probs = _np_softmax(x, keep)
    return {"x": x, "ids": ids, "keep": keep, "soft": soft, "probs": probs, "k": k}


def _optax_kl_logits(x, t, where):
    return optax.losses.kl_divergence(jax.nn.log_softmax(x, where=where), t, where=where)


# (our loss, optax's, our first argument, optax's first argument, labels, same gradient?)
OPTAX_WHERE = {
    "softmax_cross_entropy-soft": (losses.softmax_cross_entropy,
                                   optax.losses.softmax_cross_entropy, "x", "x", "soft", True),
    # optax's integer version reads the target's raw logit: the same when the target is kept.
    "softmax_cross_entropy-ids": (losses.softmax_cross_entropy,
                                  optax.losses.softmax_cross_entropy_with_integer_labels,
                                  "x", "x", "ids", True),
    "poly_loss": (losses.poly_loss, optax.losses.poly_loss_cross_entropy, "x", "x", "soft",
                  True),
    "kl_divergence_with_logits": (losses.kl_divergence_with_logits, _optax_kl_logits, "x", "x",
                                  "soft", True),
    # optax's KL divergences take log-predictions: values only.
    "kl_divergence": (losses.kl_divergence, optax.losses.kl_divergence, "probs", "log_probs",
                      "soft", False),
    "generalized_kl_divergence": (losses.generalized_kl_divergence,
                                  optax.losses.generalized_kl_divergence, "exp_x", "x", "soft",
                                  False),
}


@pytest.mark.parametrize("case", sorted(OPTAX_WHERE))
def test_where_matches_optax_where(masked, case):
    ours, theirs, a, b, lab, same_grad = OPTAX_WHERE[case]
    with np.errstate(divide="ignore"):  # log 0 at masked entries: optax does not read them
        data = {**masked, "exp_x": np.exp(masked["x"]), "log_probs": np.log(masked["probs"])}
    v, g = vg(ours, data[a], data[lab], where=masked["keep"])
    ov, og = ovg(theirs, data[b], data[lab], where=masked["keep"])
    np.testing.assert_allclose(v, ov, rtol=1e-12, atol=1e-14)
    if same_grad:  # both 0 at the masked entries
        np.testing.assert_allclose(g, og, atol=1e-12)


# Each class-axis loss with `where`: (function, first argument, labels, hyperparameters).
BY_HAND_LOSSES = {
    "softmax_cross_entropy-ids": (losses.softmax_cross_entropy, "x", "ids", {}),
    "softmax_cross_entropy-smooth": (losses.softmax_cross_entropy, "x", "ids",
                                     {"label_smoothing": 0.2}),
    "softmax_cross_entropy-soft": (losses.softmax_cross_entropy, "x", "soft", {}),
    "categorical_cross_entropy": (losses.categorical_cross_entropy, "probs", "ids", {}),
    "softmax_focal": (losses.softmax_focal, "x", "ids", {"gamma": 2.0}),
    "softmax_focal-soft": (losses.softmax_focal, "x", "soft", {"gamma": 1.5}),
    "kl_divergence_with_logits": (losses.kl_divergence_with_logits, "x", "soft", {}),
    "kl_divergence": (losses.kl_divergence, "probs", "soft", {}),
    "multiclass_hinge": (losses.multiclass_hinge, "x", "ids", {}),
    "multiclass_perceptron": (losses.multiclass_perceptron, "x", "ids", {}),
    "poly_loss": (losses.poly_loss, "x", "ids", {"epsilon": 1.0}),
    "multiclass_sparsemax_loss": (losses.multiclass_sparsemax_loss, "x", "ids", {}),
    "multiclass_sparsemax_loss-soft": (losses.multiclass_sparsemax_loss, "x", "soft", {}),
    "fenchel_young-squared": (losses.fenchel_young, "x", "soft", {"regularizer": "squared"}),
    "fenchel_young-tsallis15": (losses.fenchel_young, "x", "ids", {"regularizer": "tsallis15"}),
    "ranking_softmax": (losses.ranking_softmax, "x", "relevance", {}),
    "generalized_kl_divergence": (losses.generalized_kl_divergence, "exp_x", "soft", {}),
}
BY_HAND = sorted(BY_HAND_LOSSES)


def _by_hand_cases(m):
    data = {**m, "relevance": 3 * m["soft"], "exp_x": np.exp(m["x"])}
    return {case: (fn, data[a], data[b], kw) for case, (fn, a, b, kw) in BY_HAND_LOSSES.items()}


@pytest.mark.parametrize("case", BY_HAND)
def test_where_equals_dropping_the_masked_classes_by_hand(masked, case):
    fn, first, labels, kw = _by_hand_cases(masked)[case]
    keep = masked["keep"]
    got = np.asarray(_compiled(case)(jnp.asarray(first), jnp.asarray(labels),
                                     jnp.asarray(keep))[0])
    cols = np.stack([np.flatnonzero(row) for row in keep])  # (n, 3): the kept classes
    rows = np.arange(len(first))[:, None]
    if labels.ndim == 1:  # class ids renumbered among the kept classes
        lab = np.argmax(cols == labels[:, None], axis=1)
    else:
        lab = labels[rows, cols]
    static = tuple((k, v) for k, v in kw.items() if isinstance(v, str))
    traced = {k: v for k, v in kw.items() if not isinstance(v, str)}
    ref = vg(fn, first[rows, cols], lab, static=static, **traced)[0]
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-14)


@functools.cache
def _compiled(case):
    """One program per case: values, gradient and Hessian of the sum, and the mean (shared by
    the three tests below: one compile per case)."""
    fn, _, _, kw = BY_HAND_LOSSES[case]

    def total(z, labels, keep):
        return fn(z, labels, where=keep, **kw, reduction="sum")

    def run(z, labels, keep):
        values = fn(z, labels, where=keep, **kw, reduction="none")
        mean = fn(z, labels, where=keep, **kw)
        return values, jax.grad(total)(z, labels, keep), jax.hessian(total)(z, labels, keep), mean

    return jax.jit(run)


@pytest.mark.parametrize("case", BY_HAND)
def test_masked_entries_holding_inf_or_nan_are_not_read(masked, case):
    _, first, labels, _ = _by_hand_cases(masked)[case]
    keep = masked["keep"]
    run = _compiled(case)
    clean = np.asarray(run(jnp.asarray(first), jnp.asarray(labels), jnp.asarray(keep))[0])
    for junk in (-np.inf, np.nan):
        dirty = jnp.asarray(np.where(keep, first, junk))
        values, g, h, _ = (np.asarray(a) for a in run(dirty, jnp.asarray(labels),
                                                          jnp.asarray(keep)))
        np.testing.assert_allclose(values, clean, rtol=1e-12, atol=1e-14)
        assert np.all(np.isfinite(g)) and np.all(np.isfinite(h)), (case, junk)
        assert np.all(g[~keep] == 0), (case, junk)  # gradient 0 at masked entries
        assert np.all(h[~keep] == 0) and np.all(h[:, :, ~keep] == 0), (case, junk)


@pytest.mark.parametrize("case", BY_HAND)
def test_all_masked_rows_give_zero_and_are_left_out_of_the_mean(masked, case):
    _, first, labels, _ = _by_hand_cases(masked)[case]
    keep = masked["keep"].copy()
    keep[2] = False
    dirty = np.where(keep, first, -np.inf)
    none, g, _, mean = (np.asarray(a) for a in _compiled(case)(
        jnp.asarray(dirty), jnp.asarray(labels), jnp.asarray(keep)))
    assert none[2] == 0.0 and np.all(np.isfinite(none))
    rows = np.flatnonzero(keep.any(-1))
    assert math.isclose(float(mean), none[rows].mean(), rel_tol=1e-12)  # 5 rows, not 6
    assert np.all(np.isfinite(g)) and np.all(g[2] == 0)


def test_where_of_the_row_shape_masks_whole_examples(masked):
    x, ids, keep = jnp.asarray(masked["x"]), jnp.asarray(masked["ids"]), masked["keep"]
    rows = np.array([True, False, True, True, False, True])
    every = jnp.ones(keep.shape, bool)

    @jax.jit  # one compiled program (inputs closed over: the eager value checks still run)
    def program():
        return (losses.softmax_cross_entropy(x, ids, where=jnp.asarray(rows), reduction="none"),
                losses.softmax_cross_entropy(x, ids, reduction="none"),
                optax.losses.softmax_cross_entropy(
                    x, jnp.asarray(np.eye(masked["k"])[masked["ids"]]), where=jnp.asarray(rows)),
                losses.poly_loss(x, ids, where=every, reduction="none"),
                losses.poly_loss(x, ids, reduction="none"))

    got, full, opt, poly_every, poly = program()
    np.testing.assert_allclose(np.asarray(got), np.where(rows, np.asarray(full), 0), rtol=RTOL)
    # optax broadcasts a row mask the same way.
    np.testing.assert_allclose(np.asarray(got), np.asarray(opt), rtol=RTOL)
    # A full mask that keeps everything is the unmasked loss.
    np.testing.assert_allclose(np.asarray(poly_every), np.asarray(poly), rtol=RTOL)


def test_where_follows_the_class_axis_and_works_under_jit(masked):
    x, ids, keep = masked["x"], masked["ids"], masked["keep"]
    ref = losses.softmax_cross_entropy(jnp.asarray(x), jnp.asarray(ids), where=jnp.asarray(keep),
                                       reduction="none")
    got = losses.softmax_cross_entropy(jnp.asarray(x.T), jnp.asarray(ids), axis=0,
                                       where=jnp.asarray(keep.T), reduction="none")
    np.testing.assert_allclose(np.asarray(got), np.asarray(ref), rtol=RTOL)
    f = jax.jit(lambda z, y, m: losses.softmax_cross_entropy(z, y, where=m, reduction="none"))
    np.testing.assert_allclose(np.asarray(f(jnp.asarray(x), jnp.asarray(ids), jnp.asarray(keep))),
                               np.asarray(ref), rtol=RTOL)
    # Under jit a class id on a masked class cannot raise: that example's loss is NaN.
    bad = keep.copy()
    bad[0, ids[0]] = False
    out = np.asarray(f(jnp.asarray(x), jnp.asarray(ids), jnp.asarray(bad)))
    assert np.isnan(out[0]) and np.all(np.isfinite(out[1:]))


def test_where_against_torch_with_minus_inf_logits(masked):
    torch = pytest.importorskip("torch")
    x, ids, keep = masked["x"], masked["ids"], masked["keep"]
    xt = torch.tensor(np.where(keep, x, -np.inf), requires_grad=True)
    ref = torch.nn.functional.cross_entropy(xt, torch.tensor(ids), reduction="sum")
    ref.backward()
    value, g = jax.jit(jax.value_and_grad(lambda z: losses.softmax_cross_entropy(
        z, jnp.asarray(ids), where=jnp.asarray(keep), reduction="sum")))(jnp.asarray(x))
    assert math.isclose(float(value), ref.item(), rel_tol=1e-12)
    np.testing.assert_allclose(np.asarray(g), xt.grad.numpy(), atol=1e-12)


@pytest.mark.parametrize("fn", [losses.softmax_cross_entropy, losses.softmax_focal,
                                losses.multiclass_hinge, losses.multiclass_perceptron,
                                losses.poly_loss, losses.multiclass_sparsemax_loss],
                         ids=lambda f: f.__name__)
def test_single_kept_class_gives_zero_loss_with_finite_gradients(fn):
    # Only the target kept: softmax p = 1, the hinge has no runner-up, sparsemax is e_y.
    x = np.array([[0.3, -np.inf, -np.inf]])
    value, g = vg(fn, x, np.array([0]), where=np.array([[True, False, False]]))
    assert value.tolist() == [0.0] and np.all(g == 0), (fn.__name__, value, g)


# --------------------------------------------------------------------------------------------
# 6. Bad input
# --------------------------------------------------------------------------------------------


def test_bad_inputs_raise_naming_the_argument():
    x = jnp.zeros((2, 3))
    ids = jnp.array([0, 1])
    with pytest.raises(ValueError, match=r"`where` must have the input's shape \(2, 3\).*"
                                         r"or \(2,\).*got array of shape \(3,\)"):
        losses.softmax_cross_entropy(x, ids, where=jnp.ones(3, bool))
    with pytest.raises(TypeError, match=r"`where` must be a boolean array.*float"):
        losses.poly_loss(x, ids, where=jnp.ones((2, 3)))
    with pytest.raises(ValueError, match=r"`labels` must not point at a class that `where` "
                                         r"masks out; got labels\[1\] = 1"):
        losses.multiclass_sparsemax_loss(x, ids, where=jnp.array([[True, True, False],
                                                                  [True, False, True]]))
    with pytest.raises(ValueError, match=r"`predictions` must hold values >= 0.*"
                                         r"predictions\[0, 1\] = -0.5"):
        losses.generalized_kl_divergence(jnp.array([[1.0, -0.5]]), jnp.array([[1.0, 1.0]]))
    with pytest.raises(ValueError, match=r"`targets` must hold values >= 0.*targets\[0, 0\]"):
        losses.generalized_kl_divergence(jnp.array([[1.0, 0.5]]), jnp.array([[-1.0, 1.0]]))
    with pytest.raises(ValueError, match=r"`epsilon` must hold a finite number >= -1"):
        losses.poly_loss(x, ids, epsilon=-2.0)
    with pytest.raises(ValueError, match=r"`regularizer` must be one of.*'shannon'.*'tsallis'"):
        losses.fenchel_young(x, ids, regularizer="tsallis")
    with pytest.raises(ValueError, match=r"`labels` must hold labels in \{0, 1\}"):
        losses.sparsemax_loss(jnp.zeros(2), jnp.array([1.0, -1.0]))
    with pytest.raises(ValueError, match=r"`labels` must hold relevance labels >= 0"):
        losses.ranking_softmax(x, -jnp.ones((2, 3)))
    with pytest.raises(ValueError, match=r"`labels` must hold distributions that sum to 1"):
        losses.fenchel_young(x, jnp.full((2, 3), 0.5))
    with pytest.raises(ValueError, match=r"`class_weights` and `generalized=True` exclude"):
        losses.dice(jnp.full((1, 2, 2), 0.5), jnp.ones((1, 2, 2)), class_axis=-1,
                    generalized=True, class_weights=jnp.ones(2))
    with pytest.raises(ValueError, match=r"`class_weights` must have shape \(3,\).*background"):
        losses.dice(jnp.full((1, 2, 3), 0.5), jnp.ones((1, 2, 3)), class_axis=-1,
                    ignore_background=True, class_weights=jnp.ones(2))
    with pytest.raises(TypeError, match=r"`generalized` must be a bool"):
        losses.dice(jnp.full((1, 2), 0.5), jnp.ones((1, 2)), generalized="yes")
    with pytest.raises(ValueError, match=r"`probs` must hold distributions that sum to 1"):
        # kept probabilities must sum to 1 (0.2 + 0.2 here; the masked 0.6 is not read).
        losses.categorical_cross_entropy(jnp.array([[0.2, 0.2, 0.6]]), jnp.array([0]),
                                         where=jnp.array([[True, True, False]]))
