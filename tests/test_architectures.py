"""The spandrel-based model families (plugins/models/spandrel_archs.py): they train at the recipe's scale, every
parameter learns in training mode, and their model files load unchanged in spandrel with the same output."""

from __future__ import annotations

from pathlib import Path

import pytest
import safetensors.torch
import spandrel
import torch
import torch.nn.functional as F
from architecture_sizes import SMALL
from test_engine import TINY_RECIPE, train
from test_models import receptive_reach

from sr_toolkit import load_model
from sr_toolkit.config.recipe import load_recipe
from sr_toolkit.core.errors import RegistryError
from sr_toolkit.core.model_contract import contract_of
from sr_toolkit.core.model_file import save_model
from sr_toolkit.core.registry import MODELS
from sr_toolkit.inference.tiling import forward_tiled
from sr_toolkit.inference.upscaling import prepare, upscale_batch

# Each family at a width small enough for a fast test and still detected by spandrel 0.4.2 (its detection reads
# e.g. SwinIR's and DAT's head counts from the second block, so windowed families keep two blocks).


def small(name: str, scale: int = 4) -> torch.nn.Module:
    torch.manual_seed(0)
    return MODELS.build({"type": name, "scale": scale, **SMALL[name][0]})


def test_every_family_is_registered_by_the_first_party_plugin() -> None:
    assert {MODELS.get(name).plugin for name in SMALL} == {"sr-toolkit"}


@pytest.mark.parametrize("name", list(SMALL))
def test_training_step_reaches_every_parameter_and_changes_the_output(name: str) -> None:
    scale = 4 if name == "swinir_l" else 2  # its nearest+conv upsampler works at x4 only
    model = small(name, scale)
    image = torch.rand(2, 3, 16, 16)
    target = F.interpolate(image, scale_factor=scale, mode="bicubic").clamp(0, 1)
    with torch.no_grad():
        before = model.eval()(image)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    F.l1_loss(model.train()(image), target).backward()
    without = [key for key, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert without == []
    optimizer.step()
    with torch.no_grad():
        after = model.eval()(image)
    assert after.shape == before.shape == (2, 3, 16 * scale, 16 * scale)
    assert not torch.allclose(after, before)


@pytest.mark.parametrize("name", list(SMALL))
def test_model_file_loads_unchanged_in_spandrel_with_the_same_output(name: str, tmp_path: Path) -> None:
    spec = {"type": name, "scale": 4, **SMALL[name][0]}
    path = tmp_path / "model.safetensors"
    save_model(path, small(name), {"model": spec, "scale": 4, "task": "upscale"})
    descriptor = spandrel.ModelLoader().load_from_file(path)
    ours = load_model(path)
    assert descriptor.architecture.id == SMALL[name][1] and descriptor.scale == 4
    assert type(descriptor.model) is type(ours)
    image = torch.rand(1, 3, 16, 24)
    with torch.no_grad():
        assert torch.allclose(descriptor.model.eval()(image), ours(image), atol=1e-5)
    assert contract_of(ours).supports_half == descriptor.supports_half


@pytest.mark.parametrize("name", ["compact", "swinir_m", "hat_m", "dat_light"])
def test_bare_type_trains_at_the_recipes_scale(name: str, tmp_path: Path) -> None:
    (tmp_path / "recipe.yaml").write_text(f"scale: 3\nmodel: {{type: {name}}}\ndegradation: [{{type: downscale}}]\n")
    recipe = load_recipe(tmp_path / "recipe.yaml")
    assert recipe["model"]["type"] == name and recipe["model"]["scale"] == 3
    model = MODELS.build({**recipe["model"], **SMALL[name][0]})  # small widths: the default sizes are slow to build
    assert contract_of(model).scale == 3
    with torch.no_grad():
        assert model.eval()(torch.rand(1, 3, 16, 16)).shape == (1, 3, 48, 48)


@pytest.mark.parametrize(("name", "scale", "supported"), [("esrgan", 5, "2, 3, 4"), ("swinir_l", 2, "4")])
def test_unsupported_scale_is_one_line_naming_the_supported_ones(name: str, scale: int, supported: str) -> None:
    with pytest.raises(RegistryError, match=f"scale {scale} is not supported; supported scales: {supported}$"):
        MODELS.build({"type": name, "scale": scale})


def test_windowed_families_declare_approximate_tiling_and_convolutional_ones_exact() -> None:
    windowed = contract_of(small("hat_m"))
    assert (windowed.exact_tiling, windowed.size_multiple, windowed.halo) == (False, 8, 8)
    assert "window" in windowed.tiling_caveat and not windowed.supports_half
    convolutional = contract_of(small("compact"))
    assert convolutional.exact_tiling and convolutional.halo == 5  # 4 convs of 3x3 and the pixel shuffle's half pixel


@pytest.mark.parametrize("name", ["esrgan", "compact", "span", "realplksr"])
def test_convolutional_families_tile_exactly_within_their_halo(name: str) -> None:
    model = small(name, scale=2).eval()
    reach = receptive_reach(model, 2 * contract_of(model).halo + 16)
    assert 0 < reach <= contract_of(model).halo
    image = torch.rand(1, 3, 40, 56)
    whole = forward_tiled(model, image, scale=2, tile=None)
    assert torch.allclose(forward_tiled(model, image, scale=2, tile=16), whole, atol=1e-4)


def test_engine_trains_a_family_and_spandrel_loads_its_model_file(tmp_path: Path) -> None:
    recipe = tmp_path / "span.yaml"
    model_line = next(line for line in TINY_RECIPE.splitlines() if line.startswith("model:"))
    text = TINY_RECIPE.replace(model_line, "model: {type: span, feature_channels: 8}").replace("scale: 4", "scale: 2")
    recipe.write_text(text + f"output_dir: {tmp_path / 'run'}\n")
    train(recipe, "train.max_steps=2", "train.val_every=2")
    descriptor = spandrel.ModelLoader().load_from_file(tmp_path / "run" / "model.safetensors")
    assert descriptor.architecture.id == "SPAN" and descriptor.scale == 2


# Parameters of published models at the defaults: Real-ESRGAN's RealESRGAN_x4plus.pth (RRDBNet 64 features,
# 23 blocks) and realesr-animevideov3.pth (SRVGGNetCompact 64 features, 16 convolutions, x4).
PUBLISHED_PARAMETERS = {"esrgan": 16_697_987, "compact": 621_424}


@pytest.mark.parametrize("name", list(SMALL))
def test_published_sizes_build(name: str) -> None:
    model = MODELS.build({"type": name, "scale": 4})
    count = sum(p.numel() for p in model.parameters())
    assert count == PUBLISHED_PARAMETERS.get(name, count) and count > 0


@pytest.mark.parametrize("name", list(SMALL))
def test_declared_half_types_run_with_half_weights(name: str, tmp_path: Path) -> None:
    """What ``--half`` does (weights converted, not autocast): every declared half type runs, and a model
    declaring none is refused in one line; the same holds for the model loaded back through spandrel."""
    ours = small(name)
    safetensors.torch.save_file(ours.state_dict(), tmp_path / "community.safetensors")  # no metadata: spandrel's
    for model in (ours, load_model(tmp_path / "community.safetensors")):
        contract = contract_of(model)
        if not (contract.supports_bfloat16 or contract.supports_half):
            with pytest.raises(ValueError, match="runs in neither float16 nor bfloat16"):
                prepare(model, "cpu", half=True)
            continue
        output = upscale_batch(prepare(model, "cpu", half=True), torch.rand(1, 3, 32, 32), scale=4)
        assert output.shape == (1, 3, 128, 128) and torch.isfinite(output).all()
