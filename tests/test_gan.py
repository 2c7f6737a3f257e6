"""GAN training: discriminator, adversarial losses, content loss weights, and the GAN engine step."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torchvision
from conftest import machine_numerics
from torch.nn.utils import parametrize

from sr_toolkit.config.recipe import load_recipe
from sr_toolkit.config.rules import is_adversarial
from sr_toolkit.core import checkpoint
from sr_toolkit.core.errors import TrainingDiverged
from sr_toolkit.core.registry import LOSSES, MODELS
from sr_toolkit.core.weights import WeightsUnavailableError
from sr_toolkit.training.engine import Trainer
from sr_toolkit.training.gan import AdversarialLoss, discriminator_step, generator_step, r1_penalty
from sr_toolkit.training.losses import WeightedLoss

ROOT = Path(__file__).resolve().parents[1]

GAN_RECIPE = """
task: upscale
scale: 4
model: {type: srresnet, blocks: 1, channels: 8}
degradation: [{type: downscale}]
data:
  train: {type: builtin, split: train, patch_size: 32}
  val: {type: builtin, split: val}
  batch_size: 2
loss:
  - {type: l1, weight: 1.0}
  - {type: vgg_perceptual, layers: [relu2_2], weights: random, weight: 0.1}
gan:
  discriminator: {type: vgg_discriminator, channels: 8, hidden: 16}
  adversarial: {type: ragan}
  weight: 0.01
  r1_weight: 0.1
  optimizer: {lr: 1.0e-3}
scheduler: {type: step, step_size: 2}
train: {max_steps: 4, log_every: 1, val_every: 100, checkpoint_every: 2, mixed_precision: "no"}
validation: {max_images: 1, samples: 1}
"""


# Real-ESRGAN's GAN (realesrgan_model.py with train_realesrgan_x4plus.yml): the U-Net discriminator, and the
# pixel and perceptual terms against the sharpened target
REALESRGAN_STYLE = [
    "gan.discriminator={type: unet_discriminator_sn, channels: 4}",
    "loss.0.target=sharpened",
    "loss.1.target=sharpened",
]

ADVERSARIAL = sorted(name for name in LOSSES.names() if is_adversarial(name))


@pytest.fixture
def gan_recipe(tmp_path: Path) -> Path:
    path = tmp_path / "gan.yaml"
    path.write_text(GAN_RECIPE + f"output_dir: {tmp_path / 'run'}\n")
    return path


def state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_discriminator_works_for_any_patch_size() -> None:
    discriminator = MODELS.build({"type": "vgg_discriminator"})
    for size in (32, 96, 131):
        assert discriminator(torch.rand(2, 3, size, size)).shape == (2, 1)
    convs = [m for m in discriminator.features if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 8 and [c.stride[0] for c in convs] == [1, 2] * 4
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256, 512, 512]
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in discriminator.features) == 7


def test_unet_discriminator_gives_a_logit_per_pixel_under_spectral_norm() -> None:
    torch.manual_seed(0)
    assert sum(p.numel() for p in MODELS.build({"type": "unet_discriminator_sn"}).parameters()) == 4_376_897
    discriminator = MODELS.build({"type": "unet_discriminator_sn", "channels": 8})
    without_skips = MODELS.build({"type": "unet_discriminator_sn", "channels": 8, "skip_connection": False})
    for height, width in ((8, 8), (24, 40)):
        images = torch.rand(2, 3, height, width)
        assert discriminator(images).shape == without_skips(images).shape == (2, 1, height, width)
    with pytest.raises(ValueError, match=r"multiples of 8, got 20x16 \(make data.train.patch_size a multiple of 8\)"):
        discriminator(torch.rand(1, 3, 20, 16))
    normed = [name for name, m in discriminator.named_children() if parametrize.is_parametrized(m, "weight")]
    assert normed == [f"conv{i}" for i in range(1, 9)]
    for _ in range(20):  # each training forward runs one power iteration
        discriminator(torch.rand(1, 3, 8, 8))
    discriminator.eval()
    for name in normed:  # the weight used is W / sigma, sigma = u.Wv the power iteration's largest singular value
        layer = getattr(discriminator, name)
        original, vectors = layer.parametrizations.weight.original.flatten(1), layer.parametrizations.weight[0]
        sigma = torch.dot(vectors._u, original @ vectors._v)
        assert torch.allclose(layer.weight.flatten(1), original / sigma, rtol=1e-5, atol=0), name
        # the estimate approaches the largest singular value from below: spectral norm 1, or a little more
        assert 1 - 1e-5 <= torch.linalg.matrix_norm(layer.weight.flatten(1), ord=2).item() < 1.05, name


def test_unet_discriminator_trains() -> None:
    torch.manual_seed(0)
    discriminator = MODELS.build({"type": "unet_discriminator_sn", "channels": 8})
    adversarial = LOSSES.build({"type": "vanilla"})
    optimizer = torch.optim.Adam(discriminator.parameters(), lr=1e-3)
    real, fake = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16) * 0.5
    before = state(discriminator)
    losses = []
    for _ in range(5):
        optimizer.zero_grad()
        loss = adversarial.discriminator_loss(discriminator(real), discriminator(fake))
        loss.backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in discriminator.parameters())
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    after = state(discriminator)  # every weight, and spectral norm's singular vectors (u, v)
    assert all(not torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("name", ADVERSARIAL)
def test_per_pixel_logits_are_averaged_over_images_and_pixels(name: str) -> None:
    generator = torch.Generator().manual_seed(1)
    real, fake = torch.randn(2, 1, 4, 6, generator=generator), torch.randn(2, 1, 4, 6, generator=generator)
    adversarial = LOSSES.build({"type": name})
    flat = real.reshape(-1, 1), fake.reshape(-1, 1)  # every pixel's logit as a sample of its own
    assert torch.isclose(adversarial.discriminator_loss(real, fake), adversarial.discriminator_loss(*flat))
    assert torch.isclose(adversarial.generator_loss(real, fake), adversarial.generator_loss(*flat))


def test_ragan_compares_each_pixel_with_the_average_of_all_pixels() -> None:
    real, fake = torch.tensor([[[[2.0, 0.0]]]]), torch.tensor([[[[-1.0, 1.0]]]])  # mean real 1, mean fake 0
    softplus = torch.nn.functional.softplus
    # D: 0.5 (mean softplus(-(real - 0)) + mean softplus(fake - 1)) = mean of softplus(-2) and softplus(0)
    expected = (softplus(torch.tensor(-2.0)) + softplus(torch.tensor(0.0))) / 2
    assert torch.isclose(LOSSES.build({"type": "ragan"}).discriminator_loss(real, fake), expected)


@pytest.mark.parametrize("name", ADVERSARIAL)
def test_gan_steps_with_per_pixel_logits_give_finite_losses_and_gradients(name: str) -> None:
    torch.manual_seed(0)
    generator = MODELS.build({"type": "srresnet", "blocks": 1, "channels": 8})
    discriminator = MODELS.build({"type": "unet_discriminator_sn", "channels": 4})
    adversarial = LOSSES.build({"type": name})
    inputs, target = torch.rand(2, 3, 4, 4), torch.rand(2, 3, 16, 16)
    d_loss, result = discriminator_step(generator, discriminator, adversarial, inputs, target, r1_weight=0.1)
    d_loss.backward()
    assert torch.isfinite(d_loss) and torch.isfinite(result.real_mean) and torch.isfinite(result.fake_mean)
    assert all(p.grad is None for p in generator.parameters())
    d_grads = [p.grad for p in discriminator.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in d_grads) and any(g.abs().sum() > 0 for g in d_grads)
    discriminator.zero_grad(set_to_none=True)
    discriminator.requires_grad_(False)
    criterion = WeightedLoss([{"type": "l1", "target": "sharpened"}])
    g_loss, parts = generator_step(generator, discriminator, criterion, adversarial, 0.1, inputs, target)
    g_loss.backward()
    assert torch.isfinite(g_loss) and parts["adversarial"].shape == () and torch.isfinite(parts["adversarial"])
    g_grads = [p.grad for p in generator.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in g_grads) and any(g.abs().sum() > 0 for g in g_grads)
    assert all(p.grad is None for p in discriminator.parameters())


@pytest.mark.parametrize("name", ["vanilla", "lsgan", "hinge", "ragan"])
def test_adversarial_losses_reward_the_right_side(name: str) -> None:
    adversarial = LOSSES.build({"type": name})
    assert isinstance(adversarial, AdversarialLoss)
    confident, fooled = (torch.ones(4, 1), torch.zeros(4, 1)), (torch.zeros(4, 1), torch.zeros(4, 1))
    # D is better off when it tells real (high) from fake (low); G is better off when fakes score high
    assert adversarial.discriminator_loss(*confident) < adversarial.discriminator_loss(*fooled)
    assert adversarial.generator_loss(torch.zeros(4, 1), torch.ones(4, 1)) < adversarial.generator_loss(
        torch.zeros(4, 1), -torch.ones(4, 1)
    )


def test_known_adversarial_values() -> None:
    real, fake = torch.tensor([[2.0], [0.0]]), torch.tensor([[-1.0], [1.0]])
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    vanilla = LOSSES.build({"type": "vanilla"})
    expected = bce(real, torch.ones(2, 1)) + bce(fake, torch.zeros(2, 1))
    assert torch.isclose(vanilla.discriminator_loss(real, fake), expected)
    hinge = LOSSES.build({"type": "hinge"})
    assert torch.isclose(hinge.discriminator_loss(real, fake), torch.tensor((0 + 1 + 0 + 2) / 2))
    assert torch.isclose(LOSSES.build({"type": "lsgan"}).generator_loss(real, fake), torch.tensor(0.5 * (4 + 0) / 2))


def test_discriminator_step_sees_detached_fakes() -> None:
    generator = MODELS.build({"type": "srresnet", "blocks": 1, "channels": 8})
    discriminator = MODELS.build({"type": "vgg_discriminator", "channels": 8, "hidden": 16})
    loss, result = discriminator_step(
        generator,
        discriminator,
        LOSSES.build({"type": "vanilla"}),
        torch.rand(2, 3, 8, 8),
        torch.rand(2, 3, 32, 32),
        r1_weight=1.0,
    )
    loss.backward()
    assert all(p.grad is None for p in generator.parameters())
    assert all(p.grad is not None for p in discriminator.parameters())
    assert result.real_mean.shape == () and result.fake_mean.shape == ()


def test_generator_step_adds_the_adversarial_term() -> None:
    generator = MODELS.build({"type": "srresnet", "blocks": 1, "channels": 8})
    discriminator = MODELS.build({"type": "vgg_discriminator", "channels": 8, "hidden": 16}).requires_grad_(False)
    criterion = WeightedLoss([{"type": "l1"}])
    inputs, target = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 32, 32)
    warm, warm_parts = generator_step(generator, None, criterion, None, 0.5, inputs, target)
    full, parts = generator_step(
        generator, discriminator, criterion, LOSSES.build({"type": "vanilla"}), 0.5, inputs, target
    )
    assert set(warm_parts) == {"l1"} and set(parts) == {"l1", "adversarial"}
    assert torch.isclose(full, warm + 0.5 * parts["adversarial"])


def test_r1_penalty_is_the_squared_input_gradient() -> None:
    linear = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 1, bias=False))
    penalty = r1_penalty(linear, torch.rand(3, 3, 2, 2))
    assert torch.isclose(penalty, linear[1].weight.pow(2).sum())


def test_r1_penalty_on_per_pixel_logits_takes_each_image_mean_logit() -> None:
    pointwise = torch.nn.Conv2d(3, 1, 1, bias=False)  # logit w . x at each of the 20 pixels
    penalty = r1_penalty(pointwise, torch.rand(2, 3, 4, 5))
    # d(mean logit)/dx at each pixel is w / 20; the squared norm over 20 pixels is |w|^2 / 20
    assert torch.isclose(penalty, pointwise.weight.pow(2).sum() / 20)


def test_gan_training_updates_both_networks_and_logs_every_term(gan_recipe: Path, tmp_path: Path) -> None:
    recipe = load_recipe(gan_recipe)
    trainer = Trainer(recipe)
    generator_before, discriminator_before = state(trainer.model), state(trainer.gan.discriminator)
    trainer.fit()
    generator_after, discriminator_after = state(trainer.model), state(trainer.gan.discriminator)
    assert any(not torch.equal(generator_before[k], generator_after[k]) for k in generator_before)
    assert any(not torch.equal(discriminator_before[k], discriminator_after[k]) for k in discriminator_before)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "loss" in r]
    assert [r["step"] for r in steps] == [1, 2, 3, 4]
    for key in ("loss/l1", "loss/vgg_perceptual", "loss/adversarial", "loss/d_loss", "loss/d_real", "loss/d_fake"):
        assert all(key in r for r in steps), key
    tensors, meta = checkpoint.read(tmp_path / "run" / "checkpoints" / "step_0000004.safetensors")
    assert any(k.startswith("discriminator.") for k in tensors)
    assert any(k.startswith("d_optimizer.state.") for k in tensors) and "d_optimizer" in meta
    assert sorted((tmp_path / "run" / "samples").glob("*.png"))


def test_gan_warmup_trains_the_generator_alone(gan_recipe: Path) -> None:
    trainer = Trainer(load_recipe(gan_recipe, ["gan.warmup_steps=10", "train.max_steps=2"]))
    before = state(trainer.gan.discriminator)
    trainer.fit()
    assert all(torch.equal(before[k], v) for k, v in state(trainer.gan.discriminator).items())
    records = [json.loads(line) for line in Path(trainer.folder.metrics).read_text().splitlines()]
    assert all("loss/d_loss" not in r and "loss/adversarial" not in r for r in records if "loss" in r)


@pytest.mark.parametrize("style", [[], REALESRGAN_STYLE], ids=["vgg_discriminator", "realesrgan_style"])
@pytest.mark.parametrize("numerics", machine_numerics())
def test_gan_resume_is_bit_exact(gan_recipe: Path, tmp_path: Path, numerics: str, style: list[str]) -> None:
    full = Trainer(
        load_recipe(gan_recipe, [f"output_dir={tmp_path / 'full'}", f"train.mixed_precision={numerics}", *style])
    )
    full.fit()
    half = [f"output_dir={tmp_path / 'half'}", f"train.mixed_precision={numerics}", *style]
    Trainer(load_recipe(gan_recipe, [*half, "train.max_steps=2"])).fit()
    resumed = Trainer(load_recipe(gan_recipe, half), resume=True)
    resumed.fit()
    for a, b in ((full.model, resumed.model), (full.gan.discriminator, resumed.gan.discriminator)):
        sa, sb = state(a), state(b)
        assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_init_from_a_psnr_model(gan_recipe: Path, tmp_path: Path) -> None:
    pretrained = Trainer(
        load_recipe(
            gan_recipe,
            [f"output_dir={tmp_path / 'psnr'}", "gan.discriminator=null", "loss=[{type: l1}]", "train.max_steps=1"],
        )
    )
    pretrained.fit()
    source = tmp_path / "psnr" / "model.safetensors"
    trainer = Trainer(load_recipe(gan_recipe, [f"gan.init_from={source}"]))
    assert all(torch.equal(v, pretrained.model.state_dict()[k]) for k, v in trainer.model.state_dict().items())
    with pytest.raises(
        checkpoint.CheckpointError,
        match=r"gan.init_from: .* holds a model with model.channels = 8, "
        "this recipe trains model.channels = 16",
    ):
        Trainer(load_recipe(gan_recipe, [f"gan.init_from={source}", "model.channels=16"]))


def test_adversarial_loss_in_the_loss_list_is_refused(gan_recipe: Path) -> None:
    with pytest.raises(Exception, match=r"loss.1: 'hinge' is an adversarial loss"):
        Trainer(load_recipe(gan_recipe, ["loss=[{type: l1}, {type: hinge}]"]))


def test_vgg_weights_from_a_local_file(tmp_path: Path) -> None:
    reference = torchvision.models.vgg19(weights=None)
    torch.save(reference.state_dict(), tmp_path / "vgg19.pth")
    loss = LOSSES.build(
        {"type": "vgg_perceptual", "layers": ["conv1_2", "relu3_1"], "weights_path": str(tmp_path / "vgg19.pth")}
    )
    assert torch.equal(loss.features[0].weight, reference.features[0].weight)
    assert len(loss.features) == 12  # truncated after relu3_1
    image = torch.rand(1, 3, 24, 24)
    assert loss(image, image).item() == 0.0 and loss(image, torch.rand(1, 3, 24, 24)).item() > 0
    with pytest.raises(Exception, match="layers: unknown VGG19 layer"):
        LOSSES.build({"type": "vgg_perceptual", "layers": ["conv6_1"], "weights": "random"})


def test_offline_without_weights_stops_before_training_in_one_line(gan_recipe: Path, tmp_path: Path) -> None:
    recipe = gan_recipe.read_text().replace("weights: random, ", "")
    gan_recipe.write_text(recipe)
    script = (
        "import sys, urllib.error, torch\n"
        "def offline(*a, **k): raise urllib.error.URLError('no network')\n"
        "torch.hub.urlopen = offline\n"
        f"sys.argv = ['train.py', {str(gan_recipe)!r}]\n"
        "from sr_toolkit.commands import train\n"
        "sys.exit(train.main())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "TORCH_HOME": str(tmp_path / "torch")},
    )
    assert result.returncode == 2
    error = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "loss.1: loss 'vgg_perceptual'" in error[0] and "weights_path=" in error[0]
    assert not (tmp_path / "run").exists()  # nothing was started


def test_lpips_loss_is_differentiable() -> None:
    loss = LOSSES.build({"type": "lpips", "net": "alex", "weights": "random"})
    output = torch.rand(1, 3, 32, 32, requires_grad=True)
    loss(output, torch.rand(1, 3, 32, 32)).backward()
    assert output.grad is not None and output.grad.abs().sum() > 0
    with pytest.raises(WeightsUnavailableError):
        LOSSES.build({"type": "lpips", "weights_path": "/nonexistent/vgg.pth"})


def test_shipped_gan_recipes_resolve() -> None:
    for name in ("srgan_x4", "esrgan_lite_x4"):
        recipe = load_recipe(ROOT / "recipes" / f"{name}.yaml")
        assert recipe["gan"]["discriminator"]["type"] == "vgg_discriminator"
    assert load_recipe(ROOT / "recipes" / "esrgan_lite_x4.yaml")["model"]["batch_norm"] is False


NAN_DISCRIMINATOR = '''
import torch
from sr_toolkit.core.registry import MODELS


@MODELS.register("nan_discriminator")
class NanDiscriminator(torch.nn.Module):
    """One logit per image; NaN from the given forward call on (real and fake each count)."""

    def __init__(self, nan_from: int = 3) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(1))
        self.nan_from, self.calls = nan_from, 0

    def forward(self, x):
        self.calls += 1
        logit = x.mean(dim=(1, 2, 3)) * self.weight
        return logit * float("nan") if self.calls >= self.nan_from else logit
'''


def test_a_nan_discriminator_loss_is_named(gan_recipe: Path, tmp_path: Path, clean_registries: None) -> None:
    plugin = tmp_path / "nan_discriminator.py"
    plugin.write_text(NAN_DISCRIMINATOR)
    # with RaGAN a step calls D four times (real and fake for D's loss, again for the generator's
    # term): NaN from call 5 is in D's loss at step 2, before the generator's term of that step
    recipe = load_recipe(
        gan_recipe,
        [f"plugins=[{plugin}]", "gan.r1_weight=0", "gan.discriminator={type: nan_discriminator, nan_from: 5}"],
    )
    with pytest.raises(TrainingDiverged, match="the discriminator's loss became NaN or inf at step 2"):
        Trainer(recipe).fit()
