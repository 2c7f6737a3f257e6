"""Where a NaN or inf came from: which loss term, discriminator loss or gradients, and at which step.

:class:`NonFiniteWatch` records, on the training device and without a host sync per step, the first
step at which each watched value stopped being finite. The engine asks it only when it logs or
saves (``train.on_nonfinite: stop``) or before each update (``skip``), so the common, finite case
costs a few scalar operations per step.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch

GRADIENTS = "gradients"
"""The name under which the generator's (or plain model's) gradients are watched."""


def describe(name: str) -> str:
    """``name`` as the error message says it: ``loss term 'l1'``, ``the gradients``..."""
    special = {
        GRADIENTS: "the gradients",
        "d_loss": "the discriminator's loss",
        "d_gradients": "the discriminator's gradients",
    }
    return special.get(name, f"loss term '{name}'")


def gradients_finite(parameters: Iterable[torch.nn.Parameter]) -> torch.Tensor:
    """A 0-d bool tensor: whether every gradient of ``parameters`` is finite (one fused norm)."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.ones((), dtype=torch.bool)
    norms = torch._foreach_norm(grads)  # one kernel over all tensors, as clip_grad_norm_ uses
    return torch.isfinite(torch.stack(norms).sum())


class NonFiniteWatch:
    """First non-finite step of each watched value, and whether the current step has one."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.first: dict[str, torch.Tensor] = {}  # name -> first bad step (int64, -1: never)
        self.current = torch.zeros((), dtype=torch.bool, device=device)

    def start_step(self) -> None:
        """Forget the previous step's verdict (the first-bad records are kept)."""
        self.current = torch.zeros((), dtype=torch.bool, device=self.device)

    def observe(self, values: Mapping[str, torch.Tensor], step: int) -> None:
        """Record ``values`` (scalars, or 0-d bool "is finite" flags) seen at ``step``."""
        for name, value in values.items():
            finite = value if value.dtype == torch.bool else torch.isfinite(value).all()
            bad = ~finite.to(self.device)
            first = self.first.setdefault(name, torch.full((), -1, dtype=torch.int64, device=self.device))
            self.first[name] = torch.where(bad & (first < 0), step, first)
            self.current = self.current | bad

    def current_step_bad(self) -> bool:
        """Whether anything watched in this step was non-finite (a host sync)."""
        return bool(self.current.item())

    def culprit(self) -> tuple[str, int] | None:
        """The value that went non-finite first and its step (ties: in watch order), or ``None``."""
        seen = [(int(step.item()), index, name) for index, (name, step) in enumerate(self.first.items())]
        bad = sorted(entry for entry in seen if entry[0] >= 0)
        return (bad[0][2], bad[0][0]) if bad else None

    def reset(self) -> None:
        """Forget everything (after a skipped update, the run goes on clean)."""
        self.first.clear()
        self.start_step()
