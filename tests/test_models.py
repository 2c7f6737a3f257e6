"""First-party models: parameter counts from layer arithmetic, shapes, identity at init, halo, errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from architecture_sizes import SMALL
from skimage import data

from sr_toolkit.core.errors import RegistryError
from sr_toolkit.core.registry import MODELS

FIRST_PARTY = {"conv_autoencoder", "deconv", "resnet_x4", "srresnet", "edsr"}
UPSCALER_SCALES = {"deconv": (2, 4), "resnet_x4": (2, 3, 4), "srresnet": (2, 3, 4), "edsr": (2, 3, 4)}


def conv(in_channels: int, out_channels: int, kernel: int) -> int:
    """Parameters of a (transposed) convolution with bias."""
    return in_channels * out_channels * kernel * kernel + out_channels


def batch_norm(channels: int) -> int:
    return 2 * channels


def shuffle_upsampler(channels: int, scale: int, prelu: bool) -> int:
    """x2 stages (x3: one stage) of conv k3 to channels * r^2, plus one PReLU slope per stage when used."""
    factors = {2: [2], 3: [3], 4: [2, 2]}[scale]
    return sum(conv(channels, channels * r * r, 3) + int(prelu) for r in factors)


def srresnet_parameters(scale: int, blocks: int = 16, c: int = 64, bn: bool = True) -> int:
    norm = batch_norm(c) if bn else 0
    block = 2 * conv(c, c, 3) + 2 * norm + 1
    return (
        conv(3, c, 9)
        + 1
        + blocks * block
        + conv(c, c, 3)
        + norm
        + shuffle_upsampler(c, scale, prelu=True)
        + conv(c, 3, 9)
    )


def edsr_parameters(scale: int, blocks: int = 16, c: int = 64) -> int:
    return (
        conv(3, c, 3)
        + blocks * 2 * conv(c, c, 3)
        + conv(c, c, 3)
        + shuffle_upsampler(c, scale, prelu=False)
        + conv(c, 3, 3)
    )


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def first_party_names() -> list[str]:
    """Every image-to-image model registered by sr-toolkit's own plugins (tests elsewhere may register
    more; discriminators are tested in tests/test_gan.py)."""
    return [
        e.name
        for e in MODELS.entries()
        if e.factory.__module__.startswith("sr_toolkit_plugins.") and not getattr(e.factory, "is_discriminator", False)
    ]


def photo(height: int, width: int) -> torch.Tensor:
    """A crop of a real photo as a (1, 3, height, width) tensor in [0, 1]."""
    image = data.astronaut()[100 : 100 + height, 180 : 180 + width]
    return torch.from_numpy(image).permute(2, 0, 1).unsqueeze(0).float() / 255


def test_first_party_models_are_registered() -> None:
    assert set(first_party_names()) >= FIRST_PARTY


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"type": "conv_autoencoder"}, 23_659),
        (
            {"type": "conv_autoencoder"},
            conv(3, 32, 4) + conv(32, 16, 4) + conv(16, 8, 4) + conv(8, 16, 4) + conv(16, 32, 4) + conv(32, 3, 4),
        ),
        ({"type": "deconv"}, 3_063),
        ({"type": "deconv", "scale": 2}, conv(3, 10, 3) + conv(10, 20, 3) + conv(20, 3, 4)),
        ({"type": "deconv", "scale": 4}, conv(3, 10, 4) + conv(10, 20, 4) + conv(20, 3, 3)),
        ({"type": "resnet_x4"}, 299_463),
        # head, 2 blocks of (2 BN + 4 convs + 2 single-slope PReLUs), tail
        ({"type": "resnet_x4"}, conv(3, 64, 3) + 2 * (2 * batch_norm(64) + 4 * conv(64, 64, 3) + 2) + conv(64, 3, 3)),
        ({"type": "srresnet"}, 1_549_462),
        ({"type": "srresnet", "scale": 2}, srresnet_parameters(2)),
        ({"type": "srresnet", "scale": 3}, srresnet_parameters(3)),
        ({"type": "srresnet", "scale": 4}, srresnet_parameters(4)),
        (
            {"type": "srresnet", "batch_norm": False, "blocks": 4, "channels": 32},
            srresnet_parameters(4, blocks=4, c=32, bn=False),
        ),
        ({"type": "edsr"}, 1_517_571),
        ({"type": "edsr", "scale": 2}, 1_369_859),
        ({"type": "edsr", "scale": 2}, edsr_parameters(2)),
        ({"type": "edsr", "scale": 3}, edsr_parameters(3)),
        ({"type": "edsr", "scale": 4}, edsr_parameters(4)),
        ({"type": "edsr", "blocks": 3, "channels": 16}, edsr_parameters(4, blocks=3, c=16)),
        # direct upsampler: one conv to 3 * 4 * 4 channels replaces the two x2 stages and the tail
        (
            {"type": "edsr", "channels": 32, "upsampler": "direct"},
            conv(3, 32, 3) + 16 * 2 * conv(32, 32, 3) + conv(32, 32, 3) + conv(32, 48, 3),
        ),
    ],
)
def test_parameter_count(spec: dict, expected: int) -> None:
    assert count(MODELS.build(spec)) == expected


def test_resnet_x4_prelus_have_one_shared_slope() -> None:
    prelus = [m for m in MODELS.build({"type": "resnet_x4"}).modules() if isinstance(m, torch.nn.PReLU)]
    assert [p.num_parameters for p in prelus] == [1, 1, 1, 1]
    assert len({id(p.weight) for p in prelus}) == 4  # four distinct PReLUs, not one shared twice


@pytest.mark.parametrize(
    ("name", "scale"), [(name, scale) for name, scales in UPSCALER_SCALES.items() for scale in scales]
)
def test_upscaler_output_is_scale_times_any_input_size(name: str, scale: int) -> None:
    model = MODELS.build({"type": name, "scale": scale}).eval()
    assert model.scale == scale
    with torch.no_grad():
        output = model(photo(17, 23))
    assert output.shape == (1, 3, 17 * scale, 23 * scale)


def test_conv_autoencoder_keeps_size_and_range() -> None:
    model = MODELS.build({"type": "conv_autoencoder"}).eval()
    assert model.scale == 1
    with torch.no_grad():
        output = model(photo(48, 64))
    assert output.shape == (1, 3, 48, 64)
    assert output.min() >= 0 and output.max() <= 1


def test_conv_autoencoder_bottleneck_is_8x2x2_for_32x32() -> None:
    model = MODELS.build({"type": "conv_autoencoder"})
    assert model.encoder(photo(32, 32)).shape == (1, 8, 2, 2)
    assert (
        model.encoder(photo(32, 32)).shape
        == MODELS.build({"type": "conv_autoencoder", "widths": [8, 4], "bottleneck": 8}).encoder(photo(32, 32)).shape
    )


def test_conv_autoencoder_rejects_size_not_multiple_of_16() -> None:
    with pytest.raises(ValueError, match="multiples of 16, got 17x23"):
        MODELS.build({"type": "conv_autoencoder"})(photo(17, 23))


@pytest.mark.parametrize(
    ("spec", "mode", "align_corners"),
    [
        ({"type": "resnet_x4", "global_skip": True}, "bilinear", True),
        ({"type": "resnet_x4", "global_skip": True, "upsample": "bicubic"}, "bicubic", False),
        ({"type": "resnet_x4", "global_skip": True, "upsample": "bicubic", "scale": 3}, "bicubic", False),
        ({"type": "edsr"}, "bicubic", False),
        ({"type": "edsr", "scale": 3}, "bicubic", False),
        ({"type": "edsr", "upsampler": "direct"}, "bicubic", False),
    ],
)
def test_global_skip_returns_interpolation_at_init(spec: dict, mode: str, align_corners: bool) -> None:
    model = MODELS.build(spec)
    image = photo(17, 23)
    expected = F.interpolate(image, scale_factor=model.scale, mode=mode, align_corners=align_corners)
    output = model(image)
    torch.testing.assert_close(output, expected, atol=1e-6, rtol=0)
    output.mean().backward()
    last = [module for module in model.modules() if isinstance(module, torch.nn.Conv2d)][-1]
    assert not last.weight.any() and last.weight.grad.abs().sum() > 0  # the zeroed last conv still learns


@pytest.mark.parametrize("spec", [{"type": "resnet_x4"}, {"type": "edsr", "global_skip": False}])
def test_without_global_skip_output_is_not_the_interpolation(spec: dict) -> None:
    model = MODELS.build(spec)
    image = photo(17, 23)
    expected = F.interpolate(image, scale_factor=model.scale, mode="bicubic", align_corners=False)
    assert (model(image) - expected).abs().max() > 1e-3


def receptive_reach(model: torch.nn.Module, size: int) -> float:
    """How far, in input pixels, output pixels that change when one input pixel changes lie from it."""
    torch.manual_seed(0)
    model.eval()
    with torch.no_grad():
        for parameter in model.parameters():  # a zeroed tail would hide the network's reach
            if not parameter.any():
                torch.nn.init.normal_(parameter, std=0.05)
        image = torch.rand(1, 3, size, size)
        centre = size // 2
        nudged = image.clone()
        nudged[..., centre, centre] += 1
        changed = (model(nudged) - model(image)).abs().amax(dim=(0, 1)) > 0
    positions = (torch.nonzero(changed).double() + 0.5) / model.scale - 0.5  # in input pixels
    return (positions - centre).abs().max().item()


@pytest.mark.parametrize(
    "spec",
    [
        {"type": "conv_autoencoder"},
        {"type": "deconv"},
        {"type": "deconv", "scale": 4},
        {"type": "resnet_x4"},
        {"type": "resnet_x4", "upsample": "bicubic", "global_skip": True, "scale": 3},
        {"type": "srresnet", "blocks": 4, "scale": 3},
        {"type": "edsr"},
        {"type": "edsr", "upsampler": "direct", "scale": 3},
    ],
)
def test_halo_bounds_the_measured_receptive_field(spec: dict) -> None:
    model = MODELS.build(spec)
    size = 2 * model.halo + 16
    size += -size % 16  # the autoencoder needs multiples of 16
    reach = receptive_reach(model, size)
    assert reach <= model.halo
    assert reach > 0.8 * model.halo - 1  # and is not a uselessly loose bound


@pytest.mark.parametrize(
    ("spec", "argument"),
    [
        ({"type": "deconv", "scale": 3}, "scale"),
        ({"type": "resnet_x4", "scale": 5}, "scale"),
        ({"type": "srresnet", "scale": 5}, "scale"),
        ({"type": "edsr", "scale": 5}, "scale"),
        ({"type": "resnet_x4", "upsample": "lanczos"}, "upsample"),
        ({"type": "resnet_x4", "dropout": 1.0}, "dropout"),
        ({"type": "edsr", "channels": 0}, "channels"),
        ({"type": "edsr", "upsampler": "bilinear"}, "upsampler"),
        ({"type": "srresnet", "blocks": -1}, "blocks"),
        ({"type": "conv_autoencoder", "bottleneck": 0}, "bottleneck"),
        ({"type": "conv_autoencoder", "widths": [32]}, "widths"),
    ],
)
def test_bad_argument_raises_registry_error_naming_it(spec: dict, argument: str) -> None:
    bad_value = spec[argument]
    with pytest.raises(RegistryError, match=argument) as raised:
        MODELS.build(spec)
    assert str(bad_value) in str(raised.value)


@pytest.mark.parametrize("name", first_party_names())
def test_every_registered_model_builds_runs_and_trains(name: str) -> None:
    """timm-style: each registered first-party model with its defaults (the spandrel families at the small
    widths of test_architectures: at their published sizes a step takes up to a minute on a CPU; their
    defaults are built in test_published_sizes_build), one training step's gradients."""
    entry = MODELS.get(name)
    assert entry.summary.endswith(".") and len(entry.summary) <= 110
    model = MODELS.build({"type": name, **SMALL.get(name, ({}, ""))[0]}).train()
    assert isinstance(model.scale, int) and isinstance(model.halo, int) and model.halo >= 0
    target = photo(32 * model.scale, 32 * model.scale)
    target = torch.cat([target, target.flip(-1)])
    output = model(F.interpolate(target, size=(32, 32), mode="area"))
    assert output.shape == target.shape
    assert torch.isfinite(output).all()
    F.mse_loss(output, target).backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0
