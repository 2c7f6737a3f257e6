"""Every registered image model, at small widths, goes the whole way: build, two training steps, save and reload,
spandrel (for the spandrel families), tiled inference, ONNX export and a bf16 forward."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import spandrel
import torch
import torch.nn.functional as F
from architecture_sizes import SMALL
from conftest import machine_numerics
from test_models import first_party_names, photo

from sr_toolkit.commands import export as export_tool
from sr_toolkit.core.model_contract import contract_of
from sr_toolkit.core.model_file import load_model, save_model
from sr_toolkit.core.registry import MODELS
from sr_toolkit.inference.tiling import forward_tiled

# The older first-party models at small widths; they are not spandrel architectures, so spandrel must refuse
# their files (it detects architectures by state-dict keys, and these have keys of their own).
OLDER_SMALL: dict[str, dict[str, Any]] = {
    "conv_autoencoder": {"widths": [8, 4], "bottleneck": 8},
    "deconv": {"scale": 2},
    "resnet_x4": {"scale": 2, "channels": 8, "blocks": 1},
    "srresnet": {"scale": 2, "channels": 8, "blocks": 1},
    "edsr": {"scale": 2, "channels": 8, "blocks": 1},
}

# Every image model's file exports to ONNX, and onnxruntime matches PyTorch at another batch and size (tools/export.py
# exits 0): none is refused. Those whose forward gives their weights new tensors go through TorchScript's exporter.
REWRITES_ITS_WEIGHTS = {"span"}
# Types whose small network has the same layers (names and classes; only widths differ) as another type's: a trace sees
# the same graph, so that type's export stands for theirs (a DAT or HAT export takes 20-50 s here).
EXPORT_TWINS = {"dat_s": "dat", "dat_2": "dat", "hat_m": "hat_s", "hat_l": "hat_s"}

INEXACT_TILING_BOUND = 100 / 255
"""Largest difference, on a photo in [0, 1], between tiled and whole-image output of a model that declares inexact
tiling, with its declared overlap: the worst case sr_toolkit/inference/tiling.py documents (resnet_x4's
align_corners upsampling, 100 of 255 levels at sharp edges); the window-attention families stay within it."""


def small_spec(name: str) -> dict[str, Any]:
    """``name``'s spec at a small width: x2 (SwinIR-L: x4, its only scale; the autoencoder restores, x1)."""
    if name in SMALL:
        return {"type": name, "scale": 4 if name == "swinir_l" else 2, **SMALL[name][0]}
    return {"type": name, **OLDER_SMALL[name]}


def test_every_image_model_has_a_small_size() -> None:
    assert sorted(first_party_names()) == sorted([*SMALL, *OLDER_SMALL])


def layers(model: torch.nn.Module) -> list[tuple[str, str]]:
    """The name and class of every module in ``model``: its structure, whatever its widths."""
    return [(name, type(module).__name__) for name, module in model.named_modules()]


def train_two_steps(model: torch.nn.Module, scale: int) -> None:
    """Two Adam steps on a batch of two photo patches (16x16 inputs, area-downscaled; noisy for restoration):
    the loss stays finite and the weights change."""
    target = torch.cat([photo(16 * scale, 16 * scale), photo(16 * scale, 16 * scale).flip(-1)])
    inputs = F.interpolate(target, scale_factor=1 / scale, mode="area") if scale > 1 else target
    inputs = (inputs + 0.05 * torch.randn_like(inputs)).clamp(0, 1) if scale == 1 else inputs
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(2):
        optimizer.zero_grad()
        loss = F.l1_loss(model.train()(inputs), target)
        assert torch.isfinite(loss)
        loss.backward()
        optimizer.step()
    assert model(inputs).shape == target.shape
    assert any(not torch.equal(old, new) for old, new in zip(before, model.parameters()))


@pytest.mark.parametrize("name", sorted([*SMALL, *OLDER_SMALL]))
def test_model_trains_saves_loads_tiles_exports_and_runs_in_bf16(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    torch.manual_seed(0)
    spec = small_spec(name)
    model = MODELS.build(spec)
    contract = contract_of(model)
    train_two_steps(model, contract.scale)

    path = tmp_path / "model.safetensors"
    save_model(path, model, {"model": spec, "scale": contract.scale, "task": contract.task})
    loaded = load_model(path)
    image = photo(48, 64)  # multiples of every size_multiple (16, 8)
    with torch.no_grad():
        whole = model.eval()(image)
        assert torch.equal(loaded(image), whole)

    if name in SMALL:
        descriptor = spandrel.ModelLoader().load_from_file(path)
        assert descriptor.architecture.id == SMALL[name][1] and descriptor.scale == contract.scale
        with torch.no_grad():
            assert torch.allclose(descriptor.model.eval()(image), whole, atol=1e-5)
    else:
        with pytest.raises(spandrel.UnsupportedModelError):
            spandrel.ModelLoader().load_from_file(path)

    untiled = forward_tiled(loaded, image, scale=contract.scale, tile=None)
    difference = float((forward_tiled(loaded, image, scale=contract.scale, tile=16) - untiled).abs().max())
    assert difference <= (1e-4 if contract.exact_tiling else INEXACT_TILING_BOUND)

    assert export_tool.rewrites_its_weights(loaded, image) == (name in REWRITES_ITS_WEIGHTS)
    if name in EXPORT_TWINS:
        assert layers(MODELS.build(small_spec(EXPORT_TWINS[name]))) == layers(model)
    else:
        assert export_tool.main([str(path), "--onnx", str(tmp_path / "model.onnx")]) == 0
        assert "onnxruntime matches PyTorch" in capsys.readouterr().out

    if "auto" in machine_numerics() and contract.supports_bfloat16:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            assert torch.isfinite(loaded(image)).all()
