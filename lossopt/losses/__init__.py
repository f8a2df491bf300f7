"""Loss functions: pure JAX, safe to differentiate twice, registered by name.

Per-example losses have the signature ``loss(predictions, targets, *, <hyperparameters>,
weights=None, reduction="mean")``; classification losses name the arguments ``(logits, labels)``
or ``(probs, labels)``, and losses with other natural inputs keep them in the same shape of
call: ``triplet(anchor, positive, negative, ...)``, ``contrastive(x1, x2, labels, ...)``,
``info_nce(embeddings, labels, ...)``, ``ctc(logits, logit_paddings, labels, label_paddings,
...)``. The multi-task combinators ``combine(losses, *, task_weights)`` and
``uncertainty_weighted(losses, log_vars)`` take a dict of task losses. :mod:`lossopt.losses.robust`
holds the rho/psi/IRLS-weight triples of the robust losses.

See :func:`catalog` for the list with properties and :func:`get` to look a loss up by name with
hyperparameters bound.
"""

from lossopt.losses import robust
from lossopt.losses._classification import (
    binary_cross_entropy,
    categorical_cross_entropy,
    hinge,
    multiclass_hinge,
    sigmoid_binary_cross_entropy,
    softmax_cross_entropy,
    squared_hinge,
)
from lossopt.losses._counts import poisson
from lossopt.losses._divergence import (
    generalized_kl_divergence,
    kl_divergence,
    kl_divergence_with_logits,
)
from lossopt.losses._embedding import (
    contrastive,
    cosine_embedding,
    info_nce,
    margin_ranking,
    triplet,
)
from lossopt.losses._focal import binary_focal, categorical_focal, sigmoid_focal, softmax_focal
from lossopt.losses._l2 import l2_loss
from lossopt.losses._label_noise import generalized_cross_entropy
from lossopt.losses._margin import (
    categorical_hinge,
    hinge_embedding,
    multi_margin,
    multilabel_margin,
    multilabel_soft_margin,
    soft_margin,
)
from lossopt.losses._multitask import combine, uncertainty_weighted
from lossopt.losses._perceptron import multiclass_perceptron, perceptron
from lossopt.losses._poly import poly_loss
from lossopt.losses._probabilistic import gaussian_nll, nll, poisson_nll
from lossopt.losses._ranking import ranking_softmax
from lossopt.losses._reduce import REDUCTIONS, reduce_loss
from lossopt.losses._registry import LossInfo, catalog, get, info, names
from lossopt.losses._regression import (
    epsilon_insensitive,
    huber,
    log_cosh,
    mae,
    mape,
    mse,
    msle,
    quantile,
    smooth_l1,
)
from lossopt.losses._robust import barron, barron_nll, cauchy, geman_mcclure, tukey, welsch
from lossopt.losses._segmentation import dice, focal_tversky, tversky
from lossopt.losses._sequence import ctc
from lossopt.losses._similarity import circle, cosine_similarity
from lossopt.losses._sparse import fenchel_young, multiclass_sparsemax_loss, sparsemax_loss

__all__ = [
    "REDUCTIONS",
    "LossInfo",
    "barron",
    "barron_nll",
    "binary_cross_entropy",
    "binary_focal",
    "catalog",
    "categorical_cross_entropy",
    "categorical_focal",
    "categorical_hinge",
    "cauchy",
    "circle",
    "combine",
    "contrastive",
    "cosine_embedding",
    "cosine_similarity",
    "ctc",
    "dice",
    "epsilon_insensitive",
    "fenchel_young",
    "focal_tversky",
    "gaussian_nll",
    "geman_mcclure",
    "generalized_cross_entropy",
    "generalized_kl_divergence",
    "get",
    "hinge",
    "hinge_embedding",
    "huber",
    "info",
    "info_nce",
    "kl_divergence",
    "kl_divergence_with_logits",
    "l2_loss",
    "log_cosh",
    "mae",
    "mape",
    "margin_ranking",
    "mse",
    "msle",
    "multi_margin",
    "multiclass_hinge",
    "multiclass_perceptron",
    "multiclass_sparsemax_loss",
    "multilabel_margin",
    "multilabel_soft_margin",
    "names",
    "nll",
    "perceptron",
    "poisson",
    "poisson_nll",
    "poly_loss",
    "quantile",
    "ranking_softmax",
    "reduce_loss",
    "robust",
    "sigmoid_binary_cross_entropy",
    "sigmoid_focal",
    "smooth_l1",
    "soft_margin",
    "softmax_cross_entropy",
    "softmax_focal",
    "sparsemax_loss",
    "squared_hinge",
    "triplet",
    "tukey",
    "tversky",
    "uncertainty_weighted",
    "welsch",
]
