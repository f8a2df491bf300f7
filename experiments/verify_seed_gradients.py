"""Check every hand-derived gradient of the seed document with ``lossopt.check_gradient``.

The seed document that started lossopt (a web article on loss functions) derives gradients by
hand, in numpy code and in formulas. This script checks each one against the loss it belongs to
and prints a table: correct or not, and what is wrong.

Every gradient is taken **with respect to the predictions** ``y_pred`` (the model parameters for
the training loops and the network) of **the mean loss** the document defines
(``np.mean(...)``, or ``sum / n``), exactly as its numpy code computes it. The seed's code is
embedded below verbatim (the project never reads the seed file at run time); the gradient
formulas of its text are transcribed as functions.

Run: ``python experiments/verify_seed_gradients.py``
"""

# The seed's code uses numpy's legacy global RNG (and an unused loop variable); it is kept
# verbatim, and the helpers below save and restore that global state around it.
# ruff: noqa: NPY002, B007

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from lossopt import check_gradient, check_hessian

# ============================================================================================
# BEGIN seed document code (verbatim; only these functions and the class, their bodies
# untouched, unused plotting/example lines left out)
# ============================================================================================


def mean_squared_error(y_true, y_pred):
    """Mean Squared Error loss function"""
    return np.mean((y_true - y_pred) ** 2)

def mse_gradient(y_true, y_pred):
    """Gradient of Mean Squared Error"""
    return 2 * (y_pred - y_true) / y_true.size


def binary_cross_entropy(y_true, y_pred, epsilon=1e-15):
    """Binary Cross-Entropy loss function"""
    y_pred = np.clip(y_pred, epsilon, 1 - epsilon)
    return -np.mean(y_true * np.log(y_pred) + (1 - y_true) * np.log(1 - y_pred))

def bce_gradient(y_true, y_pred, epsilon=1e-15):
    """Gradient of Binary Cross-Entropy"""
    y_pred = np.clip(y_pred, epsilon, 1 - epsilon)
    return (y_pred - y_true) / (y_pred * (1 - y_pred) * y_true.size)


def categorical_cross_entropy(y_true, y_pred, epsilon=1e-15):
    """Categorical Cross-Entropy loss function"""
    y_pred = np.clip(y_pred, epsilon, 1 - epsilon)
    return -np.sum(y_true * np.log(y_pred)) / y_true.shape[0]

def cce_gradient(y_true, y_pred, epsilon=1e-15):
    """Gradient of Categorical Cross-Entropy"""
    y_pred = np.clip(y_pred, epsilon, 1 - epsilon)
    return (y_pred - y_true) / (y_true.shape[0] * y_pred)


def gradient_descent(X, y, loss_func, grad_func, learning_rate=0.01, epochs=100):
    """Gradient descent with different loss functions"""
    w = np.random.randn(X.shape[1])
    losses = []

    for epoch in range(epochs):
        y_pred = X.dot(w)
        loss = loss_func(y, y_pred)
        gradient = X.T.dot(grad_func(y, y_pred)) / len(y)

        w -= learning_rate * gradient
        losses.append(loss)

    return w, losses

# MAE optimization (using subgradient)
def mae_subgradient(y_true, y_pred):
    return np.sign(y_pred - y_true) / y_true.size

mae_loss = lambda y, yp: np.mean(np.abs(y - yp))  # noqa: E731 - the seed's `lambda y, yp: ...`


# Hessian for MSE
def mse_hessian(X, y, y_pred):
    return 2 * X.T.dot(X) / len(y)


class DropoutLayer:
    def __init__(self, p=0.5):
        self.p = p
        self.mask = None

    def forward(self, x, training=True):
        if training:
            self.mask = (np.random.rand(*x.shape) > self.p) / (1 - self.p)
            return x * self.mask
        return x

    def backward(self, grad_output):
        return grad_output * self.mask

# Example usage in neural network
class SimpleNN:
    def __init__(self, input_dim, hidden_dim, output_dim, dropout_p=0.5):
        self.W1 = np.random.randn(input_dim, hidden_dim) * 0.01
        self.b1 = np.zeros(hidden_dim)
        self.W2 = np.random.randn(hidden_dim, output_dim) * 0.01
        self.b2 = np.zeros(output_dim)
        self.dropout = DropoutLayer(dropout_p)

    def forward(self, X, training=True):
        self.z1 = X.dot(self.W1) + self.b1
        self.a1 = np.maximum(0, self.z1)  # ReLU
        self.a1 = self.dropout.forward(self.a1, training)
        self.z2 = self.a1.dot(self.W2) + self.b2
        return self.z2

    def backward(self, X, y, y_pred, learning_rate=0.01):
        m = X.shape[0]

        # Output layer gradient
        dL_dy = y_pred - y  # MSE gradient
        dy_dz2 = np.ones_like(y_pred)
        dL_dz2 = dL_dy * dy_dz2

        # Backpropagate
        dL_dW2 = self.a1.T.dot(dL_dz2) / m
        dL_db2 = np.sum(dL_dz2, axis=0) / m

        dL_da1 = dL_dz2.dot(self.W2.T)
        dL_da1 = self.dropout.backward(dL_da1)

        da1_dz1 = (self.z1 > 0).astype(float)  # ReLU gradient
        dL_dz1 = dL_da1 * da1_dz1

        dL_dW1 = X.T.dot(dL_dz1) / m
        dL_db1 = np.sum(dL_dz1, axis=0) / m

        # Update parameters
        self.W1 -= learning_rate * dL_dW1
        self.b1 -= learning_rate * dL_db1
        self.W2 -= learning_rate * dL_dW2
        self.b2 -= learning_rate * dL_db2

# ============================================================================================
# END seed document code
# ============================================================================================

# The gradient formulas of the seed's text, transcribed (y = y_true, ŷ = y_pred).


def text_mse_gradient(y_true, y_pred):
    """Seed text: ∇MSE = 2/n (y - ŷ)."""
    return 2 / y_true.size * (y_true - y_pred)


def text_mae_subgradient(y_true, y_pred):
    """Seed text: ∇MAE = sign(y - ŷ)."""
    return np.sign(y_true - y_pred)


def text_bce_gradient(y_true, y_pred):
    """Seed text: ∇BCE = (ŷ - y) / (ŷ (1 - ŷ))."""
    return (y_pred - y_true) / (y_pred * (1 - y_pred))


# The training loops' gradient: this is the line of gradient_descent's (and newton_method's)
# loop body, verbatim; `tests/test_gradcheck.py` checks that one epoch of the verbatim
# gradient_descent moves w by exactly learning_rate times this.
def loop_gradient(grad_func: Callable[..., Any]) -> Callable[..., Any]:
    def gradient_of_w(w, X, y):
        y_pred = X.dot(w)
        return X.T.dot(grad_func(y, y_pred)) / len(y)

    return gradient_of_w


def linear_model_loss(loss_func: Callable[..., Any]) -> Callable[..., Any]:
    """``w -> loss_func(y, X.dot(w))``: the objective the training loops minimise."""

    def loss_of_w(w, X, y):
        return loss_func(y, X.dot(w))

    return loss_of_w


def _network(params: dict[str, np.ndarray]) -> SimpleNN:
    """A seed SimpleNN (no dropout: p = 0) carrying ``params``; the global RNG is untouched."""
    state = np.random.get_state()
    try:
        hidden = params["W1"].shape[1]
        net = SimpleNN(params["W1"].shape[0], hidden, params["W2"].shape[1], dropout_p=0.0)
    finally:
        np.random.set_state(state)
    for name, value in params.items():
        setattr(net, name, np.array(value, dtype=np.float64))
    return net


def network_loss(params, X, y):
    """The seed network's mean squared error (its backward pass calls dL_dy the MSE gradient)."""
    return mean_squared_error(y, _network(params).forward(X, training=False))


def network_backward_gradient(params, X, y):
    """The gradient SimpleNN.backward applies: parameters before minus after one step of 1."""
    net = _network(params)
    state = np.random.get_state()
    try:
        y_pred = net.forward(X, training=True)  # dropout p = 0: a mask of ones
        net.backward(X, y, y_pred, learning_rate=1.0)
    finally:
        np.random.set_state(state)
    return {name: np.asarray(params[name]) - getattr(net, name) for name in params}


# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Row:
    """One checked gradient: what, of which function, where, and the checker's verdict."""

    name: str
    source: str
    of: str
    wrt: str
    point: str
    ok: bool
    kind: str | None
    diagnosis: str | None
    reference: str


def _points() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    n = 8
    y_reg = rng.normal(size=n)
    p_reg = y_reg + rng.choice([-1.0, 1.0], size=n) * rng.uniform(0.2, 1.5, size=n)
    X = rng.normal(size=(100, 5))
    y_lin = X.dot(np.array([1.5, -2.0, 0.5, 3.0, -1.0])) + 0.5 * rng.normal(size=100)
    X_nn = rng.normal(size=(16, 3))
    return {
        # The seed's own example inputs.
        "mse_example": (np.array([3, -0.5, 2, 7]), np.array([2.5, 0.0, 2, 8])),
        "bce_example": (np.array([1, 0, 1, 1]), np.array([0.9, 0.1, 0.8, 0.4])),
        "cce_example": (
            np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]]),
            np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.3, 0.5]]),
        ),
        # Random points (seeded), n = 8, residuals away from 0.
        "regression": (y_reg, p_reg),
        "binary": (rng.integers(0, 2, size=n).astype(float), rng.uniform(0.05, 0.95, size=n)),
        "linear": (rng.normal(size=5), X, y_lin),
        "network": (
            {
                "W1": rng.normal(size=(3, 4)),
                "b1": rng.normal(scale=0.5, size=4),
                "W2": rng.normal(size=(4, 1)),
                "b2": rng.normal(size=1),
            },
            X_nn,
            rng.normal(size=(16, 1)),
        ),
    }


def _cases() -> Iterator[tuple[str, str, str, str, str, Callable[[], Any]]]:
    pts = _points()
    example = "seed example"
    yield ("mse_gradient", "seed code", "mean_squared_error", "y_pred", example,
           lambda: check_gradient(mean_squared_error, mse_gradient, *pts["mse_example"], argnum=1))
    yield ("bce_gradient", "seed code", "binary_cross_entropy", "y_pred", example,
           lambda: check_gradient(binary_cross_entropy, bce_gradient, *pts["bce_example"],
                                  argnum=1))
    yield ("cce_gradient", "seed code", "categorical_cross_entropy", "y_pred", example,
           lambda: check_gradient(categorical_cross_entropy, cce_gradient, *pts["cce_example"],
                                  argnum=1))
    yield ("mae_subgradient", "seed code", "mean |y - yp| (seed lambda)", "y_pred",
           "random, n = 8",
           lambda: check_gradient(mae_loss, mae_subgradient, *pts["regression"], argnum=1))
    yield ("mae_subgradient", "seed code", "mean |y - yp| (seed lambda)", "y_pred",
           "MSE example (y = ŷ at [2])",
           lambda: check_gradient(mae_loss, mae_subgradient, *pts["mse_example"], argnum=1))
    yield ("gradient_descent: X.T.dot(mse_gradient(y, X.dot(w))) / len(y)", "seed code",
           "mean_squared_error(y, X.dot(w))", "w", "random, n = 100",
           lambda: check_gradient(linear_model_loss(mean_squared_error),
                                  loop_gradient(mse_gradient), *pts["linear"]))
    yield ("gradient_descent: X.T.dot(mae_subgradient(y, X.dot(w))) / len(y)", "seed code",
           "mean |y - X.dot(w)|", "w", "random, n = 100",
           lambda: check_gradient(linear_model_loss(mae_loss), loop_gradient(mae_subgradient),
                                  *pts["linear"]))
    yield ("mse_hessian (Newton)", "seed code", "mean_squared_error(y, X.dot(w))", "w",
           "random, n = 100",
           lambda: check_hessian(linear_model_loss(mean_squared_error),
                                 lambda w, X, y: mse_hessian(X, y, X.dot(w)), *pts["linear"]))
    yield ("SimpleNN.backward (dL_dy = y_pred - y)", "seed code",
           "mean_squared_error(y, net(X))", "W1, b1, W2, b2", "random, m = 16",
           lambda: check_gradient(network_loss, network_backward_gradient, *pts["network"]))
    yield ("∇MSE = 2/n (y - ŷ)", "seed text", "mean_squared_error", "y_pred", "random, n = 8",
           lambda: check_gradient(mean_squared_error, text_mse_gradient, *pts["regression"],
                                  argnum=1))
    yield ("∇MAE = sign(y - ŷ)", "seed text", "mean |y - ŷ|", "y_pred", "random, n = 8",
           lambda: check_gradient(mae_loss, text_mae_subgradient, *pts["regression"], argnum=1))
    yield ("∇BCE = (ŷ - y) / (ŷ (1 - ŷ))", "seed text", "binary_cross_entropy", "y_pred",
           "random, n = 8",
           lambda: check_gradient(binary_cross_entropy, text_bce_gradient, *pts["binary"],
                                  argnum=1))


def verify() -> list[Row]:
    """Run every check; one :class:`Row` per hand-derived gradient (and the seed's Hessian)."""
    rows = []
    for name, source, of, wrt, point, run in _cases():
        report = run()
        rows.append(Row(name, source, of, wrt, point, report.ok, report.kind, report.diagnosis,
                        report.reference))
    return rows


def print_table(rows: list[Row]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Hand-derived gradients of the seed document (w.r.t. y_pred / the "
                  "parameters, of the mean loss)", show_lines=True)
    for column, width in (("hand-derived", 26), ("source", 9), ("gradient of", 20),
                          ("w.r.t.", 8), ("point", 14), ("verdict", 9), ("diagnosis", 60)):
        table.add_column(column, overflow="fold", max_width=width,
                         ratio=4 if column == "diagnosis" else None)
    for row in rows:
        verdict = "[green]correct[/green]" if row.ok else "[red]wrong[/red]"
        if row.kind == "nonsmooth":
            verdict = "[yellow]nonsmooth point[/yellow]"
        table.add_row(row.name, row.source, row.of, row.wrt, row.point, verdict,
                      row.diagnosis or "")
    Console(width=170).print(table)


def main() -> None:
    print_table(verify())


if __name__ == "__main__":
    main()
