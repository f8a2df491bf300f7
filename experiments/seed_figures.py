"""Reproduce the seed document's four figures, correctly, with lossopt.

1. ``regression_losses.png``: MSE, MAE and Huber (delta = 1) against the prediction error.
2. ``classification_losses.png``: BCE (y = 1 and y = 0) against the predicted probability, and
   hinge (y = +1 and y = -1) against the score (the seed plotted hinge against a probability
   axis, where it is a straight line; here each loss gets its natural axis).
3. ``convergence_losses.png``: "Convergence with Different Loss Functions": gradient descent on
   MSE and (subgradient) descent on MAE for the seed's experiment (X of shape 100 x 5,
   true_w = [1.5, -2, 0.5, 3, -1], noise 0.5, learning rate 0.01, 100 epochs).
4. ``gd_vs_newton.png``: "Comparison of Optimization Methods": gradient descent vs Newton's
   method on MSE (log scale: Newton solves least squares in one step).

A note on the seed's numpy code: its ``gradient_descent`` computes
``X.T.dot(grad_func(y, y_pred)) / len(y)`` where ``mse_gradient`` has *already* divided by n
(``2 * (y_pred - y_true) / y_true.size``), so its gradient is n = 100 times too small and its
curves barely move in 100 epochs. The same double division shrinks its Newton step (the Hessian
``2 X^T X / n`` is right, the gradient 1/n too small). lossopt differentiates the mean loss with
``jax.grad`` instead, so the curves below use the correct gradients.
(``python experiments/verify_seed_gradients.py`` lets the gradient checker find these bugs.)

Run: ``python experiments/seed_figures.py [OUT_DIR]`` (default ``results/seed_figures``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

import lossopt
from lossopt import losses
from lossopt.solvers import GradientDescent, Newton, Subgradient

TRUE_W = np.array([1.5, -2.0, 0.5, 3.0, -1.0])


def seed_data(seed: int = 42):
    """The seed's data: ``np.random.seed(42)``, X ~ N(0, 1) of shape (100, 5), noise 0.5."""
    rng = np.random.RandomState(seed)
    X = rng.randn(100, 5)
    y = X.dot(TRUE_W) + rng.randn(100) * 0.5
    w0 = rng.randn(5)  # the seed draws its starting point after the data
    return jnp.asarray(X), jnp.asarray(y), jnp.asarray(w0)


def _objective(loss):
    def objective(w, X, y):
        return loss(X @ w, y)

    return objective


MSE_OBJECTIVE = _objective(losses.mse)
MAE_OBJECTIVE = _objective(losses.mae)


def regression_losses(path: Path) -> None:
    r = jnp.linspace(-3, 3, 100)
    zero = jnp.zeros_like(r)
    fig = Figure(figsize=(8, 5), layout="constrained")
    ax = fig.subplots()
    ax.plot(r, losses.mse(r, zero, reduction="none"), label="MSE")
    ax.plot(r, losses.mae(r, zero, reduction="none"), label="MAE")
    ax.plot(r, losses.huber(r, zero, delta=1.0, reduction="none"), label="Huber (δ=1)")
    ax.set(xlabel="Prediction Error", ylabel="Loss Value", title="Regression Loss Functions")
    ax.legend()
    ax.grid(True)
    fig.savefig(path, dpi=100)


def classification_losses(path: Path) -> None:
    p = jnp.linspace(0.01, 0.99, 100)
    s = jnp.linspace(-2, 2, 100)
    fig = Figure(figsize=(11, 4.5), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    for label in (1.0, 0.0):
        ax1.plot(p, losses.binary_cross_entropy(p, jnp.full_like(p, label), reduction="none"),
                 label=f"BCE (y={label:.0f})")
    ax1.set(xlabel="Predicted Probability", ylabel="Loss Value", title="Binary cross-entropy")
    for label in (1.0, -1.0):
        ax2.plot(s, losses.hinge(s, jnp.full_like(s, label), reduction="none"),
                 label=f"Hinge (y={label:+.0f})")
    ax2.set(xlabel="Score", ylabel="Loss Value", title="Hinge")
    for ax in (ax1, ax2):
        ax.legend()
        ax.grid(True)
    fig.suptitle("Classification Loss Functions")
    fig.savefig(path, dpi=100)


def convergence_runs(X, y, w0, epochs: int = 100):
    """MSE by gradient descent, MAE by subgradient descent; both with learning rate 0.01."""
    mse = lossopt.minimize(MSE_OBJECTIVE, w0, GradientDescent(learning_rate=0.01), args=(X, y),
                           max_iters=epochs, gtol=0.0)
    mae = lossopt.minimize(MAE_OBJECTIVE, w0, Subgradient(step_size=0.01), args=(X, y),
                           max_iters=epochs, gtol=0.0)
    return mse, mae


def newton_run(X, y, w0, epochs: int = 50):
    """Newton's method with an Armijo line search (the seed damps every step by 0.1 instead;
    on a quadratic the full Newton step is exact, so the line search accepts it at once)."""
    return lossopt.minimize(MSE_OBJECTIVE, w0, Newton(), args=(X, y), max_iters=epochs,
                            gtol=1e-10)


def main(out_dir: str | Path = "results/seed_figures") -> list[Path]:
    jax.config.update("jax_enable_x64", True)  # a script: it may choose its own precision
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "regression_losses.png", out / "classification_losses.png",
             out / "convergence_losses.png", out / "gd_vs_newton.png"]
    regression_losses(paths[0])
    classification_losses(paths[1])
    X, y, w0 = seed_data()
    mse, mae = convergence_runs(X, y, w0)
    fig = Figure(figsize=(8, 5), layout="constrained")
    ax = fig.subplots()
    ax.plot(mse.trace.to_numpy()["loss"], label="MSE")
    ax.plot(mae.trace.to_numpy()["loss"], label="MAE")
    ax.set(xlabel="Epoch", ylabel="Loss", title="Convergence with Different Loss Functions")
    ax.legend()
    ax.grid(True)
    fig.savefig(paths[2], dpi=100)
    newton = newton_run(X, y, w0)
    fig = Figure(figsize=(8, 5), layout="constrained")
    ax = fig.subplots()
    ax.plot(mse.trace.to_numpy()["loss"], label="Gradient Descent")
    ax.plot(newton.trace.to_numpy()["loss"], label="Newton Method")
    ax.set(xlabel="Epoch", ylabel="Loss", title="Comparison of Optimization Methods",
           yscale="log")
    ax.legend()
    ax.grid(True)
    fig.savefig(paths[3], dpi=100)
    w_ls = np.linalg.lstsq(np.asarray(X), np.asarray(y), rcond=None)[0]
    print(f"least squares w      = {np.round(w_ls, 3)}")
    print(f"GD (MSE, 100 epochs) = {np.round(np.asarray(mse.params), 3)}")
    print(f"Newton (50 steps)    = {np.round(np.asarray(newton.params), 3)}")
    print(f"true w               = {TRUE_W}")
    for p in paths:
        print(p)
    return paths


if __name__ == "__main__":
    main(*sys.argv[1:])
