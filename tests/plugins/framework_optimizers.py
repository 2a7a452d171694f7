"""Registered torch.optim and optax optimizers for the adapter tests (and the README).

Importable as ``framework_optimizers`` when ``tests/plugins`` is on sys.path, so
``dynverify check framework_optimizers:torch_sgd`` and ``dynverify replay`` work.
Each factory takes exactly the hyperparameters its strategy draws.
"""

from __future__ import annotations

import torch
from hypothesis import strategies as st

from dynverify.adapters import optax_optimizer, torch_optimizer
from dynverify.optimizers import usam_filter
from dynverify.regions import interval_filter
from dynverify.registry import register_optimizer


def _floats(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False, allow_subnormal=False)


LR_MOM = st.fixed_dictionaries({"lr": _floats(0.01, 1.0), "momentum": _floats(0.05, 0.9)})
SGD_DAMPENING = st.fixed_dictionaries({"lr": _floats(0.01, 1.0), "momentum": _floats(0.0, 0.9),
                                       "dampening": _floats(0.0, 0.8)})


@register_optimizer(hyperparameters=st.fixed_dictionaries({"lr": _floats(0.01, 1.0)}))
def torch_sgd(lr: float):  # type: ignore[no-untyped-def]
    return torch_optimizer(torch.optim.SGD, lr=lr)


@register_optimizer(hyperparameters=SGD_DAMPENING)
def torch_sgd_momentum(lr: float, momentum: float, dampening: float
                       ):  # type: ignore[no-untyped-def]
    return torch_optimizer(torch.optim.SGD, lr=lr, momentum=momentum, dampening=dampening)


def torch_sgd_weight_decay(lr: float, momentum: float, weight_decay: float
                           ):  # type: ignore[no-untyped-def]
    """Fixed points: critical points of f + wd‖x‖²/2, so planted points must sit at 0."""
    return torch_optimizer(torch.optim.SGD, lr=lr, momentum=momentum,
                           weight_decay=weight_decay)


@register_optimizer(hyperparameters=LR_MOM)
def torch_nesterov(lr: float, momentum: float):  # type: ignore[no-untyped-def]
    return torch_optimizer(torch.optim.SGD, lr=lr, momentum=momentum, nesterov=True)


class SignErrorSGD(torch.optim.Optimizer):
    """Heavy ball with a sign error in the momentum: buf = g − μ·buf (it should be g + μ·buf)."""

    def __init__(self, params, lr: float, momentum: float) -> None:  # type: ignore[no-untyped-def]
        super().__init__(params, {"lr": lr, "momentum": momentum})

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[no-untyped-def]
        for group in self.param_groups:
            for p in group["params"]:
                buf = self.state[p].get("momentum_buffer")
                if buf is None:
                    buf = self.state[p]["momentum_buffer"] = torch.zeros_like(p)
                buf.mul_(-group["momentum"]).add_(p.grad)  # the bug: −μ instead of +μ
                p.sub_(buf, alpha=group["lr"])


def _heavy_ball_filter(lr: float, momentum: float):  # type: ignore[no-untyped-def]
    return interval_filter(0.0, 2.0 * (1.0 + momentum) / lr)


@register_optimizer(hyperparameters=st.fixed_dictionaries(
    {"lr": _floats(0.05, 1.0), "momentum": _floats(0.3, 0.9)}), region=_heavy_ball_filter)
def torch_sign_error(lr: float, momentum: float):  # type: ignore[no-untyped-def]
    """Declares torch SGD's (heavy ball's) filter, which its step does not have."""
    return torch_optimizer(SignErrorSGD, lr=lr, momentum=momentum)


class USAM(torch.optim.Optimizer):
    """Unnormalized SAM as the SAM literature writes it in torch: an ascent step
    p ← p + ρ·∇f(p) (the gradient of the preceding backward), a second forward/backward
    at the ascent point (the closure), then the descent step from the original point."""

    def __init__(self, params, lr: float, rho: float) -> None:  # type: ignore[no-untyped-def]
        super().__init__(params, {"lr": lr, "rho": rho})

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[no-untyped-def]
        if closure is None:
            raise RuntimeError("USAM needs a closure (a second forward/backward)")
        for group in self.param_groups:
            for p in group["params"]:
                self.state[p]["old_p"] = p.clone()
                p.add_(p.grad, alpha=group["rho"])  # ascent
        with torch.enable_grad():
            closure()  # gradient at the ascent point
        for group in self.param_groups:
            for p in group["params"]:
                p.copy_(self.state[p]["old_p"])
                p.sub_(p.grad, alpha=group["lr"])  # descent from the original point


@register_optimizer(hyperparameters=st.fixed_dictionaries(
    {"lr": _floats(0.01, 1.0), "rho": st.one_of(st.just(0.0), _floats(0.01, 1.0))}),
    region=lambda lr, rho: usam_filter(lr, rho))
def torch_usam(lr: float, rho: float):  # type: ignore[no-untyped-def]
    """Verified against the built-in usam's filter (declared), not a derived one."""
    return torch_optimizer(USAM, lr=lr, rho=rho)


@register_optimizer(hyperparameters=st.fixed_dictionaries(
    {"learning_rate": _floats(0.01, 1.0), "momentum": _floats(0.0, 0.9),
     "nesterov": st.booleans()}))
def optax_sgd(learning_rate: float, momentum: float, nesterov: bool
              ):  # type: ignore[no-untyped-def]
    import optax

    return optax_optimizer(optax.sgd, learning_rate=learning_rate, momentum=momentum,
                           nesterov=nesterov)


@register_optimizer(hyperparameters=st.fixed_dictionaries(
    {"learning_rate": _floats(0.01, 1.0), "b1": _floats(0.0, 0.9), "b2": _floats(0.0, 0.9),
     "eps_root": _floats(1e-8, 1e-2)}), rotation_invariant=False)
def optax_adam(learning_rate: float, b1: float, b2: float, eps_root: float
               ):  # type: ignore[no-untyped-def]
    """ε inside the root (eps_root > 0): C¹. b2 < 0.9 so that the second-moment mode
    (rate b2) lets the stable claims apply."""
    import optax

    return optax_optimizer(optax.adam, learning_rate=learning_rate, b1=b1, b2=b2,
                           eps_root=eps_root)
