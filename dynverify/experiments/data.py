"""Training data for the experiments: scikit-learn's bundled digits, and a teacher network.

Nothing is downloaded: ``load_digits`` ships inside the scikit-learn wheel (1797 images of
8×8 pixels, 10 classes), and the teacher-student data are generated from a seed.

Every data set is described by a small JSON-safe dict (:class:`DataSpec`), from which
:func:`load` rebuilds exactly the same arrays; records store that dict, never the arrays.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

DATASETS = ("digits", "teacher")


@dataclass(frozen=True)
class DataSpec:
    """Which data, how much of it, and the seed that draws it.

    Args:
        name: ``"digits"`` (sklearn's load_digits, features standardized) or ``"teacher"``
            (Gaussian inputs labelled by a random tanh network, see :func:`teacher`).
        subsample: use this many examples (a seeded random subset for digits; the sample
            size for teacher); None: all 1797 digits, 200 teacher examples.
        seed: seed of the subset / the teacher and its inputs.
        inputs, teacher_hidden, outputs: the teacher's layer sizes (teacher only).
    """

    name: str = "digits"
    subsample: int | None = None
    seed: int = 0
    inputs: int = 4
    teacher_hidden: int = 3
    outputs: int = 1

    def __post_init__(self) -> None:
        if self.name not in DATASETS:
            raise ValueError(f"unknown dataset {self.name!r}; known: {', '.join(DATASETS)}")
        if self.subsample is not None and (isinstance(self.subsample, bool)
                                           or not isinstance(self.subsample, int)
                                           or self.subsample < 2):
            raise ValueError(f"subsample must be an integer >= 2, got {self.subsample!r}")
        for k in ("inputs", "teacher_hidden", "outputs"):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{k} must be a positive integer, got {v!r}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DataSpec:
        if not isinstance(data, dict):
            raise ValueError(f"data spec must be an object, got {data!r:.100}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise ValueError(f"malformed data spec {data!r:.100}: {exc}") from exc


@dataclass(frozen=True)
class Dataset:
    """Inputs X (N, n₀); MSE targets Y (N, k); integer labels (N,) when classes exist."""

    spec: DataSpec
    X: np.ndarray
    Y: np.ndarray
    labels: np.ndarray | None

    @property
    def n_inputs(self) -> int:
        return self.X.shape[1]

    @property
    def n_outputs(self) -> int:
        return self.Y.shape[1]


def digits(subsample: int | None = None, seed: int = 0) -> Dataset:
    """sklearn's 8×8 digits, each pixel standardized (constant pixels stay 0), one-hot Y."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise ImportError("the digits data set needs scikit-learn: "
                          "pip install 'dynverify[experiments]'") from exc

    X, labels = load_digits(return_X_y=True)
    if subsample is not None:
        if subsample > X.shape[0]:
            raise ValueError(f"subsample={subsample} exceeds the {X.shape[0]} digits")
        idx = np.sort(np.random.default_rng(seed).choice(X.shape[0], subsample, replace=False))
        X, labels = X[idx], labels[idx]
    mean, std = X.mean(axis=0), X.std(axis=0)
    X = (X - mean) / np.where(std > 0, std, 1.0)
    Y = np.eye(10)[labels]
    return Dataset(DataSpec("digits", subsample, seed), X, Y, labels.astype(np.intp))


def teacher(subsample: int | None = None, seed: int = 0, inputs: int = 4,
            teacher_hidden: int = 3, outputs: int = 1) -> Dataset:
    """Teacher-student regression: x ~ N(0, I), y = T(x) for a random tanh network T.

    A student with the teacher's architecture (or wider) represents T exactly, so the
    training loss has global minima of value 0, at which ∇²ℓ = JᵀJ/N ⪰ 0.
    """
    from dynverify.experiments.mlp import MLP

    n = 200 if subsample is None else subsample
    rng = np.random.default_rng(seed)
    net = MLP((inputs, teacher_hidden, outputs), "tanh")
    theta = net.init_params(rng, scale=1.5)
    X = rng.normal(size=(n, inputs))
    Y = net.forward(theta, X)
    spec = DataSpec("teacher", subsample, seed, inputs, teacher_hidden, outputs)
    return Dataset(spec, X, Y, None)


def load(spec: DataSpec | dict[str, Any]) -> Dataset:
    """The data set a spec describes (the same arrays every time)."""
    if isinstance(spec, dict):
        spec = DataSpec.from_json(spec)
    if spec.name == "digits":
        return digits(spec.subsample, spec.seed)
    return teacher(spec.subsample, spec.seed, spec.inputs, spec.teacher_hidden, spec.outputs)
