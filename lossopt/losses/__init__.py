"""Loss functions: pure JAX, safe to differentiate twice, registered by name.

Per-example losses have the signature ``loss(predictions, targets, *, <hyperparameters>,
weights=None, reduction="mean")``; classification losses name the arguments ``(logits, labels)``
or ``(probs, labels)``, and losses with other natural inputs keep them in the same shape of
call: ``triplet(anchor, positive, negative, ...)``, ``contrastive(x1, x2, labels, ...)``,
``info_nce(embeddings, labels, ...)``, ``ctc(logits, logit_paddings, labels, label_paddings,
...)``. The multi-task combinators ``combine(losses, weights)`` and
``uncertainty_weighted(losses, log_vars)`` take a dict of task losses. :mod:`lossopt.losses.robust`
holds the rho/psi/IRLS-weight triples of the robust losses.

See :func:`catalog` for the list with properties and :func:`get` to look a loss up by name with
hyperparameters bound.
"""

from lossopt.losses import robust
from lossopt.losses._classification import *  # noqa: F403
from lossopt.losses._classification import __all__ as _classification_all
from lossopt.losses._counts import *  # noqa: F403
from lossopt.losses._counts import __all__ as _counts_all
from lossopt.losses._divergence import *  # noqa: F403
from lossopt.losses._divergence import __all__ as _divergence_all
from lossopt.losses._embedding import *  # noqa: F403
from lossopt.losses._embedding import __all__ as _embedding_all
from lossopt.losses._focal import *  # noqa: F403
from lossopt.losses._focal import __all__ as _focal_all
from lossopt.losses._l2 import *  # noqa: F403
from lossopt.losses._l2 import __all__ as _l2_all
from lossopt.losses._label_noise import *  # noqa: F403
from lossopt.losses._label_noise import __all__ as _label_noise_all
from lossopt.losses._margin import *  # noqa: F403
from lossopt.losses._margin import __all__ as _margin_all
from lossopt.losses._multitask import *  # noqa: F403
from lossopt.losses._multitask import __all__ as _multitask_all
from lossopt.losses._perceptron import *  # noqa: F403
from lossopt.losses._perceptron import __all__ as _perceptron_all
from lossopt.losses._poly import *  # noqa: F403
from lossopt.losses._poly import __all__ as _poly_all
from lossopt.losses._probabilistic import *  # noqa: F403
from lossopt.losses._probabilistic import __all__ as _probabilistic_all
from lossopt.losses._ranking import *  # noqa: F403
from lossopt.losses._ranking import __all__ as _ranking_all
from lossopt.losses._reduce import REDUCTIONS, reduce_loss
from lossopt.losses._registry import LossInfo, catalog, get, info, names
from lossopt.losses._regression import *  # noqa: F403
from lossopt.losses._regression import __all__ as _regression_all
from lossopt.losses._robust import *  # noqa: F403
from lossopt.losses._robust import __all__ as _robust_all
from lossopt.losses._segmentation import *  # noqa: F403
from lossopt.losses._segmentation import __all__ as _segmentation_all
from lossopt.losses._sequence import *  # noqa: F403
from lossopt.losses._sequence import __all__ as _sequence_all
from lossopt.losses._similarity import *  # noqa: F403
from lossopt.losses._similarity import __all__ as _similarity_all
from lossopt.losses._sparse import *  # noqa: F403
from lossopt.losses._sparse import __all__ as _sparse_all

__all__ = [
    "REDUCTIONS",
    "LossInfo",
    "catalog",
    "get",
    "info",
    "names",
    "reduce_loss",
    "robust",
    *_regression_all,
    *_classification_all,
    *_probabilistic_all,
    *_robust_all,
    *_embedding_all,
    *_segmentation_all,
    *_sequence_all,
    *_multitask_all,
    *_margin_all,
    *_focal_all,
    *_label_noise_all,
    *_counts_all,
    *_similarity_all,
    *_poly_all,
    *_sparse_all,
    *_perceptron_all,
    *_divergence_all,
    *_ranking_all,
    *_l2_all,
]
