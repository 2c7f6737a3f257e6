"""Export a trained model to ONNX: ``python tools/export.py MODEL.safetensors --onnx model.onnx``.

The ONNX graph takes ``image`` (N, 3, H, W) float32 in [0, 1] with dynamic batch, height and width
(H and W in multiples of the model contract's ``size_multiple``, as every consumer pads them) and
returns ``output`` (N, 3, scale*H, scale*W), the network's raw values (clamp them to [0, 1] before
saving). The model file's metadata (model spec, scale, task) is kept under the ONNX metadata key
``sr_toolkit``. Afterwards the file is run in onnxruntime on a random input of another batch and size
and compared with PyTorch (``--no-check`` skips that). Needs ``pip install "sr-toolkit[onnx]"`` (onnx,
onnxscript and onnxruntime) and torch 2.6 or newer (its torch.export-based exporter).

How the graph is traced: by torch.export in strict mode (TorchDynamo), which keeps sizes symbolic where
the window-attention models compute them in Python (SwinIR's, HAT's and DAT's ``int(windows.shape[0] /
...)``, which the non-strict tracer turns into the example's batch size: a graph that gives wrong pixels
at any other batch); where strict mode cannot trace a model, by the ONNX exporter's own (non-strict)
capture. A model whose forward gives its own weights new tensors (SPAN recomputes its inference
convolution with ``weight.data = ...`` on every call) cannot go through torch.export at all (torch 2.14
crashes the interpreter on it), so it is traced by the TorchScript exporter, which records the weights
the call computed. Any model that one of these can trace exports, whatever its ``forward`` calls its
input. A model none can trace (data-dependent control flow, an operator without an ONNX translation)
gets one ``error:`` line naming the model and the reason, and exit code 2; the .onnx file is then not
written. Exit code 1: onnxruntime's output differs from PyTorch's, or onnxruntime cannot run it.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import sys
import warnings
from pathlib import Path
from typing import Any

import torch

from sr_toolkit.commands.exit_codes import FAILED, OK, CommandFailed, exit_status
from sr_toolkit.core.atomic import atomic_path
from sr_toolkit.core.checkpoint import METADATA_KEY
from sr_toolkit.core.errors import SrToolkitError, first_line
from sr_toolkit.core.model_contract import contract_of
from sr_toolkit.core.model_file import load_model
from sr_toolkit.inference.tiling import round_up

TOLERANCE = 1e-4
"""Largest difference between onnxruntime's and PyTorch's outputs that the check accepts."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="a model.safetensors written by tools/train.py")
    parser.add_argument("--onnx", type=Path, required=True, help="the .onnx file to write")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the exporter's)")
    parser.add_argument("--no-check", action="store_true", help="do not compare onnxruntime with PyTorch")
    return parser.parse_args(argv)


def example_input(model: torch.nn.Module, batch: int, rows: int, cols: int) -> torch.Tensor:
    """A random (batch, 3, H, W) input of ``rows`` x ``cols`` units of 16 pixels (rounded up to a
    multiple of the model's size_multiple)."""
    unit = round_up(16, contract_of(model).size_multiple)
    return torch.rand(batch, 3, rows * unit, cols * unit, generator=torch.Generator().manual_seed(0))


EXPORT_EXAMPLE = (2, 5, 7)
"""The batch, rows and columns (:func:`example_input`) the graph is traced at: a batch above 1 (a tracer
takes a size of 1 for a constant) and sizes no model compares its input with (SwinIR compares it with the
patch size it was built for, 48 or 64; a trace follows the branch its example takes)."""

CHECK_EXAMPLE = (1, 3, 2)
"""The batch, rows and columns onnxruntime is checked at: all three differ from :data:`EXPORT_EXAMPLE`'s, so
a size the tracer took for a constant shows."""


def dynamic_dims(model: torch.nn.Module) -> dict[int, Any]:
    """torch.export's dimensions for the input: any batch; height and width in multiples of the model's
    ``size_multiple`` (a window-attention model pads to them behind a Python ``if``, which a trace fixes)."""
    multiple = contract_of(model).size_multiple
    batch = torch.export.Dim("batch")
    if multiple == 1:
        return {0: batch, 2: torch.export.Dim("height"), 3: torch.export.Dim("width")}
    return {0: batch, 2: multiple * torch.export.Dim("rows"), 3: multiple * torch.export.Dim("columns")}


def rewrites_its_weights(model: torch.nn.Module, image: torch.Tensor) -> bool:
    """Whether calling ``model`` on ``image`` gives any of its parameters or buffers a new tensor
    (``weight.data = ...``, as SPAN's forward does to recompute its inference convolution)."""
    tensors = [*model.parameters(), *model.buffers()]
    storages = [tensor.untyped_storage() for tensor in tensors]  # held, so no new tensor can take their address
    with torch.no_grad():
        model(image)
    return any(tensor.untyped_storage().data_ptr() != old.data_ptr() for tensor, old in zip(tensors, storages))


def strict_program(model: torch.nn.Module, example: torch.Tensor) -> torch.export.ExportedProgram | None:
    """``model`` traced by torch.export in strict mode with :func:`dynamic_dims`, or None where strict
    mode cannot trace it (TorchDynamo refuses a custom autograd function's deprecated API in OmniSR, or
    a guard it cannot prove, like EDSR's bicubic ``scale_factor``)."""
    try:
        return torch.export.export(model, (example,), dynamic_shapes=(dynamic_dims(model),), strict=True)
    except Exception:  # noqa: BLE001 (TorchDynamo raises many kinds; the exporter's own capture comes next)
        return None


def write_graph(model: torch.nn.Module, path: Path, opset: int | None) -> None:
    """Trace ``model`` at :data:`EXPORT_EXAMPLE` and write its graph to ``path``: by the TorchScript exporter
    when its forward rewrites its weights, else from :func:`strict_program`, else by the ONNX exporter's own
    capture (the module's docstring says why)."""
    example = example_input(model, *EXPORT_EXAMPLE)
    if rewrites_its_weights(model, example_input(model, *CHECK_EXAMPLE)):
        output_axes = {0: "batch", 2: "output_height", 3: "output_width"}
        axes = {"image": {0: "batch", 2: "height", 3: "width"}, "output": output_axes}
        with warnings.catch_warnings():  # that it is deprecated: it serves only what torch.export cannot trace
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                model,
                (example,),
                str(path),
                input_names=["image"],
                output_names=["output"],
                dynamic_axes=axes,
                opset_version=opset,
                dynamo=False,
            )
        return
    program = strict_program(model, example)
    torch.onnx.export(
        model if program is None else program,
        (example,),
        str(path),
        input_names=["image"],
        output_names=["output"],
        dynamic_shapes=(dynamic_dims(model),) if program is None else None,
        opset_version=opset,
        dynamo=True,
        external_data=False,
    )


def export_onnx(model: torch.nn.Module, path: Path, opset: int | None = None) -> None:
    """Write ``model`` as one self-contained ONNX file with dynamic batch, height and width (see
    :func:`write_graph`), the model file's metadata under :data:`METADATA_KEY`.

    The input is given to the exporter by position (its dynamic dimensions too), so the name the
    model's ``forward`` gives it does not matter; the ONNX input is named ``image`` all the same. The
    file is written atomically: a failed export leaves none. Raises whatever the exporter raises.
    """
    import onnx

    with atomic_path(path) as temporary:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            # the exporters narrate their passes, and dump graphs to stderr when tracing fails
            write_graph(model, temporary, opset)
        graph = onnx.load(str(temporary))
        contract = contract_of(model)
        info = {"model": contract.spec, "scale": contract.scale, "task": contract.task}
        onnx.helper.set_model_props(graph, {METADATA_KEY: json.dumps(info)})
        onnx.save(graph, str(temporary))


def failure_reason(exc: BaseException) -> str:
    """One line saying why ``exc`` happened: the first line of its innermost cause (the exporter wraps
    torch.export's error in advice of its own), without terminal colour codes."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    line = re.sub(r"\x1b\[[0-9;]*m", "", first_line(exc)).strip()
    return f"{type(exc).__name__}: {line}" if line != type(exc).__name__ else line


def onnx_difference(model: torch.nn.Module, path: Path, inputs: torch.Tensor) -> float:
    """Largest absolute difference between onnxruntime's output for ``inputs`` and PyTorch's."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(["output"], {"image": inputs.numpy()})
    with torch.no_grad():
        expected = model(inputs)
    return float((torch.from_numpy(got) - expected).abs().max())


@exit_status
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if tuple(int(part) for part in torch.__version__.split(".")[:2]) < (2, 6):
        raise SrToolkitError(f"ONNX export needs torch 2.6 or newer, this is {torch.__version__}")
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as exc:
        raise SrToolkitError(f"ONNX export needs onnx and onnxscript ({exc}); pip install 'sr-toolkit[onnx]'") from exc
    model = load_model(args.model)
    contract = contract_of(model)
    name = f"model '{contract.architecture}' of {args.model}"
    try:
        export_onnx(model, args.onnx, args.opset)
    except Exception as exc:
        raise SrToolkitError(f"cannot export {name} to ONNX: {failure_reason(exc)}") from exc
    print(
        f"wrote {args.onnx}: input 'image' (N, 3, H, W), output 'output' (N, 3, {contract.scale}H, {contract.scale}W)"
    )
    if args.no_check:
        return OK
    inputs = example_input(model, *CHECK_EXAMPLE)
    try:
        difference = onnx_difference(model, args.onnx, inputs)
    except ImportError:
        print("not checked: onnxruntime is not installed")
        return OK
    except Exception as exc:
        raise CommandFailed(f"onnxruntime cannot run the export of {name}: {failure_reason(exc)}") from exc
    verdict = "matches" if difference <= TOLERANCE else "DOES NOT match"
    print(
        f"onnxruntime {verdict} PyTorch on a {'x'.join(map(str, inputs.shape))} input: "
        f"largest difference {difference:.2e} (tolerance {TOLERANCE:.0e})"
    )
    return OK if difference <= TOLERANCE else FAILED


if __name__ == "__main__":
    sys.exit(main())
