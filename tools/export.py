"""Export a trained model to ONNX: ``python tools/export.py MODEL.safetensors --onnx model.onnx``.

The ONNX graph takes ``image`` (N, 3, H, W) float32 in [0, 1] with dynamic batch, height and width
and returns ``output`` (N, 3, scale*H, scale*W), the network's raw values (clamp them to [0, 1] before
saving). The model file's metadata (model spec, scale, task) is kept under the ONNX metadata key
``sr_toolkit``. Afterwards the file is run in onnxruntime on a random input and compared with
PyTorch (``--no-check`` skips that). Needs ``pip install "sr-toolkit[onnx]"`` (onnx, onnxscript and
onnxruntime) and torch 2.6 or newer (its torch.export-based exporter).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from pathlib import Path

import torch

from sr_toolkit.checkpoint import METADATA_KEY
from sr_toolkit.errors import SrToolkitError
from sr_toolkit.model_file import load_model
from sr_toolkit.tiling import round_up, size_multiple

TOLERANCE = 1e-4
"""Largest difference between onnxruntime's and PyTorch's outputs that the check accepts."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", type=Path, help="a model.safetensors written by tools/train.py")
    parser.add_argument("--onnx", type=Path, required=True, help="the .onnx file to write")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the exporter's)")
    parser.add_argument("--no-check", action="store_true", help="do not compare onnxruntime with PyTorch")
    return parser.parse_args(argv)


def example_input(model: torch.nn.Module, batch: int, rows: int, cols: int) -> torch.Tensor:
    """A random (batch, 3, H, W) input of ``rows`` x ``cols`` units of 16 pixels (rounded up to a
    multiple of the model's size_multiple)."""
    unit = round_up(16, size_multiple(model))
    return torch.rand(batch, 3, rows * unit, cols * unit, generator=torch.Generator().manual_seed(0))


def export_onnx(model: torch.nn.Module, path: Path, opset: int | None = None) -> None:
    """Write ``model`` as one self-contained ONNX file with dynamic batch, height and width."""
    import onnx

    dims = {0: torch.export.Dim("batch"), 2: torch.export.Dim("height"), 3: torch.export.Dim("width")}
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.redirect_stdout(io.StringIO()):  # the exporter narrates its passes
        torch.onnx.export(model, (example_input(model, 2, 4, 3),), str(path), input_names=["image"],
                          output_names=["output"], dynamic_shapes={"image": dims}, opset_version=opset,
                          dynamo=True, external_data=False)
    graph = onnx.load(str(path))
    info = {key: value for key, value in model.sr_info.items() if key in ("model", "scale", "task")}
    onnx.helper.set_model_props(graph, {METADATA_KEY: json.dumps(info)})
    onnx.save(graph, str(path))


def onnx_difference(model: torch.nn.Module, path: Path, inputs: torch.Tensor) -> float:
    """Largest absolute difference between onnxruntime's output for ``inputs`` and PyTorch's."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(["output"], {"image": inputs.numpy()})
    with torch.no_grad():
        expected = model(inputs)
    return float((torch.from_numpy(got) - expected).abs().max())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if tuple(int(part) for part in torch.__version__.split(".")[:2]) < (2, 6):
        print(f"error: ONNX export needs torch 2.6 or newer, this is {torch.__version__}", file=sys.stderr)
        return 2
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as exc:
        print(f"error: ONNX export needs onnx and onnxscript ({exc}); pip install 'sr-toolkit[onnx]'",
              file=sys.stderr)
        return 2
    try:
        model = load_model(args.model)
        export_onnx(model, args.onnx, args.opset)
    except SrToolkitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.onnx}: input 'image' (N, 3, H, W), output 'output' (N, 3, "
          f"{model.sr_info['scale']}H, {model.sr_info['scale']}W)")
    if args.no_check:
        return 0
    inputs = example_input(model, 1, 3, 2)  # another size than the export's example
    try:
        difference = onnx_difference(model, args.onnx, inputs)
    except ImportError:
        print("not checked: onnxruntime is not installed")
        return 0
    verdict = "matches" if difference <= TOLERANCE else "DOES NOT match"
    print(f"onnxruntime {verdict} PyTorch on a {'x'.join(map(str, inputs.shape))} input: "
          f"largest difference {difference:.2e} (tolerance {TOLERANCE:.0e})")
    return 0 if difference <= TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(main())
