"""Any optax ``GradientTransformation`` driven by :func:`lossopt.minimize`'s compiled loop."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from lossopt._pytree import PyTree
from lossopt.solvers._protocol import Objective, StepResult, pytree_dataclass, static_field

__all__ = ["Optax"]


def _find(tree: Any, key: str) -> Any:
    """``optax.tree.get(tree, key)``, or None when absent or ambiguous."""
    import optax

    try:
        return optax.tree.get(tree, key)
    except KeyError:
        return None


@pytree_dataclass
class Optax:
    """Run an optax optimizer inside :func:`lossopt.minimize`, with its traces and stopping rules.

    Every iteration calls ``optimizer.update(grad, state, params, value=value, grad=grad,
    value_fn=...)`` (plain transformations ignore the extra arguments; line-search ones such as
    ``optax.lbfgs()`` use them), then ``optax.apply_updates``. When the optimizer's state stores
    the new point's ``value`` and ``grad`` (optax's line searches do), they are reused through
    ``optax.value_and_grad_from_state`` instead of being recomputed; their line-search trials
    are counted in ``num_fun_evals``/``num_grad_evals``.

    The optimizer is a static field: it is part of the compilation key, so build it once and
    reuse it to avoid recompiling. Its hyperparameters are closed over and cannot be vmapped
    through this solver; to sweep an optax learning rate, build the optimizer inside the
    vmapped function (``lossopt.sweep(fun, p0, lambda lr: Optax(optax.adam(lr)), lrs)``).

    Args:
        optimizer: an ``optax.GradientTransformation`` (or ``...ExtraArgs``).

    Raises:
        TypeError: ``optimizer`` is not an optax gradient transformation.

    Example:
        >>> import jax.numpy as jnp
        >>> import optax
        >>> import lossopt
        >>> from lossopt.solvers import Optax
        >>> f = lambda w: jnp.sum((w - 3.0) ** 2) + 0.5 * jnp.sum(w ** 4)  # w^3 + w = 3
        >>> res = lossopt.minimize(f, jnp.zeros(3), Optax(optax.lbfgs()), gtol=1e-5)
        >>> print(jnp.round(res.params, 3), bool(res.converged))
        [1.213 1.213 1.213] True
    """

    optimizer: Any = static_field()

    def __post_init__(self) -> None:
        opt = self.optimizer
        if not (callable(getattr(opt, "init", None)) and callable(getattr(opt, "update", None))):
            raise TypeError(
                "`optimizer` must be an optax GradientTransformation (with init and update), "
                f"e.g. optax.adam(1e-3); got {type(opt).__name__} {opt!r}"
            )

    @property
    def monotone(self) -> bool:
        """False: optax optimizers in general do not decrease the objective every step."""
        return False

    def init(
        self, objective: Objective, params: PyTree, value: jax.Array, grad: PyTree
    ) -> PyTree:  # optax.OptState: any pytree
        return self.optimizer.init(params)

    def step(
        self, objective: Objective, params: PyTree, value: jax.Array, grad: PyTree,
        state: PyTree,
    ) -> StepResult:
        import optax  # here, not at import: `import lossopt` need not import optax (~0.1 s)

        opt = optax.with_extra_args_support(self.optimizer)
        # optax's own code mixes int32 step counts with Python floats, which JAX's "strict"
        # dtype promotion refuses: run it under standard promotion (a trace-time, scoped
        # setting), so a user who works in strict mode can still use any optax optimizer.
        with jax.numpy_dtype_promotion("standard"):
            updates, new_state = opt.update(
                grad, state, params, value=value, grad=grad, value_fn=objective.value
            )
            new_state = optax.tree.cast_like(new_state, state)
            new_params = optax.apply_updates(params, updates)

        stored_value = _find(new_state, "value")
        stored_grad = _find(new_state, "grad")
        stored = (
            stored_value is not None
            and stored_grad is not None
            and jax.tree.structure(stored_grad) == jax.tree.structure(params)
        )
        if not stored:
            new_value, new_grad = objective.value_and_grad(new_params)
            return StepResult(new_params, new_value, new_grad, new_state)

        trials = _find(new_state, "num_linesearch_steps")
        trials = jnp.asarray(0 if trials is None else trials, jnp.int32)
        # optax recomputes when the stored value is not finite; count that evaluation too.
        recomputed = (~jnp.isfinite(stored_value)).astype(jnp.int32)
        new_value, new_grad = optax.value_and_grad_from_state(objective.value)(
            new_params, state=new_state
        )
        new_value = new_value.astype(value.dtype)
        return StepResult(
            new_params,
            new_value,
            new_grad,
            new_state,
            fun_evals=trials + recomputed,
            grad_evals=trials + recomputed,
        )
