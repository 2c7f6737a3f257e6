"""Adversarial losses for GAN recipes (``gan.adversarial``): vanilla, LSGAN, hinge and RaGAN.

Each takes D's logits on real and fake images, one per image (N, 1) or one per pixel (N, 1, H, W), and
averages over every logit: for per-pixel logits, over images and pixels, as Real-ESRGAN's ``GANLoss``
(BasicSR ``basicsr/losses/gan_loss.py``) does with its U-Net discriminator. Each pixel's logit judges the
patch its receptive field sees, so a per-pixel loss is the per-image loss over many local samples.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sr_toolkit.core.registry import LOSSES
from sr_toolkit.training.gan import AdversarialLoss


def _bce(logits: torch.Tensor, label: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, label))


@LOSSES.register("vanilla")
class VanillaGanLoss(AdversarialLoss):
    """Adversarial: the original GAN's binary cross-entropy on D's logits (SRGAN)."""

    def discriminator_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return _bce(real, 1.0) + _bce(fake, 0.0)

    def generator_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return _bce(fake, 1.0)


@LOSSES.register("lsgan")
class LeastSquaresGanLoss(AdversarialLoss):
    """Adversarial: least-squares GAN (Mao et al. 2017), D's outputs regressed to 1 and 0."""

    def discriminator_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return 0.5 * ((real - 1).pow(2).mean() + fake.pow(2).mean())

    def generator_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return 0.5 * (fake - 1).pow(2).mean()


@LOSSES.register("hinge")
class HingeGanLoss(AdversarialLoss):
    """Adversarial: hinge loss (Lim & Ye 2017; SAGAN, BigGAN)."""

    def discriminator_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()

    def generator_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return -fake.mean()


@LOSSES.register("ragan")
class RelativisticAverageGanLoss(AdversarialLoss):
    """Adversarial: relativistic average GAN (ESRGAN): is real more realistic than the average fake?

    Each real logit is compared with the mean of all fake logits of the batch, and each fake logit with
    the mean of all real ones (Jolicoeur-Martineau 2019, eq. 9-10; ESRGAN). With per-pixel logits the
    average runs over images and pixels: the training crops are random, so a pixel position means nothing
    across images, and the average fake is the average local patch D judges. This is what BasicSR's ESRGAN
    model computes (``torch.mean`` over the whole logit tensor), whatever the discriminator."""

    def discriminator_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return 0.5 * (_bce(real - fake.mean(), 1.0) + _bce(fake - real.mean(), 0.0))

    def generator_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return 0.5 * (_bce(real - fake.mean(), 0.0) + _bce(fake - real.mean(), 1.0))
