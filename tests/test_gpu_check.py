"""bench/gpu_check.py on the CPU (--quick), so the GPU check runs unchanged on the first CUDA machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from sr_toolkit.core.precision import Precision

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ("resnet_x4", "srresnet_x4", "edsr_x4", "srgan_x4")
EXPECTED = [
    *(f"train/{name}/{label}" for name in RECIPES for label in ("auto", "fp32")),
    "overhead/edsr_x4",
    "data/edsr_x4",
    "resume/edsr_x4",
    "upscale/edsr_x4",
    "upscale/srresnet_x4",
    "eval/set5",
    "estimate/edsr_x4",
]


def gpu_check(out: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str], dict[str, dict[str, Any]]]:
    """Run the check in a child process (one thread: these CPUs are shared) and read its JSON rows."""
    command = [
        sys.executable,
        str(ROOT / "bench" / "gpu_check.py"),
        "--device",
        "cpu",
        "--quick",
        "--out",
        str(out),
        *extra,
    ]
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    rows = json.loads((out / "gpu_check.json").read_text())["rows"]
    return done, {row["key"]: row for row in rows}


def numbers(row: dict[str, Any]) -> list[float]:
    return [v for v in row["values"].values() if isinstance(v, (int, float)) and not isinstance(v, bool)]


def test_quick_cpu_run_fills_every_row(tmp_path: Path) -> None:
    done, rows = gpu_check(tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert list(rows) == EXPECTED
    for key, row in rows.items():
        assert row["status"] == "ok" and row["error"] is None and numbers(row), (key, row)
        assert key in done.stdout  # the printed table
    for name in RECIPES:
        auto, fp32 = rows[f"train/{name}/auto"]["values"], rows[f"train/{name}/fp32"]["values"]
        assert auto["steps_per_s"] > 0 and auto["images_per_s"] == auto["steps_per_s"] * 2  # batch 2
        assert auto["step_gflop"] == fp32["step_gflop"] > 0 and fp32["precision"] == "fp32"
        assert auto["mfu_pct"] == "unknown"  # no peak for a CPU without --peak-tflops
    assert rows["data/edsr_x4"]["values"]["batches_on"] == "cpu"
    assert rows["data/edsr_x4"]["values"]["log"].startswith("data: decoded images held on cpu")
    resume = rows["resume/edsr_x4"]["values"]
    assert resume["exact"] is True and resume["exact_deterministic"] is True  # as the engine tests on CPU
    assert rows["overhead/edsr_x4"]["values"]["ratio"] > 0
    assert rows["upscale/edsr_x4"]["values"]["output_mp"] == 120 * 90 * 16 / 1e6
    assert rows["eval/set5"]["values"]["images"] == 5
    assert rows["estimate/edsr_x4"]["values"]["steps"] == 300_000


def test_a_failing_row_reports_its_error_and_the_others_complete(tmp_path: Path) -> None:
    done, rows = gpu_check(
        tmp_path, "--only", "train/edsr_x4/auto", "upscale", "eval", "--fail", "upscale/edsr_x4", "--peak-tflops", "0.5"
    )
    assert done.returncode == 1
    assert list(rows) == ["train/edsr_x4/auto", "upscale/edsr_x4", "upscale/srresnet_x4", "eval/set5"]
    failed = rows["upscale/edsr_x4"]
    assert failed["status"] == "error" and "deliberate failure" in failed["error"] and not failed["values"]
    assert "deliberate failure" in done.stdout
    for key in ("train/edsr_x4/auto", "upscale/srresnet_x4", "eval/set5"):
        assert rows[key]["status"] == "ok" and numbers(rows[key]), rows[key]
    train = rows["train/edsr_x4/auto"]["values"]
    assert train["peak_tflop_per_s"] == 0.5 and train["mfu_pct"] == 100 * train["tflop_per_s"] / 0.5


@pytest.mark.parametrize(
    ("gpu", "bf16", "fp32"),
    [
        ("NVIDIA H200", 989.0, 67.0),
        ("NVIDIA H100 80GB HBM3", 989.0, 67.0),
        ("NVIDIA H100 PCIe", 756.0, 51.0),
        ("NVIDIA A100-SXM4-80GB", 312.0, 19.5),
        ("NVIDIA L40S", 362.0, 91.6),
        ("NVIDIA L4", 121.0, 30.3),
        ("Tesla T4", None, None),
    ],
)
def test_peaks_by_gpu_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, gpu: str, bf16: float | None, fp32: float | None
) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    import gpu_check

    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: gpu)
    ctx = gpu_check.Context(gpu_check.parse_args(["--device", "cpu"]), gpu_check.QUICK, torch.device("cuda"), tmp_path)
    half, single = Precision("bf16", True, ""), Precision("no", False, "")
    assert [ctx.peak_tflops(p)[0] for p in (half, single)] == [bf16, fp32]
    ctx.args = gpu_check.parse_args(["--device", "cpu", "--peak-tflops", "100", "50"])
    assert [ctx.peak_tflops(p) for p in (half, single)] == [(100.0, "--peak-tflops"), (50.0, "--peak-tflops")]
