"""Adversarial training: the loss interface, the R1 penalty, the two step functions and the parts.

A GAN recipe trains with the same loop as any other; only the step differs (:meth:`GanParts.update`):
``discriminator_step`` updates D on real targets and *detached* generator outputs, then
``generator_step`` updates G on the recipe's pixel/content loss plus the weighted adversarial term,
with D frozen.

A discriminator may give one logit per image, (N, 1), or one per pixel, (N, 1, H, W) (``unet_discriminator_sn``,
Real-ESRGAN); the steps take its logits in float32 and the losses average over every logit, which for
per-pixel logits is the mean over images and pixels, as Real-ESRGAN's losses do. Each loss term in the
recipe's ``loss:`` list sees the plain target or the sharpened one (its ``target`` key,
:class:`~sr_toolkit.training.losses.WeightedLoss`); the discriminator always sees the plain target, as
Real-ESRGAN's ``gan_gt_usm: false`` does.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from sr_toolkit.core.registry import LOSSES, MODELS
from sr_toolkit.training.losses import WeightedLoss
from sr_toolkit.training.nonfinite import GRADIENTS
from sr_toolkit.training.optimizers import build_optimizer
from sr_toolkit.training.updates import Updates


class AdversarialLoss(nn.Module):
    """Base of adversarial losses: both directions from D's logits on real and fake images, float32
    tensors of one shape, (N, 1) or per pixel (N, 1, H, W); each direction returns a scalar."""

    def discriminator_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def generator_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise TypeError(
            f"{type(self).__name__} is an adversarial loss: set it as gan.adversarial, not in the loss list"
        )


def r1_penalty(discriminator: nn.Module, real: torch.Tensor) -> torch.Tensor:
    """R1 gradient penalty (Mescheder et al. 2018): mean over images of |grad_x D(x)|^2 on reals.

    With per-pixel logits, D(x) is the image's mean logit (what the losses average), so the penalty does
    not grow with the patch size; with one logit per image it is that logit."""
    real = real.detach().requires_grad_(True)
    scores = discriminator(real).float().flatten(1).mean(1)
    (gradient,) = torch.autograd.grad(scores.sum(), real, create_graph=True)
    return gradient.pow(2).flatten(1).sum(1).mean()


@dataclass
class DiscriminatorResult:
    """What one discriminator update logs."""

    loss: torch.Tensor
    real_mean: torch.Tensor
    fake_mean: torch.Tensor


def discriminator_step(
    generator: nn.Module,
    discriminator: nn.Module,
    adversarial: AdversarialLoss,
    inputs: torch.Tensor,
    target: torch.Tensor,
    r1_weight: float,
) -> tuple[torch.Tensor, DiscriminatorResult]:
    """D's loss on a batch; the fakes are made without a graph to G, so G gets no gradient."""
    with torch.no_grad():
        fake = generator(inputs).float()
    real_logits = discriminator(target).float()
    fake_logits = discriminator(fake).float()
    loss = adversarial.discriminator_loss(real_logits, fake_logits)
    if r1_weight:
        loss = loss + 0.5 * r1_weight * r1_penalty(discriminator, target)
    result = DiscriminatorResult(loss.detach(), real_logits.detach().mean(), fake_logits.detach().mean())
    return loss, result


def generator_step(
    generator: nn.Module,
    discriminator: nn.Module | None,
    criterion: WeightedLoss,
    adversarial: AdversarialLoss | None,
    weight: float,
    inputs: torch.Tensor,
    target: torch.Tensor,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """G's loss: the recipe's loss terms (on the plain or sharpened ``target``, as each term's ``target``
    key says), plus ``weight`` times the adversarial term, from D's logits on the plain ``target`` and
    the output, when D is given (during warm-up it is None). D's parameters must be frozen by the caller."""
    output = generator(inputs).float()
    loss, parts = criterion(output, target)
    if discriminator is not None and adversarial is not None:
        real_logits = discriminator(target).detach().float()
        adversarial_term = adversarial.generator_loss(real_logits, discriminator(output).float())
        loss = loss + weight * adversarial_term
        parts = {**parts, "adversarial": adversarial_term.detach().float()}
    return loss, parts


@dataclass
class GanParts:
    """The discriminator side of a GAN recipe, and its ``gan:`` section (``settings``)."""

    discriminator: nn.Module
    adversarial: AdversarialLoss
    optimizer: torch.optim.Optimizer
    settings: dict[str, Any]

    @classmethod
    def build(cls, recipe: dict[str, Any], device: torch.device) -> GanParts:
        """The parts ``recipe["gan"]`` names (the recipe's rules, :mod:`sr_toolkit.config.rules`, checked on
        loading that ``gan.adversarial`` is an adversarial loss)."""
        cfg = recipe["gan"]
        discriminator = MODELS.build(cfg["discriminator"], where="gan.discriminator")
        adversarial = LOSSES.build(cfg["adversarial"], where="gan.adversarial")
        return cls(discriminator, adversarial.to(device), build_optimizer(cfg["optimizer"], discriminator), cfg)

    def update(
        self,
        step: int,
        pairs: Iterator[tuple[torch.Tensor, torch.Tensor]],
        generator: nn.Module,
        criterion: WeightedLoss,
        optimizer: torch.optim.Optimizer,
        updates: Updates,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One GAN step after ``step`` steps: a discriminator update on each (inputs, target) of ``pairs``
        (``d_steps`` of them; none during warm-up), then one generator update on the last. Returns the
        generator's loss and the logged parts: its terms, D's loss and its mean logits on real and fake."""
        cfg = self.settings
        adversarial_on = step >= cfg["warmup_steps"]
        d_parts: dict[str, torch.Tensor] = {}
        for inputs, target in pairs:
            if not adversarial_on:
                continue
            with updates.accelerator.autocast():  # also covers the content loss's VGG, not only the networks
                d_loss, result = discriminator_step(
                    generator, self.discriminator, self.adversarial, inputs, target, cfg["r1_weight"]
                )
            updates.backward(d_loss, {"d_loss": result.loss})
            updates.apply(self.optimizer, self.discriminator, "d_gradients", clip=False)
            d_parts = {"d_loss": result.loss, "d_real": result.real_mean, "d_fake": result.fake_mean}
        self.discriminator.requires_grad_(False)
        with updates.accelerator.autocast():
            loss, parts = generator_step(
                generator,
                self.discriminator if adversarial_on else None,
                criterion,
                self.adversarial,
                cfg["weight"],
                inputs,
                target,
            )
        updates.backward(loss, parts)
        self.discriminator.requires_grad_(True)
        updates.apply(optimizer, generator, GRADIENTS, clip=True)
        return loss.detach(), {**parts, **d_parts}
