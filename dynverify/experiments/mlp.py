"""Small multilayer perceptrons with hand-written backpropagation and Hessian-vector products.

A network with layer sizes n₀, …, n_L maps a batch A₀ (N, n₀) through
zₗ = Aₗ₋₁Wₗ + bₗ, Aₗ = σ(zₗ) (l < L), output z_L. Its parameters θ = (W₁, b₁, …, W_L, b_L)
are one flat vector, so that the training loss θ ↦ ℓ(θ) is an ordinary test function
(value / grad / hvp on (B, d) arrays) that any :class:`dynverify.Optimizer` can iterate.

Gradients are reverse-mode (backpropagation); Hessian-vector products are Pearlmutter's
R-operator: one forward pass of directional derivatives R{·} = d/dt(·)(θ + t v) at t = 0
followed by one backward pass, exact (no finite differences). Both agree with autograd to
rounding (tests/test_experiments.py) and cost about a quarter of autograd's time.

Smooth activations (``tanh``, ``softplus``) make ℓ C^∞, as the theorem needs (C³ for the
optimizers that evaluate ∇²f inside their map). ``relu`` is offered but makes ℓ only
piecewise smooth: runs with it are outside the theorem's hypotheses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from dynverify.functions import TestFunction

#: activation name -> is the resulting loss C² (inside the theorem's hypotheses)?
ACTIVATIONS = {"tanh": True, "softplus": True, "relu": False}
LOSSES = ("mse", "cross_entropy")


def _act(name: str, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """σ(z), σ'(z), σ''(z)."""
    if name == "tanh":
        a = np.tanh(z)
        d1 = 1.0 - a * a
        return a, d1, -2.0 * a * d1
    if name == "softplus":
        a = np.logaddexp(0.0, z)
        s = 0.5 * (1.0 + np.tanh(0.5 * z))  # the logistic function, without overflow
        return a, s, s * (1.0 - s)
    if name == "relu":
        pos = z > 0
        return np.where(pos, z, 0.0), pos.astype(float), np.zeros_like(z)
    raise ValueError(f"unknown activation {name!r}; known: {', '.join(ACTIVATIONS)}")


@dataclass(frozen=True)
class MLP:
    """Architecture of a fully connected network.

    Args:
        sizes: layer widths (n₀, …, n_L), input first, output last; at least two.
        activation: ``"tanh"``, ``"softplus"`` or ``"relu"`` (hidden layers only).

    Example:
        >>> net = MLP((3, 4, 2))
        >>> net.num_params
        26
    """

    sizes: tuple[int, ...]
    activation: str = "tanh"

    def __post_init__(self) -> None:
        sizes = tuple(self.sizes)
        if len(sizes) < 2 or any(isinstance(n, bool) or not isinstance(n, (int, np.integer))
                                 or n < 1 for n in sizes):
            raise ValueError(f"MLP sizes must be at least two positive integers, got {sizes!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; "
                             f"known: {', '.join(ACTIVATIONS)}")
        object.__setattr__(self, "sizes", tuple(int(n) for n in sizes))

    @property
    def smooth(self) -> bool:
        """True when the activation is C^∞ (the loss is then inside the hypotheses)."""
        return ACTIVATIONS[self.activation]

    @property
    def shapes(self) -> list[tuple[tuple[int, int], tuple[int]]]:
        return [((m, n), (n,)) for m, n in zip(self.sizes, self.sizes[1:])]

    @property
    def num_params(self) -> int:
        return sum(m * n + n for m, n in zip(self.sizes, self.sizes[1:]))

    def unflatten(self, theta: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """[(W₁, b₁), …] as views into the flat vector θ."""
        out, k = [], 0
        for (m, n), _ in self.shapes:
            W = theta[k:k + m * n].reshape(m, n)
            k += m * n
            out.append((W, theta[k:k + n]))
            k += n
        return out

    def init_params(self, rng: np.random.Generator, scale: float = 1.0) -> np.ndarray:
        """LeCun-normal weights (std scale/√fan-in), zero biases, as a flat vector."""
        parts = []
        for (m, n), _ in self.shapes:
            parts += [rng.normal(0.0, scale / np.sqrt(m), size=m * n), np.zeros(n)]
        return np.concatenate(parts)

    def forward(self, theta: np.ndarray, A: np.ndarray) -> np.ndarray:
        """The network's output z_L for inputs A (N, n₀)."""
        layers = self.unflatten(theta)
        for W, b in layers[:-1]:
            A = _act(self.activation, A @ W + b)[0]
        W, b = layers[-1]
        return A @ W + b


class TrainingLoss(TestFunction):
    """The full-batch training loss of an MLP as a batched test function of θ ∈ ℝᵈ.

    MSE: ℓ(θ) = 1/(2N) Σᵢ ‖z_L(xᵢ) − yᵢ‖²; cross-entropy: ℓ(θ) = −1/N Σᵢ log softmax(z_L(xᵢ))_{yᵢ},
    plus ``weight_decay``/2 · ‖θ‖² when given. Rows of a (B, d) batch are independent
    parameter vectors.

    Args:
        model: the architecture.
        X: inputs (N, n₀).
        Y: targets, (N, n_L) for MSE, integer labels (N,) for cross-entropy.
        loss: ``"mse"`` or ``"cross_entropy"``.
        weight_decay: λ_wd ≥ 0.
        spec_data: JSON description of the data, returned by :meth:`spec` (the arrays
            themselves are never written into records; they are rebuilt from it).
    """

    def __init__(self, model: MLP, X: Any, Y: Any, loss: str = "mse",
                 weight_decay: float = 0.0, spec_data: dict[str, Any] | None = None) -> None:
        if loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}; known: {', '.join(LOSSES)}")
        X = np.asarray(X, dtype=float)
        if X.ndim != 2 or X.shape[1] != model.sizes[0]:
            raise ValueError(f"inputs must have shape (N, {model.sizes[0]}), got {X.shape}")
        k = model.sizes[-1]
        if loss == "mse":
            Y = np.asarray(Y, dtype=float)
            if Y.ndim == 1 and k == 1:
                Y = Y[:, None]
            if Y.shape != (X.shape[0], k):
                raise ValueError(f"MSE targets must have shape ({X.shape[0]}, {k}), got {Y.shape}")
        else:
            Y = np.asarray(Y)
            if Y.shape != (X.shape[0],) or not np.issubdtype(Y.dtype, np.integer) \
                    or Y.min(initial=0) < 0 or Y.max(initial=0) >= k:
                raise ValueError(f"cross-entropy targets must be {X.shape[0]} integer labels "
                                 f"in [0, {k}), got shape {Y.shape}, dtype {Y.dtype}")
            Y = Y.astype(np.intp)
        if not np.all(np.isfinite(X)) or (loss == "mse" and not np.all(np.isfinite(Y))):
            raise ValueError("inputs and targets must be finite")
        if not weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
        self.model, self.X, self.Y, self.loss = model, X, Y, loss
        self.weight_decay = float(weight_decay)
        self.dim = model.num_params
        self.n = X.shape[0]
        self._spec_data = spec_data

    def __repr__(self) -> str:
        return (f"TrainingLoss(sizes={self.model.sizes}, activation={self.model.activation!r}, "
                f"loss={self.loss!r}, n={self.n}, d={self.dim})")

    def spec(self) -> dict[str, Any]:
        return {"kind": "mlp_training_loss", "sizes": list(self.model.sizes),
                "activation": self.model.activation, "loss": self.loss,
                "weight_decay": self.weight_decay, "data": self._spec_data}

    # -- single parameter vector ------------------------------------------------------
    def _forward(self, theta: np.ndarray) -> tuple[list[Any], list[np.ndarray], np.ndarray]:
        """Layers, activations A₀…A_{L−1}, (σ', σ'') of hidden layers, and output."""
        layers = self.model.unflatten(theta)
        acts, derivs = [self.X], []
        A = self.X
        for W, b in layers[:-1]:
            A, d1, d2 = _act(self.model.activation, A @ W + b)
            acts.append(A)
            derivs.append((d1, d2))
        W, b = layers[-1]
        return layers, acts, derivs, A @ W + b  # type: ignore[return-value]

    def _loss_head(self, out: np.ndarray) -> tuple[float, np.ndarray, np.ndarray | None]:
        """ℓ, δ_L = ∂ℓ/∂z_L and (cross-entropy) the softmax probabilities."""
        if self.loss == "mse":
            r = out - self.Y
            return 0.5 * float(np.sum(r * r)) / self.n, r / self.n, None
        z = out - out.max(axis=1, keepdims=True)
        logsum = np.log(np.sum(np.exp(z), axis=1))
        P = np.exp(z - logsum[:, None])
        val = float(np.mean(logsum - z[np.arange(self.n), self.Y]))
        D = P.copy()
        D[np.arange(self.n), self.Y] -= 1.0
        return val, D / self.n, P

    def _value1(self, theta: np.ndarray) -> float:
        val = self._loss_head(self.model.forward(theta, self.X))[0]
        return val + 0.5 * self.weight_decay * float(theta @ theta)

    def _grad1(self, theta: np.ndarray) -> np.ndarray:
        layers, acts, derivs, out = self._forward(theta)
        delta = self._loss_head(out)[1]
        grads = []
        for l in range(len(layers) - 1, -1, -1):
            W = layers[l][0]
            grads.append(delta.sum(axis=0))
            grads.append((acts[l].T @ delta).ravel())
            if l:
                delta = (delta @ W.T) * derivs[l - 1][0]
        g = np.concatenate(grads[::-1])
        return g + self.weight_decay * theta if self.weight_decay else g

    def _hvp1(self, theta: np.ndarray, v: np.ndarray) -> np.ndarray:
        """∇²ℓ(θ)v by the R-operator: forward R{zₗ}, then backward R{δₗ}."""
        layers, acts, derivs, out = self._forward(theta)
        vlayers = self.model.unflatten(v)
        # forward: R{A₀} = 0, R{zₗ} = R{Aₗ₋₁}Wₗ + Aₗ₋₁Vₗ + cₗ, R{Aₗ} = σ'(zₗ) R{zₗ}
        Rz, RA = [], np.zeros_like(self.X)
        for l, ((W, _), (V, c)) in enumerate(zip(layers, vlayers)):
            rz = RA @ W + acts[l] @ V + c
            Rz.append(rz)
            if l < len(layers) - 1:
                RA = derivs[l][0] * rz
        _, delta, P = self._loss_head(out)
        if P is None:
            Rdelta = Rz[-1] / self.n
        else:  # R{softmax} = P ⊙ (R{z} − ⟨P, R{z}⟩)
            Rdelta = P * (Rz[-1] - np.sum(P * Rz[-1], axis=1, keepdims=True)) / self.n
        RAs = [np.zeros_like(self.X)] + [derivs[l][0] * Rz[l] for l in range(len(layers) - 1)]
        out_parts = []
        for l in range(len(layers) - 1, -1, -1):
            W, V = layers[l][0], vlayers[l][0]
            out_parts.append(Rdelta.sum(axis=0))
            out_parts.append((RAs[l].T @ delta + acts[l].T @ Rdelta).ravel())
            if l:
                d1, d2 = derivs[l - 1]
                back = delta @ W.T
                Rdelta = (Rdelta @ W.T + delta @ V.T) * d1 + back * d2 * Rz[l - 1]
                delta = back * d1
        h = np.concatenate(out_parts[::-1])
        return h + self.weight_decay * v if self.weight_decay else h

    # -- batched oracle (rows are independent parameter vectors) ------------------------
    def value(self, X: np.ndarray) -> np.ndarray:
        return np.array([self._value1(t) for t in np.asarray(X, dtype=float)])

    def grad(self, X: np.ndarray) -> np.ndarray:
        return np.stack([self._grad1(t) for t in np.asarray(X, dtype=float)])

    def hvp(self, X: np.ndarray, V: np.ndarray) -> np.ndarray:
        return np.stack([self._hvp1(t, v) for t, v in
                         zip(np.asarray(X, dtype=float), np.asarray(V, dtype=float))])
