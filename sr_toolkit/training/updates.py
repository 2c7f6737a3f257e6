"""The backward passes and optimizer updates of one training step, watched for NaN and inf.

Both step functions (the plain one in the engine, the GAN one in :mod:`sr_toolkit.training.gan`)
make their updates through :class:`Updates`, so ``train.grad_clip`` and ``train.on_nonfinite``
mean the same for the generator and the discriminator.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from accelerate import Accelerator

from sr_toolkit.training.nonfinite import NonFiniteWatch, gradients_finite


class Updates:
    """Backward passes and optimizer updates within one training step (see :meth:`start`).

    With ``on_nonfinite: skip``, once a watched value of the step (a loss term, a gradient) is NaN
    or inf, no further update of that step is applied and :attr:`skipped` is set.
    """

    def __init__(
        self, accelerator: Accelerator, watch: NonFiniteWatch, on_nonfinite: str, grad_clip: float | None
    ) -> None:
        self.accelerator = accelerator
        self.watch = watch
        self.on_nonfinite = on_nonfinite
        self.grad_clip = grad_clip
        self.step = 0  # the step being made, as the watch records it (counting from 1)
        self.skipped = False

    def start(self, step: int) -> None:
        """Begin step number ``step`` (counting from 1): nothing is skipped yet."""
        self.step = step
        self.skipped = False
        self.watch.start_step()

    def backward(self, loss: torch.Tensor, watched: Mapping[str, torch.Tensor]) -> None:
        """Watch ``watched`` (the loss's named parts), then back-propagate ``loss``."""
        self.watch.observe(watched, self.step)
        self.accelerator.backward(loss)

    def apply(self, optimizer: torch.optim.Optimizer, module: torch.nn.Module, name: str, clip: bool) -> None:
        """Clip ``module``'s gradients to ``train.grad_clip`` when ``clip``; step ``optimizer`` unless the
        update is dropped (gradients watched as ``name``); clear the gradients."""
        if clip and self.grad_clip:
            self.accelerator.clip_grad_norm_(module.parameters(), self.grad_clip)
        if self._finite(module, name):
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def _finite(self, module: torch.nn.Module, name: str) -> bool:
        """Watch ``module``'s gradients as ``name``; whether to apply the update about to be made.

        Under fp16 loss scaling the gradients are not watched: Accelerate's scaler already skips
        updates with inf gradients (they are how it finds its scale). With ``on_nonfinite: skip``
        this waits for the device (one sync per update); with ``stop`` it never does.
        """
        if self.accelerator.scaler is None:
            self.watch.observe({name: gradients_finite(module.parameters())}, self.step)
        if self.on_nonfinite == "skip" and self.watch.current_step_bad():
            self.skipped = True
        return not self.skipped
