"""tools/export.py: the ONNX file runs in onnxruntime at any batch, height and width, and matches PyTorch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sr_toolkit.config.recipe import load_recipe
from sr_toolkit.core.checkpoint import METADATA_KEY
from sr_toolkit.core.model_contract import contract_of
from sr_toolkit.core.model_file import load_model, save_model
from sr_toolkit.core.registry import MODELS

onnx = pytest.importorskip("onnx")
onnxruntime = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from sr_toolkit.commands import export as export_tool  # noqa: E402 (after the skips)

ROOT = Path(__file__).resolve().parents[1]

MODELS_TO_EXPORT = {
    # the report's model as shipped: bilinear (align_corners) upsampling, BatchNorm, PReLU, dropout
    "resnet_x4": "scale: 4\nmodel: {type: resnet_x4, channels: 8, blocks: 1}\ndegradation: [{type: downscale}]\n",
    # pixel shuffle and a bicubic global skip
    "edsr": "scale: 2\nmodel: {type: edsr, channels: 8, blocks: 1}\ndegradation: [{type: downscale}]\n",
    # restoration: transposed convs, max-pooling, sizes in multiples of 16
    "conv_autoencoder": "task: restore\nmodel: {type: conv_autoencoder}\ndegradation: [{type: gaussian_noise}]\n",
}


def model_file(folder: Path, recipe_text: str) -> Path:
    (folder / "recipe.yaml").write_text(recipe_text)
    recipe = load_recipe(folder / "recipe.yaml")
    model = MODELS.build(recipe["model"])
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # random weights (a zeroed tail would hide the network) and BN statistics
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point():
                noise = torch.rand(tensor.shape, generator=generator)
                tensor.copy_(0.5 + noise if name.endswith("running_var") else 0.2 * (noise - 0.5))
    save_model(folder / "model.safetensors", model, recipe)
    return folder / "model.safetensors"


@pytest.mark.parametrize("name", list(MODELS_TO_EXPORT))
def test_onnx_matches_pytorch_at_any_size(name: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = model_file(tmp_path, MODELS_TO_EXPORT[name])
    assert export_tool.main([str(path), "--onnx", str(tmp_path / "out" / "model.onnx")]) == 0
    assert "onnxruntime matches PyTorch" in capsys.readouterr().out
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert files == ["model.onnx"]  # weights inside, no external data file

    model = load_model(path)
    graph = onnx.load(str(tmp_path / "out" / "model.onnx"))
    info = json.loads({prop.key: prop.value for prop in graph.metadata_props}[METADATA_KEY])
    contract = contract_of(model)
    assert info == {"model": contract.spec, "scale": contract.scale, "task": contract.task}
    session = onnxruntime.InferenceSession(str(tmp_path / "out" / "model.onnx"), providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(1)
    for shape in [(1, 3, 32, 48), (3, 3, 80, 16)]:
        x = torch.rand(shape, generator=generator)
        (got,) = session.run(["output"], {"image": x.numpy()})
        with torch.no_grad():
            expected = model(x).numpy()
        scale = info["scale"]
        assert got.shape == expected.shape == (shape[0], 3, shape[2] * scale, shape[3] * scale)
        assert np.abs(got - expected).max() < 1e-4
        assert expected.std() > 1e-3


def test_a_bad_model_file_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"nonsense")
    assert export_tool.main([str(tmp_path / "model.safetensors"), "--onnx", str(tmp_path / "m.onnx")]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error:") and "model.safetensors" in line
    assert not (tmp_path / "m.onnx").exists()


class TinyESPCN(torch.nn.Module):
    """README's plugin example ("Writing a plugin"), whose forward calls its input ``x``."""

    def __init__(self, scale: int = 4, channels: int = 32) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(3, channels, 5, padding=2),
            torch.nn.Tanh(),
            torch.nn.Conv2d(channels, channels, 3, padding=1),
            torch.nn.Tanh(),
            torch.nn.Conv2d(channels, 3 * scale**2, 3, padding=1),
            torch.nn.PixelShuffle(scale),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class BrightnessSwitch(TinyESPCN):
    """A plugin whose forward branches on the image's values: torch.export cannot trace that."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) if x.mean() > 0.5 else self.body(1 - x)


class Reparameterised(torch.nn.Module):
    """A plugin that trains one convolution and, like SPAN, computes the one it runs in eval mode from it on every
    call, giving that one's weights new tensors (``weight.data = ...``): torch.export cannot trace that."""

    def __init__(self, scale: int = 4, channels: int = 32) -> None:
        super().__init__()
        self.trained = torch.nn.Conv2d(3, channels, 3, padding=1)
        self.inference = torch.nn.Conv2d(3, channels, 3, padding=1)
        self.tail = torch.nn.Sequential(
            torch.nn.Conv2d(channels, 3 * scale**2, 3, padding=1), torch.nn.PixelShuffle(scale)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return self.tail(self.trained(x))
        self.inference.weight.data = self.trained.weight.detach().clone()
        self.inference.bias.data = self.trained.bias.detach().clone()
        return self.tail(self.inference(x))


def plugin_file(folder: Path, name: str, module: type[torch.nn.Module]) -> Path:
    """A model file for a plugin registered here as ``name`` (x2, 8 channels)."""
    MODELS.register(name)(module)
    return model_file(
        folder, f"scale: 2\nmodel: {{type: {name}, scale: 2, channels: 8}}\ndegradation: [{{type: downscale}}]\n"
    )


def test_a_plugin_exports_whatever_it_calls_its_input(
    tmp_path: Path, clean_registries: None, capsys: pytest.CaptureFixture
) -> None:
    path = plugin_file(tmp_path, "tiny_espcn", TinyESPCN)
    assert export_tool.main([str(path), "--onnx", str(tmp_path / "tiny.onnx")]) == 0
    out, err = capsys.readouterr()
    assert "onnxruntime matches PyTorch on a 1x3x48x32 input" in out and err == ""
    session = onnxruntime.InferenceSession(str(tmp_path / "tiny.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image"]
    assert [o.name for o in session.get_outputs()] == ["output"]
    x = torch.rand(2, 3, 24, 40, generator=torch.Generator().manual_seed(2))
    (got,) = session.run(["output"], {"image": x.numpy()})
    with torch.no_grad():
        expected = load_model(path)(x).numpy()
    assert got.shape == expected.shape == (2, 3, 48, 80)
    assert np.abs(got - expected).max() < 1e-4 and expected.std() > 1e-3


def test_a_model_that_rewrites_its_weights_exports_through_torchscript(
    tmp_path: Path, clean_registries: None, capsys: pytest.CaptureFixture
) -> None:
    path = plugin_file(tmp_path, "reparameterised", Reparameterised)
    model = load_model(path)
    image = torch.rand(1, 3, 16, 24)
    assert export_tool.rewrites_its_weights(model, image)
    (tmp_path / "tiny").mkdir()
    assert not export_tool.rewrites_its_weights(
        load_model(plugin_file(tmp_path / "tiny", "tiny_espcn", TinyESPCN)), image
    )

    assert export_tool.main([str(path), "--onnx", str(tmp_path / "m.onnx")]) == 0  # torch.export would crash here
    assert "onnxruntime matches PyTorch on a 1x3x48x32 input" in capsys.readouterr().out
    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    x = torch.rand(3, 3, 24, 40, generator=torch.Generator().manual_seed(2))
    (got,) = session.run(["output"], {"image": x.numpy()})
    with torch.no_grad():
        expected = model(x).numpy()
    assert got.shape == expected.shape == (3, 3, 48, 80)
    assert np.abs(got - expected).max() < 1e-4 and expected.std() > 1e-3


def test_a_model_that_cannot_be_traced_is_one_error_line(
    tmp_path: Path, clean_registries: None, capsys: pytest.CaptureFixture
) -> None:
    path = plugin_file(tmp_path, "brightness_switch", BrightnessSwitch)
    assert export_tool.main([str(path), "--onnx", str(tmp_path / "out" / "m.onnx")]) == 2
    out, err = capsys.readouterr()
    (line,) = err.strip().splitlines()
    assert out == ""
    assert line.startswith(f"error: cannot export model 'brightness_switch' of {path} to ONNX: ")
    assert "Could not guard on data-dependent expression" in line  # torch.export's reason, not its advice
    assert "\x1b" not in line
    assert list((tmp_path / "out").iterdir()) == []  # nothing written, not even a temporary file


def test_failure_reason_is_the_innermost_cause_without_colours() -> None:
    try:
        try:
            raise ValueError("\x1b[96mreal\x1b[0m reason\nmore detail")
        except ValueError as inner:
            raise RuntimeError("Failed to export. Next steps:\n- advice") from inner
    except RuntimeError as outer:  # pytest.raises would not keep the chain this test is about
        assert export_tool.failure_reason(outer) == "ValueError: real reason"  # noqa: PT017
    assert export_tool.failure_reason(KeyError()) == "KeyError"


def test_onnxruntime_failing_to_run_the_file_is_one_error_line(
    tmp_path: Path, clean_registries: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    def refuse(*args: object) -> float:
        raise RuntimeError(
            "[ONNXRuntimeError] : 9 : NOT_IMPLEMENTED : Could not find an implementation\nfor ConvTranspose(11) node"
        )

    path = plugin_file(tmp_path, "tiny_espcn", TinyESPCN)
    monkeypatch.setattr(export_tool, "onnx_difference", refuse)
    assert export_tool.main([str(path), "--onnx", str(tmp_path / "tiny.onnx")]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == (
        f"error: onnxruntime cannot run the export of model 'tiny_espcn' of {path}: RuntimeError: "
        "[ONNXRuntimeError] : 9 : NOT_IMPLEMENTED : Could not find an implementation"
    )
