"""The paper's experiment: sharpness at the end of full-batch training of small networks.

Modules: :mod:`~.mlp` (networks, losses, backprop and Hessian-vector products),
:mod:`~.data` (digits, teacher-student), :mod:`~.train` (training with any optimizer),
:mod:`~.sharpness` (extreme Hessian eigenvalues by Lanczos), :mod:`~.verdict` and
:mod:`~.sweep` (judged runs and sweeps), :mod:`~.cli` (``dynverify experiment``).
"""

from dynverify.experiments.data import Dataset, DataSpec, load
from dynverify.experiments.mlp import MLP, TrainingLoss
from dynverify.experiments.sharpness import Extremes, extreme_eigenvalues, hessian
from dynverify.experiments.sweep import RunConfig, grid, run_one, sweep
from dynverify.experiments.train import TrainResult, TrainStatus, train
from dynverify.experiments.verdict import Outcome, Verdict

__all__ = ["DataSpec", "Dataset", "Extremes", "MLP", "Outcome", "RunConfig", "TrainResult",
           "TrainStatus", "TrainingLoss", "Verdict", "extreme_eigenvalues", "grid", "hessian",
           "load", "run_one", "sweep", "train"]
