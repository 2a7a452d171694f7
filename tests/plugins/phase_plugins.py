"""Plug-ins for the executor tests: an optimizer whose first build on a Dask worker kills it.

``DYNVERIFY_TEST_DIE_ONCE=<marker path>``: the first ``dying_gd`` built inside a Dask
worker creates the marker and ends that worker process abruptly (as an out-of-memory
kill would); every later build, and every build outside a Dask worker, is plain GD.
"""

from __future__ import annotations

import os

from hypothesis import strategies as st

from dynverify import Optimizer
from dynverify.optimizers import gradient_descent
from dynverify.registry import register_optimizer


def _in_dask_worker() -> bool:
    try:
        from distributed import get_worker

        get_worker()
    except (ImportError, ValueError):
        return False
    return True


@register_optimizer(name="dying_gd", hyperparameters=st.fixed_dictionaries(
    {"lr": st.floats(0.05, 1.0)}), scaling={"lr": -1.0})
def dying_gd(lr: float) -> Optimizer:
    """Gradient descent (its first build on a Dask worker kills that worker)."""
    marker = os.environ.get("DYNVERIFY_TEST_DIE_ONCE")
    if marker and _in_dask_worker():
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            pass
        else:
            os.close(fd)
            os._exit(1)
    opt = gradient_descent(lr)
    return Optimizer(name="dying_gd", hyperparameters=opt.hyperparameters, init=opt.init,
                     step=opt.step, region=opt.region)
