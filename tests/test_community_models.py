"""Community model files (a spandrel class with random weights, saved as its project does) through upscale,
eval, export, ``sr_toolkit.load_model`` and ``model.init_from``; files spandrel cannot use give one line."""

from __future__ import annotations

import json
import os
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from spandrel.architectures.Compact.__arch.SRVGG import SRVGGNetCompact
from spandrel.architectures.ESRGAN.__arch.RRDB import RRDBNet

import sr_toolkit
from sr_toolkit.commands import eval as eval_cli
from sr_toolkit.commands import export as export_tool
from sr_toolkit.commands import upscale as upscale_tool
from sr_toolkit.config.recipe import load_recipe
from sr_toolkit.core.checkpoint import CheckpointError
from sr_toolkit.core.community_models import CommunityModelError
from sr_toolkit.core.errors import RecipeError
from sr_toolkit.core.model_contract import contract_of
from sr_toolkit.core.model_file import load_model
from sr_toolkit.training.engine import Trainer


def random_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    with torch.no_grad():
        for param in model.parameters():
            param.uniform_(-0.1, 0.1)
    return model.state_dict()


def compact_x2() -> SRVGGNetCompact:
    return SRVGGNetCompact(num_feat=8, num_conv=2, upscale=2)


def esrgan_x4() -> RRDBNet:
    return RRDBNet(num_filters=8, num_blocks=1, scale=4)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real-ESRGAN's layout for Compact (``{"params": state}``), ESRGAN's bare state dict, and safetensors."""
    folder = tmp_path_factory.mktemp("community")
    compact, esrgan = random_weights(compact_x2()), random_weights(esrgan_x4())
    paths = {
        "compact.pth": folder / "2x-TinyCompact.pth",
        "esrgan.pth": folder / "4x-TinyESRGAN.pth",
        "compact.safetensors": folder / "2x-TinyCompactSafe.safetensors",
        "compact.ckpt": folder / "2x-TinyCompactEma.ckpt",
        "esrgan.pt": folder / "4x-TinyESRGAN.pt",
    }
    torch.save({"params": compact}, paths["compact.pth"])
    torch.save({"params_ema": compact, "iter": 5}, paths["compact.ckpt"])
    torch.save(esrgan, paths["esrgan.pth"])
    torch.save({"module." + key: value for key, value in esrgan.items()}, paths["esrgan.pt"])
    save_file(compact, str(paths["compact.safetensors"]))
    return paths


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    pixels = np.random.default_rng(0).integers(0, 256, (24, 20, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(folder / "photo.png")
    return folder


@pytest.mark.parametrize(
    ("name", "architecture", "scale", "reference"),
    [
        ("compact.pth", "RealESRGAN Compact", 2, compact_x2),
        ("compact.safetensors", "RealESRGAN Compact", 2, compact_x2),
        ("compact.ckpt", "RealESRGAN Compact", 2, compact_x2),
        ("esrgan.pth", "ESRGAN", 4, esrgan_x4),
        ("esrgan.pt", "ESRGAN", 4, esrgan_x4),
    ],
)
def test_load_model_gives_the_network_with_its_contract(
    files: dict[str, Path], name: str, architecture: str, scale: int, reference
) -> None:
    model = sr_toolkit.load_model(files[name])
    contract = contract_of(model)
    assert (contract.architecture, contract.scale, contract.task) == (architecture, scale, "upscale")
    expected = reference()
    expected.load_state_dict(random_weights(reference()))
    x = torch.rand(1, 3, 12, 10)
    with torch.no_grad():
        assert torch.equal(model(x), expected.eval()(x))


@pytest.mark.parametrize(
    ("name", "architecture", "scale"), [("compact.pth", "RealESRGAN Compact", 2), ("esrgan.pth", "ESRGAN", 4)]
)
def test_upscale_names_the_architecture_and_scales(
    files: dict[str, Path], photo_folder: Path, tmp_path: Path, capsys, name: str, architecture: str, scale: int
) -> None:
    argv = [str(files[name]), str(photo_folder / "photo.png"), "--out", str(tmp_path)]
    assert upscale_tool.main(argv) == 0
    first = capsys.readouterr().err.splitlines()[0]
    assert first == f"{files[name]}: {architecture}, upscale x{scale}, on cpu"
    assert Image.open(tmp_path / "photo.png").size == (20 * scale, 24 * scale)


def test_eval_scores_community_files(files: dict[str, Path], photo_folder: Path, tmp_path: Path, capsys) -> None:
    argv = ["--data", str(photo_folder), "--models", str(files["compact.pth"]), str(files["compact.safetensors"])]
    argv += ["--metrics", "psnr", "--no-images", "--out", str(tmp_path)]
    assert eval_cli.main(argv) == 0
    assert capsys.readouterr().out.splitlines()[:2] == [
        f"model 2x-TinyCompact: {files['compact.pth']}: RealESRGAN Compact, upscale x2",
        f"model 2x-TinyCompactSafe: {files['compact.safetensors']}: RealESRGAN Compact, upscale x2",
    ]
    results = json.loads((tmp_path / "results.json").read_text())
    scores = [entry["mean"]["psnr"] for name, entry in results["methods"].items() if "TinyCompact" in name]
    assert len(scores) == 2 and scores[0] == scores[1] and np.isfinite(scores[0])


def test_export_matches_onnxruntime(files: dict[str, Path], tmp_path: Path, capsys) -> None:
    pytest.importorskip("onnxruntime")
    assert export_tool.main([str(files["compact.pth"]), "--onnx", str(tmp_path / "m.onnx")]) == 0
    out = capsys.readouterr().out
    assert "(N, 3, 2H, 2W)" in out and "onnxruntime matches PyTorch" in out


class Payload:
    """A pickle whose loading would create a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.filterwarnings("ignore:`torch.jit.trace:FutureWarning")
def test_pickled_code_never_runs(tmp_path: Path, capsys) -> None:
    marker = tmp_path / "pwned"
    plain, zipped, scripted = tmp_path / "4x-Evil.pth", tmp_path / "4x-EvilZip.pth", tmp_path / "2x-Scripted.pt"
    plain.write_bytes(pickle.dumps({"params": Payload(marker)}, protocol=2))
    torch.save({"params": Payload(marker)}, zipped)
    torch.jit.trace(compact_x2(), torch.rand(1, 3, 8, 8)).save(str(scripted))  # runs its own code on load
    reasons = {
        plain: "refused: its pickle calls posix.system, and loading never runs pickled code",
        zipped: "refused: its pickle calls posix.system, and loading never runs pickled code",
        scripted: "refused: a TorchScript archive runs its own code when loaded",
    }
    for bad, reason in reasons.items():
        with pytest.raises(CommunityModelError, match=re.escape(f"{bad}: {reason}")):
            sr_toolkit.load_model(bad)
        assert upscale_tool.main([str(bad), str(tmp_path), "--out", str(tmp_path / "out")]) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line.startswith(f"error: {bad}: {reason}")
    assert not marker.exists()


def test_an_unidentifiable_file_is_one_line(tmp_path: Path, capsys) -> None:
    path = tmp_path / "mystery.pth"
    torch.save({"conv.weight": torch.zeros(3, 3, 3, 3)}, path)
    with pytest.raises(CommunityModelError, match="spandrel does not recognise"):
        sr_toolkit.load_model(path)
    assert export_tool.main([str(path), "--onnx", str(tmp_path / "m.onnx")]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == f"error: {path}: spandrel does not recognise this model's architecture"


TINY_COMPACT_PLUGIN = '''
from spandrel.architectures.Compact.__arch.SRVGG import SRVGGNetCompact

from sr_toolkit.core.registry import MODELS


@MODELS.register("tiny_compact")
def tiny_compact(scale: int = 2, channels: int = 8, convs: int = 2) -> SRVGGNetCompact:
    """spandrel's SRVGGNetCompact at test sizes."""
    return SRVGGNetCompact(num_feat=channels, num_conv=convs, upscale=scale)
'''

FINE_TUNE_RECIPE = """
scale: 2
model: {{type: tiny_compact, init_from: {source}}}
degradation: [{{type: downscale}}]
data:
  train: {{type: image_folder, root: {photos}, patch_size: 16}}
  val: null
  batch_size: 2
train: {{max_steps: 2, log_every: 1, checkpoint_every: 1, mixed_precision: "no"}}
"""


def fine_tune_recipe(tmp_path: Path, photo_folder: Path, source: Path) -> Path:
    (tmp_path / "tiny_compact.py").write_text(TINY_COMPACT_PLUGIN)
    recipe = tmp_path / "fine_tune.yaml"
    recipe.write_text(
        FINE_TUNE_RECIPE.format(source=source, photos=photo_folder)
        + f"plugins: [{tmp_path / 'tiny_compact.py'}]\noutput_dir: {tmp_path / 'run'}\n"
    )
    return recipe


@pytest.mark.parametrize("name", ["compact.pth", "compact.safetensors"])
def test_model_init_from_starts_training_from_a_community_file(
    files: dict[str, Path], photo_folder: Path, tmp_path: Path, clean_registries: None, name: str
) -> None:
    recipe = load_recipe(fine_tune_recipe(tmp_path, photo_folder, files[name]))
    assert recipe["model"]["init_from"] == str(files[name])
    trainer = Trainer(recipe)
    started = {key: value.clone() for key, value in trainer.model.state_dict().items()}
    assert started.keys() == random_weights(compact_x2()).keys()
    assert all(torch.equal(started[key], value) for key, value in random_weights(compact_x2()).items())
    trainer.fit()
    assert trainer.state.step == 2
    trained = load_model(tmp_path / "run" / "model.safetensors")
    assert contract_of(trained).spec == {"type": "tiny_compact", "scale": 2, "channels": 8, "convs": 2}
    assert any(not torch.equal(started[key], value) for key, value in trained.state_dict().items())


def test_model_init_from_is_not_applied_on_resume(
    files: dict[str, Path], photo_folder: Path, tmp_path: Path, clean_registries: None
) -> None:
    """A resumed run (from its saved recipe, which names the file) goes on bit-exactly from its checkpoint."""
    path = fine_tune_recipe(tmp_path, photo_folder, files["compact.pth"])
    constant = "scheduler.type=constant"  # a cosine schedule's shape depends on max_steps
    whole = Trainer(load_recipe(path, [f"output_dir={tmp_path / 'whole'}", constant]))
    whole.fit()
    Trainer(load_recipe(path, ["train.max_steps=1", constant])).fit()
    resumed = Trainer(load_recipe(tmp_path / "run" / "recipe.yaml", ["train.max_steps=2"]), resume=True)
    assert resumed.recipe["model"]["init_from"] == str(files["compact.pth"])
    resumed.fit()
    expected = whole.model.state_dict()
    assert all(torch.equal(value, expected[key]) for key, value in resumed.model.state_dict().items())


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["model.channels=16"],
            r"^model.init_from: .*2x-TinyCompact.pth \(RealESRGAN Compact x2\): does not fit the model: "
            r"shapes differ \(\d+\): body.0.weight \(8, 3, 3, 3\) in the file, \(16, 3, 3, 3\) in the model",
        ),
        (["model.convs=3"], r"^model.init_from: .*\(RealESRGAN Compact x2\): does not fit the model: .*missing"),
        (["scale=4"], r"^model.init_from: .*\(RealESRGAN Compact x2\): a x2 model, this recipe trains scale 4$"),
    ],
)
def test_a_community_file_that_does_not_fit_is_one_line(
    files: dict[str, Path],
    photo_folder: Path,
    tmp_path: Path,
    clean_registries: None,
    overrides: list[str],
    message: str,
) -> None:
    recipe = load_recipe(fine_tune_recipe(tmp_path, photo_folder, files["compact.pth"]), overrides)
    with pytest.raises(CheckpointError, match=message) as caught:
        Trainer(recipe)
    assert "\n" not in str(caught.value) and not (tmp_path / "run").exists()


@pytest.mark.parametrize("key", ["model.init_from", "gan.init_from"])
def test_a_missing_init_file_is_one_line_naming_the_key_before_anything_is_written(
    files: dict[str, Path], photo_folder: Path, tmp_path: Path, clean_registries: None, key: str
) -> None:
    overrides = ["model.init_from=null", f"{key}=no_such_run/model.safetensors"]
    if key == "gan.init_from":
        overrides += ["gan.discriminator.type=vgg_discriminator"]
    recipe = load_recipe(fine_tune_recipe(tmp_path, photo_folder, files["compact.pth"]), overrides)
    message = rf"^{key}: no_such_run/model.safetensors: no such file \(relative to the working folder .*\); train"
    with pytest.raises(CheckpointError, match=message) as caught:
        Trainer(recipe)
    assert "\n" not in str(caught.value) and not (tmp_path / "run").exists()


def test_a_fresh_run_logs_the_file_it_starts_from(
    files: dict[str, Path], photo_folder: Path, tmp_path: Path, clean_registries: None, caplog: pytest.LogCaptureFixture
) -> None:
    recipe = load_recipe(fine_tune_recipe(tmp_path, photo_folder, files["compact.pth"]))
    with caplog.at_level("INFO", logger="sr_toolkit"):
        Trainer(recipe)
    assert f"model initialised from model.init_from: {files['compact.pth']} (RealESRGAN Compact x2)" in caplog.text


def test_init_from_in_both_places_is_refused(
    files: dict[str, Path], photo_folder: Path, tmp_path: Path, clean_registries: None
) -> None:
    path = fine_tune_recipe(tmp_path, photo_folder, files["compact.pth"])
    with pytest.raises(RecipeError, match=r"model\.init_from and gan\.init_from both name a file"):
        load_recipe(path, [f"gan.init_from={files['compact.pth']}"])
