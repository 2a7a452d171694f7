"""Framework optimizers (torch.optim, optax) as ordinary dynverify optimizers.

``torch_optimizer(torch.optim.SGD, lr=0.1, momentum=0.9)`` and
``optax_optimizer(optax.sgd, learning_rate=0.1)`` return a :class:`dynverify.Optimizer`
whose lifted state is the position plus the framework's own buffers, so the whole
conformance suite runs on the unmodified framework code. The frameworks are imported
only when an adapter is built (``pip install 'dynverify[torch]'`` / ``'dynverify[jax]'``).

Decisions that apply to both adapters (see each function's docstring for details):

- **Asymptotic form.** Step counters that only feed bias corrections or schedules make
  the framework's map non-autonomous. By default (``form="asymptotic"``) the counter is
  frozen at a value so large that the framework's own increment leaves it unchanged
  (torch: 2⁶⁰, optax: the int32 saturation value): bias corrections are exactly 1 and
  the verified map is the framework's map in its long-run regime. ``form="fresh"``
  reproduces the framework's trajectories from a newly created optimizer bit for bit
  (first-step special cases included) and is reported outside the hypotheses, because a
  map whose counter changes has no fixed point.
- **Filters are derived**, never declared: the adapters set ``region=None``. A map that
  is not C¹ at the fixed point over a critical point (ε outside √v, v = 0 there) is
  detected at construction and reported through ``outside_hypotheses``.
- **Rows are trajectories.** Row-separability is checked at construction, never
  assumed (see :func:`dynverify.adapters.torch.torch_optimizer`).
"""

from __future__ import annotations

from typing import Any

from dynverify.adapters._core import AdapterError, AdapterWarning

__all__ = ["AdapterError", "AdapterWarning", "optax_optimizer", "torch_optimizer"]


def torch_optimizer(cls: Any, /, **kwargs: Any) -> Any:
    """See :func:`dynverify.adapters.torch.torch_optimizer` (imports torch lazily)."""
    from dynverify.adapters.torch import torch_optimizer as impl

    return impl(cls, **kwargs)


def optax_optimizer(factory: Any, /, **kwargs: Any) -> Any:
    """See :func:`dynverify.adapters.optax.optax_optimizer` (imports jax lazily)."""
    from dynverify.adapters.optax import optax_optimizer as impl

    return impl(factory, **kwargs)
