"""The model contract: what each first-party model gets, what a plugin that declares nothing gets, inexact
tiling with a declared overlap, size minimums, half types, discriminators, and the trip through a model file."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from sr_toolkit.core.errors import RegistryError
from sr_toolkit.core.model_contract import (
    ALIGN_CORNERS_CAVEAT,
    ModelContract,
    ModelContractError,
    contract_of,
    declare,
)
from sr_toolkit.core.model_file import load_model, save_model
from sr_toolkit.core.registry import MODELS
from sr_toolkit.inference.tiling import auto_tile, default_overlap, forward_tiled, tiles_exactly
from sr_toolkit.inference.upscaling import GrayNetwork, half_dtype, prepare, upscale_batch

# (spec, scale, task, halo, exact tiling, size multiple): the halos are those the models declared to tiling
# before the contract existed (the receptive-field bound of their layers, unchanged).
FIRST_PARTY = [
    ({"type": "edsr"}, 4, "upscale", 37, True, 1),
    ({"type": "srresnet"}, 4, "upscale", 41, True, 1),
    ({"type": "resnet_x4"}, 4, "upscale", 4, False, 1),  # bilinear with align_corners: not exact
    ({"type": "resnet_x4", "upsample": "bicubic"}, 4, "upscale", 5, True, 1),
    ({"type": "deconv", "scale": 2}, 2, "upscale", 3, True, 1),
    ({"type": "deconv", "scale": 4}, 4, "upscale", 2, True, 1),
    ({"type": "conv_autoencoder"}, 1, "restore", 41, True, 16),
]


@pytest.mark.parametrize(
    "spec, scale, task, halo, exact, multiple",
    FIRST_PARTY,
    ids=lambda value: value["type"] if isinstance(value, dict) else None,
)
def test_first_party_models_get_their_contract_when_built(
    spec: dict, scale: int, task: str, halo: int, exact: bool, multiple: int
) -> None:
    model = MODELS.build(spec)
    contract = contract_of(model)
    assert (contract.architecture, contract.spec) == (spec["type"], spec)
    assert (contract.scale, contract.task, contract.halo, contract.exact_tiling) == (scale, task, halo, exact)
    assert (contract.input_channels, contract.output_channels, contract.size_multiple) == (3, 3, multiple)
    assert contract.supports_half and contract.supports_bfloat16 and contract.recipe is None
    assert contract.tiling_caveat == ("" if exact else ALIGN_CORNERS_CAVEAT)
    with torch.no_grad():  # the contract's shapes are the network's
        output = model.eval()(torch.rand(1, 3, 16, 32))
    assert output.shape == (1, contract.output_channels, 16 * scale, 32 * scale)


class Undeclared(nn.Module):
    """A third party's x``scale`` upscaler as the README's plugin example writes it: nothing declared."""

    def __init__(self, scale: int = 2, channels: int = 8) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 3 * scale**2, 3, padding=1), nn.PixelShuffle(scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def test_a_plugin_that_declares_nothing_gets_a_working_contract(clean_registries: None) -> None:
    MODELS.register("undeclared")(Undeclared)
    contract = contract_of(MODELS.build({"type": "undeclared"}))
    assert contract == ModelContract(architecture="undeclared", scale=2, task="upscale", spec={"type": "undeclared"})
    assert contract_of(MODELS.build({"type": "undeclared", "scale": 3})).scale == 3  # the argument it was built with
    assert (contract.halo, contract.exact_tiling, contract.size_multiple) == (None, False, 1)
    # a module no loader built: its class name, scale 1 and so a restoration model
    bare = contract_of(nn.Conv2d(3, 3, 3, padding=1))
    assert (bare.architecture, bare.scale, bare.task, bare.halo) == ("Conv2d", 1, "restore", None)


def test_such_a_plugin_runs_whole_and_is_tiled_only_when_asked_with_a_warning(clean_registries: None) -> None:
    MODELS.register("undeclared")(Undeclared)
    model = MODELS.build({"type": "undeclared"}).eval()
    x = torch.rand(1, 3, 40, 40)
    assert auto_tile(model, 40, 40, scale=2, max_pixels=100) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        whole = upscale_batch(model, x, scale=2)
    with pytest.warns(UserWarning, match="model 'undeclared' declares no 'halo'"):
        tiled = upscale_batch(model, x, scale=2, tile=16)
    torch.testing.assert_close(tiled, whole, atol=1e-6, rtol=0)


class WindowLike(nn.Module):
    """Nearest x2 that declares, as a window-attention wrapper would, inputs in multiples of 4, an overlap
    of 5 that does not make tiles exact, and no float16; it remembers the size of every input."""

    def __init__(self) -> None:
        super().__init__()
        declare(
            self,
            scale=2,
            size_multiple=4,
            halo=5,
            exact_tiling=False,
            supports_half=False,
            tiling_caveat="attends within windows that tiles cut differently",
        )
        self.sizes: list[tuple[int, int]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append((x.shape[-2], x.shape[-1]))
        return x.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)


def test_a_model_declaring_inexact_tiling_is_tiled_with_its_overlap_when_asked() -> None:
    model = WindowLike()
    contract = contract_of(model)
    assert (contract.halo, contract.exact_tiling, contract.size_multiple) == (5, False, 4)
    assert contract.tiling_caveat == "attends within windows that tiles cut differently"
    assert not tiles_exactly(model)
    assert auto_tile(model, 400, 400, scale=2, max_pixels=100) is None  # never tiled unasked
    x = torch.rand(1, 3, 48, 48)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a declared overlap is no guess: no warning
        assert default_overlap(model) == 8  # 5 rounded up to the size multiple
        out = forward_tiled(model, x, scale=2, tile=16)
    # an inner tile reads 16 pixels and 8 on each side; edge tiles less
    assert max(model.sizes) == (32, 32) and (32, 32) in model.sizes and len(model.sizes) == 9
    torch.testing.assert_close(out, x.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1))
    model.sizes.clear()
    forward_tiled(model, x, scale=2, tile=16, overlap=2)  # an overlap asked for wins, rounded to 4
    assert max(model.sizes) == (24, 24)


def test_half_precision_follows_the_contract() -> None:
    model = WindowLike()
    assert half_dtype(contract_of(model), torch.device("cuda")) == torch.bfloat16  # float16 not supported
    assert half_dtype(contract_of(model), torch.device("cpu")) == torch.bfloat16
    assert half_dtype(contract_of(nn.Identity()), torch.device("cuda")) == torch.float16
    declare(model, supports_bfloat16=False)
    with pytest.raises(ValueError, match="model 'WindowLike' runs in neither float16 nor bfloat16"):
        prepare(model, "cpu", half=True)


class NeedsSize(nn.Module):
    """A restoration model that refuses inputs under 24 pixels a side."""

    minimum_size = 24

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if min(x.shape[-2:]) < 24:
            raise ValueError(f"got {tuple(x.shape)}")
        return x * 2


def test_inputs_are_padded_to_the_minimum_size() -> None:
    x = torch.rand(1, 3, 10, 30)
    torch.testing.assert_close(forward_tiled(NeedsSize(), x, scale=1, tile=None), x * 2)


def test_gray_images_run_a_network_with_a_one_channel_contract() -> None:
    model = MODELS.build({"type": "deconv", "scale": 2})
    gray = contract_of(GrayNetwork(model))
    assert gray == dataclasses.replace(contract_of(model), input_channels=1, output_channels=1)


def test_upscaling_refuses_a_model_that_is_not_rgb() -> None:
    model = nn.Conv2d(1, 1, 1)
    declare(model, input_channels=1, output_channels=1)
    with pytest.raises(ValueError, match="model 'Conv2d' maps 1 channels to 1; images are upscaled by RGB models"):
        upscale_batch(model, torch.rand(1, 3, 8, 8), scale=1)


def test_bad_declarations_are_refused_naming_them(clean_registries: None) -> None:
    with pytest.raises(ModelContractError, match="cannot declare halos; declarable: scale, task"):
        declare(nn.Identity(), halos=3)

    @MODELS.register("bad_halo")
    class BadHalo(nn.Identity):
        """Declares a negative halo."""

        halo = -1

    with pytest.raises(ModelContractError, match=r"^model: model 'bad_halo': halo: expected a number of pixels >= 0"):
        MODELS.build({"type": "bad_halo"}, where="model")
    with pytest.raises(ModelContractError, match="exact_tiling: expected false for a model without a halo"):
        ModelContract(architecture="x", scale=2, task="upscale", exact_tiling=True)
    with pytest.raises(ModelContractError, match="task: expected upscale or restore, got 'denoise'"):
        ModelContract(architecture="x", scale=1, task="denoise")  # type: ignore[arg-type]


def test_a_discriminator_is_no_image_model(tmp_path: Path) -> None:
    discriminator = MODELS.build({"type": "vgg_discriminator"})  # as gan.discriminator builds it
    with pytest.raises(ModelContractError, match="'VggDiscriminator' is a discriminator, not an image-to-image"):
        contract_of(discriminator)
    with pytest.raises(
        RegistryError,
        match=r"^model: model 'vgg_discriminator' is a discriminator, not an image-to-"
        r"image model; it belongs under gan.discriminator$",
    ):
        MODELS.build_image_model({"type": "vgg_discriminator"}, where="model")
    path = tmp_path / "model.safetensors"
    save_model(path, discriminator, {"model": {"type": "vgg_discriminator"}, "scale": 1, "task": "restore"})
    with pytest.raises(RegistryError, match=r"^model.safetensors: model: model 'vgg_discriminator' is a discriminator"):
        load_model(path)


@pytest.mark.parametrize(
    "recipe",
    [
        {"model": {"type": "edsr", "channels": 8, "blocks": 1, "scale": 2}, "scale": 2, "task": "upscale"},
        {"model": {"type": "resnet_x4", "channels": 8, "blocks": 1, "scale": 4}, "scale": 4, "task": "upscale"},
        {"model": {"type": "conv_autoencoder"}, "scale": 1, "task": "restore"},
    ],
    ids=lambda recipe: recipe["model"]["type"],
)
def test_the_contract_survives_save_and_load(recipe: dict, tmp_path: Path) -> None:
    built = MODELS.build(recipe["model"])
    save_model(tmp_path / "model.safetensors", built, recipe)
    loaded = contract_of(load_model(tmp_path / "model.safetensors"))
    assert loaded == dataclasses.replace(contract_of(built), recipe=recipe)


class FixedX3(nn.Module):
    """An x3 upscaler with no ``scale`` argument or declaration: only its model file knows the factor."""

    def __init__(self) -> None:
        super().__init__()
        self.shuffle = nn.Sequential(nn.Conv2d(3, 27, 1), nn.PixelShuffle(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(x)


def test_a_model_file_supplies_the_scale_a_model_does_not_declare(tmp_path: Path, clean_registries: None) -> None:
    MODELS.register("fixed_x3")(FixedX3)
    recipe = {"model": {"type": "fixed_x3"}, "scale": 3, "task": "upscale"}
    save_model(tmp_path / "model.safetensors", FixedX3(), recipe)
    contract = contract_of(load_model(tmp_path / "model.safetensors"))
    assert (contract.scale, contract.task, contract.recipe) == (3, "upscale", recipe)
