"""tools/eval.py end to end on real photos: values against scikit-image, inputs, models, errors."""

from __future__ import annotations

import csv
import html
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from sr_toolkit.commands import eval as eval_cli
from sr_toolkit.config.recipe import load_recipe
from sr_toolkit.core.model_file import save_model
from sr_toolkit.core.registry import DEGRADATIONS, MODELS
from sr_toolkit.core.resize import imresize, imresize_uint8
from sr_toolkit.data.degrade import build_pipeline
from sr_toolkit.evaluation import evaluate, metrics
from sr_toolkit.evaluation.evaluate import Evaluation, Settings, model_names
from sr_toolkit.evaluation.inputs import find_pairs, image_seed
from sr_toolkit.training import validation

ROOT = Path(__file__).resolve().parents[1]

PHOTOS = {  # name -> (photo, crop): small crops keep every run under a few seconds
    "astronaut.png": (data.astronaut, (slice(40, 234), slice(150, 410))),
    "coffee.png": (data.coffee, (slice(100, 270), slice(200, 423))),
    "camera.png": (data.camera, (slice(60, 230), slice(100, 321))),  # grayscale
}


def write_photos(folder: Path, names=tuple(PHOTOS)) -> dict[str, np.ndarray]:
    """Write crops of scikit-image's photos as PNG; return them as uint8 arrays by file name."""
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for name in names:
        photo, crop = PHOTOS[name]
        written[name] = np.ascontiguousarray(photo()[crop])
        Image.fromarray(written[name]).save(folder / name)
    return written


def run_cli(*args: str | Path) -> dict:
    """Run tools/eval.py in-process; return results.json."""
    argv = [str(arg) for arg in args]
    assert eval_cli.main(argv) == 0
    out = Path(argv[argv.index("--out") + 1])
    return json.loads((out / "results.json").read_text())


def saved(out: Path, image: str, method: str) -> np.ndarray:
    """The PNG the report saved for one method's output."""
    (path,) = (out / "images" / Path(image).stem).glob(f"*_{method}.png")
    return np.asarray(Image.open(path))


def matlab_y(image: np.ndarray) -> np.ndarray:
    """MATLAB rgb2ycbcr(uint8)(:, :, 1) in exact integer arithmetic; gray images unchanged."""
    if image.ndim == 2:
        return image
    numerator = image.astype(np.int64) @ np.array([65481, 128553, 24966])
    return (16 + (numerator + 127500) // 255000).astype(np.uint8)


def skimage_scores(output: np.ndarray, target: np.ndarray, border: int) -> tuple[float, float]:
    if border:
        output, target = output[border:-border, border:-border], target[border:-border, border:-border]
    ssim = structural_similarity(
        output,
        target,
        gaussian_weights=True,
        sigma=1.5,
        data_range=255,
        use_sample_covariance=False,
        channel_axis=2 if target.ndim == 3 else None,
    )
    return peak_signal_noise_ratio(target, output, data_range=255), ssim


def modcropped(image: np.ndarray, scale: int) -> np.ndarray:
    return image[: image.shape[0] - image.shape[0] % scale, : image.shape[1] - image.shape[1] % scale]


def to_batch(image: np.ndarray) -> torch.Tensor:
    array = image[..., None] if image.ndim == 2 else image
    return torch.from_numpy(array.copy()).permute(2, 0, 1)[None].float() / 255


def write_model(path: Path, spec: dict, scale: int, task: str = "upscale", degradation=()) -> torch.nn.Module:
    torch.manual_seed(0)
    model = MODELS.build(spec)
    recipe = {"model": spec, "scale": scale, "task": task, "degradation": list(degradation), "plugins": []}
    save_model(path, model, recipe)
    return model.eval()


@pytest.mark.parametrize(
    ("options", "y_channel", "border"),
    [
        pytest.param(["--y-channel"], True, 4, id="y-channel-default-border"),
        pytest.param(["--crop-border", "0"], False, 0, id="rgb-no-border"),
    ],
)
def test_results_equal_skimage_on_saved_images(tmp_path, options, y_channel, border):
    photos = write_photos(tmp_path / "hr")
    out = tmp_path / "out"
    results = run_cli(
        "--data", tmp_path / "hr", "--scale", 4, "--baselines", "nearest", "bicubic", "--out", out, *options
    )

    assert results["settings"]["crop_border"] == border and results["settings"]["y_channel"] is y_channel
    assert set(results["methods"]) == {"nearest", "bicubic"}
    for method in ("nearest", "bicubic"):
        entry = results["methods"][method]
        assert set(entry["images"]) == set(photos)
        for name, photo in photos.items():
            target = modcropped(photo, 4)
            output = saved(out, name, method)
            expected = skimage_scores(*(matlab_y(x) if y_channel else x for x in (output, target)), border)
            assert entry["images"][name]["psnr"] == pytest.approx(expected[0], abs=1e-6)
            assert entry["images"][name]["ssim"] == pytest.approx(expected[1], abs=1e-6)
        for metric in ("psnr", "ssim"):
            values = [entry["images"][name][metric] for name in photos]
            assert entry["mean"][metric] == pytest.approx(sum(values) / len(values), abs=1e-12)
    # The input is MATLAB's imresize of the 8-bit image (shown nearest-upscaled in the report).
    target = modcropped(photos["astronaut.png"], 4)
    expected_input = imresize_uint8(torch.from_numpy(target).permute(2, 0, 1).contiguous(), scale=1 / 4)
    shown_input = saved(out, "astronaut.png", "input")
    assert np.array_equal(shown_input[::4, ::4], expected_input.permute(1, 2, 0).numpy())
    bicubic, nearest = (results["methods"][m]["mean"]["psnr"] for m in ("bicubic", "nearest"))
    assert 20 < nearest < bicubic < 40


def test_results_csv_holds_every_value(tmp_path):
    write_photos(tmp_path / "hr", ["coffee.png", "camera.png"])
    results = run_cli(
        "--data",
        tmp_path / "hr",
        "--scale",
        2,
        "--baselines",
        "bilinear",
        "bicubic",
        "--metrics",
        "psnr",
        "mse",
        "--no-images",
        "--out",
        tmp_path / "out",
    )
    with (tmp_path / "out" / "results.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 2 * 3 and list(rows[0]) == ["method", "image", "psnr", "mse", "inputs", "seed"]
    for row in rows:
        entry = results["methods"][row["method"]]
        values = entry["mean"] if row["image"] == "mean" else entry["images"][row["image"]]
        assert float(row["psnr"]) == values["psnr"] and float(row["mse"]) == values["mse"]
        if row["image"] != "mean":  # per image, PSNR is -10 log10(MSE)
            assert float(row["psnr"]) == pytest.approx(-10 * math.log10(float(row["mse"])), abs=1e-9)
    assert not (tmp_path / "out" / "images").exists()


def test_lr_folder_is_matched_by_name(tmp_path):
    photos = write_photos(tmp_path / "hr", ["astronaut.png", "coffee.png"])
    (tmp_path / "hr" / "astronaut.png").rename(tmp_path / "hr" / "astronaut_HR.png")
    lr = tmp_path / "lr"
    lr.mkdir()
    inputs = {}
    for name, lr_name in (("astronaut.png", "astronaut_LR.png"), ("coffee.png", "coffeex2.png")):
        target = modcropped(photos[name], 2)  # a box-filtered input, unlike MATLAB's bicubic
        inputs[name] = np.asarray(Image.fromarray(target).reduce(2))
        Image.fromarray(inputs[name]).save(lr / lr_name)
    Image.fromarray(inputs["astronaut.png"]).save(tmp_path / "hr" / "astronaut_LR.png")  # SelfExSR layout
    results = run_cli("--data", tmp_path / "hr", "--lr", lr, "--scale", 2, "--out", tmp_path / "out")
    made = run_cli("--data", tmp_path / "hr", "--scale", 2, "--no-images", "--out", tmp_path / "made")

    scores = results["methods"]["bicubic"]["images"]
    assert set(scores) == {"astronaut_HR.png", "coffee.png"}
    for name, key in (("astronaut.png", "astronaut_HR.png"), ("coffee.png", "coffee.png")):
        upscaled = imresize_uint8(torch.round(to_batch(inputs[name]) * 255).byte(), scale=2).float() / 255
        target = to_batch(modcropped(photos[name], 2))
        expected = metrics.psnr(upscaled, target, crop_border=2).item()
        assert scores[key]["psnr"] == pytest.approx(expected, abs=1e-9)
        assert abs(scores[key]["psnr"] - made["methods"]["bicubic"]["images"][key]["psnr"]) > 0.01

    (lr / "coffeex2.png").unlink()
    assert (
        eval_cli.main(["--data", str(tmp_path / "hr"), "--lr", str(lr), "--scale", "2", "--out", str(tmp_path / "o2")])
        == 2
    )


def touch(folder: Path, *names: str) -> None:
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).touch()


def test_lr_files_are_matched_by_the_pairing_rule(tmp_path):
    hr, lr = tmp_path / "hr", tmp_path / "lr"
    touch(hr, "tex1.png", "tex2.png", "baby_hr.png", "sub/img_001.png")
    touch(lr, "tex1x4.png", "tex2x4.png", "Baby_LR.PNG", "sub/img_001-x4.png", "tex1x2.png")
    assert find_pairs(hr, 4, lr) == [
        ("baby_hr.png", hr / "baby_hr.png", lr / "Baby_LR.PNG"),
        ("sub/img_001.png", hr / "sub/img_001.png", lr / "sub/img_001-x4.png"),
        ("tex1.png", hr / "tex1.png", lr / "tex1x4.png"),
        ("tex2.png", hr / "tex2.png", lr / "tex2x4.png"),
    ]
    assert find_pairs(hr, 4) == [
        (name, hr / name, None) for name in ("baby_hr.png", "sub/img_001.png", "tex1.png", "tex2.png")
    ]
    touch(tmp_path / "set5", "img_001_SRF_4_HR.png", "img_001_SRF_4_LR.png")  # SelfExSR: one folder
    set5 = tmp_path / "set5"
    assert find_pairs(set5, 4, set5) == [
        ("img_001_SRF_4_HR.png", set5 / "img_001_SRF_4_HR.png", set5 / "img_001_SRF_4_LR.png")
    ]


def test_ambiguous_or_missing_lr_files_stop_with_one_line(tmp_path, capsys):
    hr, lr = tmp_path / "hr", tmp_path / "lr"
    write_photos(hr, ["coffee.png"])
    touch(lr, "coffee.png", "coffee_x2.png")
    common = ["--data", hr, "--lr", lr, "--scale", 2, "--out", tmp_path / "out"]
    assert error_line(capsys, *common) == (
        f"error: {hr / 'coffee.png'}, {lr / 'coffee.png'} and {lr / 'coffee_x2.png'}: all match the name 'coffee'"
    )
    (lr / "coffee.png").rename(lr / "coffee_x4.png")
    (lr / "coffee_x2.png").unlink()
    assert error_line(capsys, *common) == (f"error: {hr / 'coffee.png'}: no input image named like 'coffee' in {lr}")


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_baselines_are_matlab_imresize_of_the_8bit_input(tmp_path, scale):
    write_photos(tmp_path / "hr", ["coffee.png", "camera.png"])
    settings = Settings(tmp_path / "hr", scale=scale, baselines=evaluate.INTERPOLATIONS, device="cpu")
    for sample in Evaluation(settings).samples():
        levels = torch.round(sample.input * 255).byte()
        assert torch.equal(levels.float() / 255, sample.input)  # the input is 8-bit
        for mode in evaluate.INTERPOLATIONS:
            expected = imresize_uint8(levels, scale=scale, mode=mode).float() / 255
            assert torch.equal(sample.outputs[mode], expected), (sample.name, mode)
            if mode != "nearest":  # rounding once, after both passes, gives other values
                rounded_once = metrics.quantize(imresize(sample.input, scale=scale, mode=mode))
                assert not torch.equal(rounded_once, expected), (sample.name, mode)
        # training validation's baseline is the same bicubic, also of a batch
        reference = validation.baseline(sample.input[None], "upscale", scale)
        assert torch.equal(reference, sample.outputs["bicubic"][None])


def test_validation_baseline_quantises_its_input_to_8_bits():
    generator = torch.Generator().manual_seed(0)
    levels = torch.randint(0, 256, (2, 3, 6, 5), generator=generator, dtype=torch.uint8)
    off_grid = levels.float() / 255 + torch.rand(2, 3, 6, 5, generator=generator) * 0.0019  # < half a level
    expected = imresize_uint8(levels, scale=4).float() / 255
    assert torch.equal(validation.baseline(off_grid, "upscale", 4), expected)
    assert torch.equal(validation.baseline(off_grid, "restore", 1), off_grid)


def test_grayscale_image_is_scored_on_its_own_values(tmp_path):
    photos = write_photos(tmp_path / "hr", ["camera.png", "coffee.png"])
    model = write_model(tmp_path / "deconv.safetensors", {"type": "deconv", "scale": 4}, 4)
    common = ["--data", tmp_path / "hr", "--models", tmp_path / "deconv.safetensors", "--no-images"]
    luma = run_cli(*common, "--y-channel", "--out", tmp_path / "y")
    rgb = run_cli(*common, "--out", tmp_path / "rgb")

    target = modcropped(photos["camera.png"], 4)
    for method in ("bicubic", "deconv"):  # gray: --y-channel changes nothing, unlike a Y of 3 channels
        gray = luma["methods"][method]["images"]["camera.png"]
        assert gray == rgb["methods"][method]["images"]["camera.png"]
        colour = (
            luma["methods"][method]["images"]["coffee.png"]["psnr"],
            rgb["methods"][method]["images"]["coffee.png"]["psnr"],
        )
        assert colour[0] != pytest.approx(colour[1], abs=0.01)
    small = imresize_uint8(torch.from_numpy(target)[None], scale=1 / 4).float() / 255
    with torch.no_grad():
        output = metrics.quantize(model(small.expand(3, -1, -1)[None]))
    gray_output = metrics.quantize(output.mean(dim=1, keepdim=True))  # the mean of the 3 channels, 8-bit
    expected = skimage_scores((gray_output[0, 0] * 255).round().byte().numpy(), target, 4)
    assert luma["methods"]["deconv"]["images"]["camera.png"]["psnr"] == pytest.approx(expected[0], abs=1e-6)
    assert luma["methods"]["deconv"]["images"]["camera.png"]["ssim"] == pytest.approx(expected[1], abs=1e-6)


def test_ms_ssim_is_skipped_with_a_note_for_small_images(tmp_path):
    photos = write_photos(tmp_path / "hr", ["astronaut.png"])
    Image.fromarray(photos["astronaut.png"][:120, :120]).save(tmp_path / "hr" / "small.png")
    results = run_cli(
        "--data",
        tmp_path / "hr",
        "--scale",
        2,
        "--metrics",
        "psnr",
        "ms_ssim",
        "--no-images",
        "--out",
        tmp_path / "out",
    )
    bicubic = results["methods"]["bicubic"]
    assert bicubic["images"]["small.png"]["ms_ssim"] is None
    assert 0.8 < bicubic["images"]["astronaut.png"]["ms_ssim"] < 1
    assert bicubic["mean"]["ms_ssim"] == bicubic["images"]["astronaut.png"]["ms_ssim"]
    assert bicubic["images"]["small.png"]["psnr"] is not None
    (note,) = [n for n in results["notes"] if n.startswith("ms_ssim")]
    assert "1 of 2 images" in note and "small.png" in note and str(metrics.MS_SSIM_MIN_SIDE) in note


def test_lpips_column_is_skipped_with_a_note_when_weights_are_unavailable(tmp_path, monkeypatch, capsys):
    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    write_photos(tmp_path / "hr", ["coffee.png"])
    results = run_cli(
        "--data", tmp_path / "hr", "--scale", 4, "--metrics", "psnr", "lpips", "--no-images", "--out", tmp_path / "out"
    )
    assert set(results["methods"]["bicubic"]["mean"]) == {"psnr"}
    assert results["settings"]["metrics"] == ["psnr"]
    (note,) = results["notes"]
    assert note.startswith("lpips: column skipped") and "--lpips-weights" in note and "AlexNet" in note
    assert "note: lpips: column skipped" in capsys.readouterr().out


@pytest.mark.filterwarnings("ignore::UserWarning:torchvision")  # lpips builds with the old API
def test_lpips_with_a_local_weights_file(tmp_path):
    import lpips

    photos = write_photos(tmp_path / "hr", ["coffee.png"])
    torch.manual_seed(0)
    weights = tmp_path / "squeezenet.pth"
    torch.save(torchvision.models.squeezenet1_1().state_dict(), weights)  # random weights, for the test only
    out = tmp_path / "out"
    results = run_cli(
        "--data",
        tmp_path / "hr",
        "--scale",
        4,
        "--metrics",
        "lpips",
        "--lpips-net",
        "squeeze",
        "--lpips-weights",
        weights,
        "--out",
        out,
    )
    assert results["settings"]["labels"] == {"lpips": "LPIPS-squeeze"}

    reference = lpips.LPIPS(net="squeeze", pnet_rand=True, verbose=False).eval()  # lpips' own loading
    state = torch.load(weights)
    for block in reference.net.children():
        block.load_state_dict({key: state[f"features.{key}"] for key in block.state_dict()})
    target = modcropped(photos["coffee.png"], 4)[4:-4, 4:-4]
    output = saved(out, "coffee.png", "bicubic")[4:-4, 4:-4]
    with torch.no_grad():
        expected = reference(to_batch(output) * 2 - 1, to_batch(target) * 2 - 1).item()
    assert results["methods"]["bicubic"]["images"]["coffee.png"]["lpips"] == pytest.approx(expected, rel=1e-5)
    assert expected > 0


def test_denoising_model_is_evaluated_with_its_own_noise(tmp_path):
    photos = write_photos(tmp_path / "hr", ["astronaut.png"])  # 194x260: not a multiple of 16
    noise = [{"type": "salt_pepper", "amount": 0.2}]
    path = tmp_path / "runs" / "denoise" / "model.safetensors"
    model = write_model(path, {"type": "conv_autoencoder"}, 1, task="restore", degradation=noise)
    out = tmp_path / "out"
    results = run_cli("--data", tmp_path / "hr", "--models", path, "--out", out)

    settings = results["settings"]
    assert (settings["scale"], settings["task"], settings["crop_border"]) == (1, "restore", 1)
    assert settings["baselines"] == ["input"] and settings["degradation"] == noise
    assert set(results["methods"]) == {"input", "denoise"}  # model.safetensors: named by its run folder
    target = to_batch(photos["astronaut.png"])
    generator = torch.Generator().manual_seed(image_seed(0, "astronaut.png"))
    noisy = metrics.quantize(DEGRADATIONS.build(noise[0])(target, generator))
    noisy_uint8 = (noisy[0] * 255).round().byte().permute(1, 2, 0).numpy()
    assert np.array_equal(saved(out, "astronaut.png", "input"), noisy_uint8)
    scores = results["methods"]["input"]["images"]["astronaut.png"]
    assert scores["psnr"] == pytest.approx(metrics.psnr(noisy, target, crop_border=1).item(), abs=1e-9)
    assert scores["psnr"] < 15  # a fifth of the pixels black or white
    with torch.no_grad():
        padded = torch.nn.functional.pad(noisy, (0, 12, 0, 14), mode="replicate")  # to 208x272
        output = metrics.quantize(model(padded)[..., :194, :260])
    expected = metrics.psnr(output, target, crop_border=1).item()
    assert results["methods"]["denoise"]["images"]["astronaut.png"]["psnr"] == pytest.approx(expected, abs=1e-6)


def test_degradation_recipe_seeds_each_image_by_name(tmp_path):
    write_photos(tmp_path / "hr", ["astronaut.png", "coffee.png"])
    write_photos(tmp_path / "one", ["coffee.png"])
    recipe = tmp_path / "noisy_x2.yaml"
    recipe.write_text(
        "scale: 2\nmodel: {type: deconv}\n"
        "degradation:\n  - {type: downscale}\n  - {type: gaussian_noise, sigma: 0.05}\n"
    )
    common = ["--scale", 2, "--degradation", recipe, "--no-images"]
    both = run_cli("--data", tmp_path / "hr", *common, "--out", tmp_path / "a")
    one = run_cli("--data", tmp_path / "one", *common, "--out", tmp_path / "b")
    other_seed = run_cli("--data", tmp_path / "one", *common, "--seed", 1, "--out", tmp_path / "c")
    clean = run_cli("--data", tmp_path / "one", "--scale", 2, "--no-images", "--out", tmp_path / "d")

    value = one["methods"]["bicubic"]["images"]["coffee.png"]["psnr"]
    assert both["methods"]["bicubic"]["images"]["coffee.png"]["psnr"] == value
    assert other_seed["methods"]["bicubic"]["images"]["coffee.png"]["psnr"] != value
    assert value < clean["methods"]["bicubic"]["images"]["coffee.png"]["psnr"] - 3
    assert both["settings"]["degradation"][1] == {
        "type": "gaussian_noise",
        "sigma": 0.05,
        "gray": False,
        "gray_prob": 0.0,
    }
    assert (
        eval_cli.main(
            [
                "--data",
                str(tmp_path / "one"),
                "--scale",
                "4",
                "--degradation",
                str(recipe),
                "--out",
                str(tmp_path / "e"),
            ]
        )
        == 2
    )


def test_tiled_models_give_the_untiled_scores(tmp_path, monkeypatch):
    write_photos(tmp_path / "hr", ["coffee.png"])
    write_model(tmp_path / "deconv.safetensors", {"type": "deconv", "scale": 2}, 2)
    common = ["--data", tmp_path / "hr", "--models", tmp_path / "deconv.safetensors", "--no-images"]
    whole = run_cli(*common, "--tile", 0, "--out", tmp_path / "whole")
    tiled = run_cli(*common, "--tile", 24, "--out", tmp_path / "tiled")
    monkeypatch.setattr(evaluate, "AUTO_TILE_PIXELS", 100 * 100)
    auto = run_cli(*common, "--out", tmp_path / "auto")

    expected = whole["methods"]["deconv"]["images"]["coffee.png"]
    for run, tile in ((tiled, 24), (auto, evaluate.AUTO_TILE)):
        assert run["methods"]["deconv"]["images"]["coffee.png"] == pytest.approx(expected, abs=1e-4)
        assert f"models ran in tiles of {tile} px on coffee.png" in run["notes"]
    assert not whole["notes"]


def test_model_names_use_folders_only_when_stems_clash_or_are_model():
    names = model_names(
        (Path("runs/a/model.safetensors"), Path("runs/b/model.safetensors"), Path("x/edsr.safetensors"))
    )
    assert names == ["a", "b", "edsr"]
    assert model_names((Path("runs/resnet_x4/model.safetensors"),)) == ["resnet_x4"]
    assert model_names((Path("a/x4.safetensors"), Path("b/x4.safetensors"))) == ["a", "b"]
    assert model_names((Path("p/a/model.safetensors"), Path("q/a/model.safetensors"))) == ["p/a", "q/a"]
    assert model_names((Path("runs/x/bicubic.safetensors"),), taken=("bicubic",)) == ["x"]


def test_two_models_with_one_stem_are_named_by_folder(tmp_path):
    write_photos(tmp_path / "hr", ["coffee.png"])
    for run in ("first", "second"):
        write_model(tmp_path / "runs" / run / "model.safetensors", {"type": "deconv", "scale": 2}, 2)
    results = run_cli(
        "--data",
        tmp_path / "hr",
        "--models",
        tmp_path / "runs/first/model.safetensors",
        tmp_path / "runs/second/model.safetensors",
        "--no-images",
        "--out",
        tmp_path / "out",
    )
    assert list(results["methods"]) == ["bicubic", "first", "second"]
    assert results["settings"]["models"]["second"].endswith("second/model.safetensors")


def error_line(capsys, *args: str | Path) -> str:
    assert eval_cli.main([str(arg) for arg in args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    return err


def test_bad_inputs_give_one_clear_line(tmp_path, capsys):
    out = tmp_path / "out"
    missing = error_line(capsys, "--data", tmp_path / "nowhere", "--scale", 2, "--out", out)
    assert missing == f"error: {tmp_path / 'nowhere'}: folder not found"

    write_photos(tmp_path / "hr", ["coffee.png"])
    (tmp_path / "hr" / "broken.png").write_bytes((tmp_path / "hr" / "coffee.png").read_bytes()[:300])
    corrupt = error_line(capsys, "--data", tmp_path / "hr", "--scale", 2, "--out", out)
    assert corrupt.startswith(f"error: {tmp_path / 'hr' / 'broken.png'}: truncated or corrupt image")
    (tmp_path / "hr" / "broken.png").unlink()

    model = tmp_path / "x2.safetensors"
    write_model(model, {"type": "deconv", "scale": 2}, 2)
    mismatch = error_line(capsys, "--data", tmp_path / "hr", "--scale", 4, "--models", model, "--out", out)
    assert "model 'x2'" in mismatch and "x2 upscale model, but --scale is 4" in mismatch

    no_scale = error_line(capsys, "--data", tmp_path / "hr", "--out", out)
    assert "give --scale" in no_scale
    wrong_baseline = error_line(
        capsys, "--data", tmp_path / "hr", "--scale", 1, "--baselines", "bicubic", "--lr", tmp_path / "hr", "--out", out
    )
    assert "bicubic not available at scale 1" in wrong_baseline
    assert not (out / "results.json").exists()


def test_settings_are_checked_before_any_image_is_read(tmp_path):
    write_photos(tmp_path / "hr", ["coffee.png"])
    with pytest.raises(evaluate.EvaluationError, match="not both"):
        Evaluation(Settings(tmp_path / "hr", scale=2, lr=tmp_path / "hr", degradation=tmp_path / "r.yaml"))
    with pytest.raises(evaluate.EvaluationError, match="at scale 1 the inputs need a degradation"):
        Evaluation(Settings(tmp_path / "hr", scale=1))


# --- degraded inputs: one per image, the same for every method, reproducible by --seed -------------

NOISY_X2 = (
    "scale: 2\nmodel: {type: deconv}\ndegradation:\n  - {type: downscale}\n  - {type: gaussian_noise, sigma: 0.05}\n"
)


def tiny_photos(folder: Path) -> None:
    """Two small colour crops: a few milliseconds per method."""
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(data.coffee()[150:198, 250:314]).save(folder / "coffee.png")
    Image.fromarray(data.astronaut()[60:108, 180:244]).save(folder / "astronaut.png")


def recorded_inputs(monkeypatch, settings: Settings) -> dict[str, list[torch.Tensor]]:
    """Run an evaluation; return the input each method was given, per method, in image order."""
    seen: dict[str, list[torch.Tensor]] = {}
    baseline_output, run_model = evaluate.baseline_output, evaluate.run_model

    def record_baseline(name, inputs, scale):
        seen.setdefault(name, []).append(inputs.clone())
        return baseline_output(name, inputs, scale)

    def record_model(model, x, scale, tile=None):
        seen.setdefault(names[id(model)], []).append(x[0].clone())
        return run_model(model, x, scale, tile)

    with monkeypatch.context() as patch:
        patch.setattr(evaluate, "baseline_output", record_baseline)
        patch.setattr(evaluate, "run_model", record_model)
        evaluation = Evaluation(settings)
        names = {id(model): name for name, model in evaluation.models.items()}
        evaluation.run()
    return seen


def test_every_method_gets_the_same_degraded_input_reproducible_by_seed(tmp_path, monkeypatch):
    tiny_photos(tmp_path / "hr")
    (tmp_path / "noisy_x2.yaml").write_text(NOISY_X2)
    write_model(tmp_path / "deconv.safetensors", {"type": "deconv", "scale": 2}, 2)
    common = {"scale": 2, "degradation": tmp_path / "noisy_x2.yaml", "metrics": ("psnr",)}
    model = (tmp_path / "deconv.safetensors",)

    first = recorded_inputs(
        monkeypatch, Settings(tmp_path / "hr", models=model, baselines=("bicubic", "nearest"), **common)
    )
    assert set(first) == {"bicubic", "nearest", "deconv"}
    pipeline = build_pipeline(load_recipe(tmp_path / "noisy_x2.yaml")["degradation"])
    for index, name in enumerate(["astronaut.png", "coffee.png"]):  # sorted by name
        target = to_batch(np.asarray(Image.open(tmp_path / "hr" / name)))
        generator = torch.Generator().manual_seed(image_seed(0, name))
        expected = metrics.quantize(pipeline(target, generator))[0]
        assert expected.shape == (3, 24, 32)
        for method, inputs in first.items():
            assert torch.equal(inputs[index], expected), (method, name)

    # The same seed: the same inputs, whichever methods run and in which order.
    again = recorded_inputs(monkeypatch, Settings(tmp_path / "hr", baselines=("nearest",), **common))
    assert all(torch.equal(a, b) for a, b in zip(again["nearest"], first["bicubic"], strict=True))
    reordered = recorded_inputs(
        monkeypatch, Settings(tmp_path / "hr", models=model, baselines=("nearest", "bicubic"), **common)
    )
    assert all(torch.equal(a, b) for a, b in zip(reordered["deconv"], first["deconv"], strict=True))
    # Another seed: other noise on every image. Two independent draws of sigma 0.05 differ by
    # sqrt(2) 0.05 = 0.071 RMS (a little less where clipped), estimated here from 2304 values each.
    other = recorded_inputs(monkeypatch, Settings(tmp_path / "hr", baselines=("bicubic",), seed=1, **common))
    for a, b in zip(other["bicubic"], first["bicubic"], strict=True):
        assert 0.03 < (a - b).pow(2).mean().sqrt().item() < 0.09


def test_degraded_results_say_which_recipe_and_seed_made_the_inputs(tmp_path):
    tiny_photos(tmp_path / "hr")
    (tmp_path / "noisy_x2.yaml").write_text(NOISY_X2)
    out = tmp_path / "out"
    common = ["--data", tmp_path / "hr", "--scale", 2]
    results = run_cli(*common, "--degradation", tmp_path / "noisy_x2.yaml", "--seed", 7, "--out", out)

    settings = results["settings"]
    assert settings["seed"] == 7 and settings["degradation_recipe"] == str(tmp_path / "noisy_x2.yaml")
    assert "seed 7" in settings["inputs"] and "crc32('7/<file>')" in settings["inputs"]
    assert settings["input_label"] == f"degradation of {tmp_path / 'noisy_x2.yaml'}"
    with (out / "results.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert {(row["inputs"], row["seed"]) for row in rows} == {(settings["input_label"], "7")}
    page = (out / "report.html").read_text()
    assert "<tr><th>seed</th><td>7</td></tr>" in page and html.escape(settings["inputs"]) in page
    grid = np.asarray(Image.open(out / "grids" / "coffee.png").convert("L"))
    assert grid.shape[0] == 18 + 48 + 4 + 16 * 4 + 18  # labels, images, gap, zoomed crops, caption
    assert grid[-18:].min() < 100  # the caption's dark text on its white strip

    plain = run_cli(*common, "--no-images", "--out", tmp_path / "plain")
    assert plain["settings"]["seed"] is None and plain["settings"]["degradation_recipe"] is None
    with (tmp_path / "plain" / "results.csv").open() as file:
        assert {(row["inputs"], row["seed"]) for row in csv.DictReader(file)} == {("MATLAB bicubic x1/2", "")}


def test_degradation_names_a_shipped_recipe(tmp_path):
    tiny_photos(tmp_path / "hr")
    common = ["--data", tmp_path / "hr", "--scale", 4, "--no-images"]
    by_name = run_cli(*common, "--degradation", "edsr_x4", "--out", tmp_path / "name")
    by_path = run_cli(*common, "--degradation", ROOT / "recipes" / "edsr_x4.yaml", "--out", tmp_path / "path")
    assert by_name["settings"]["degradation_recipe"] == "edsr_x4"
    assert Path(by_name["settings"]["degradation_recipe_file"]).resolve() == (ROOT / "recipes" / "edsr_x4.yaml")
    assert by_name["settings"]["degradation"] == by_path["settings"]["degradation"]
    assert by_name["methods"] == by_path["methods"]


def test_degradation_errors_are_one_line_naming_the_values(tmp_path, capsys):
    tiny_photos(tmp_path / "hr")
    recipe = tmp_path / "noisy_x2.yaml"
    recipe.write_text(NOISY_X2)
    out = tmp_path / "out"
    common = ["--data", tmp_path / "hr", "--out", out]
    wrong_scale = error_line(capsys, *common, "--scale", 4, "--degradation", recipe)
    assert wrong_scale == f"error: --degradation {recipe}: a x2 recipe (scale: 2), but --scale is 4"
    write_model(tmp_path / "x4.safetensors", {"type": "deconv", "scale": 4}, 4)
    model_scale = error_line(capsys, *common, "--models", tmp_path / "x4.safetensors", "--degradation", recipe)
    assert model_scale.endswith("a x2 recipe (scale: 2), but the models are x4")
    paired = error_line(capsys, *common, "--scale", 2, "--lr", tmp_path / "hr", "--degradation", recipe)
    assert paired == (
        f"error: --lr {tmp_path / 'hr'} and --degradation {recipe}: give one "
        "(input files, or inputs made from --data), not both"
    )
    unknown = error_line(capsys, *common, "--scale", 4, "--degradation", "edsr_x5")
    assert "recipe file not found: edsr_x5" in unknown and "edsr_x4" in unknown
    assert not out.exists()
