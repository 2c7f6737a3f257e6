"""tools/upscale.py and the Python API: names kept, alpha, kinds kept, EXIF, 16-bit, bad inputs, bombs, tiling,
automatic tiles by the memory available, and running out of memory."""

from __future__ import annotations

import struct
import subprocess
import sys
import warnings
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image, ImageOps

import sr_toolkit
from sr_toolkit.commands import upscale as upscale_tool
from sr_toolkit.config.recipe import load_recipe
from sr_toolkit.core.image_writer import save_pixels
from sr_toolkit.core.imageio import decode_image, read_image, to_uint8
from sr_toolkit.core.model_file import save_model
from sr_toolkit.core.registry import MODELS
from sr_toolkit.core.resize import imresize
from sr_toolkit.inference import upscaling
from sr_toolkit.inference.upscaling import (
    MEMORY_SHARE,
    bytes_per_output_pixel,
    fill_hidden,
    is_out_of_memory,
    plan_memory,
    prepare,
    upscale_batch,
)

ROOT = Path(__file__).resolve().parents[1]


def write_model(folder: Path, recipe_text: str) -> Path:
    """A model file for a recipe, its zero-initialised layers (global-skip tails) made random."""
    (folder / "recipe.yaml").write_text(recipe_text)
    recipe = load_recipe(folder / "recipe.yaml")
    torch.manual_seed(0)
    model = MODELS.build(recipe["model"])
    with torch.no_grad():
        for parameter in model.parameters():
            if not parameter.any():
                parameter.normal_(0, 0.05)
    save_model(folder / "model.safetensors", model, recipe)
    return folder / "model.safetensors"


@pytest.fixture(scope="module")
def x4_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model(
        tmp_path_factory.mktemp("x4"),
        "task: upscale\nscale: 4\nmodel: {type: resnet_x4, "
        "channels: 8, blocks: 1, upsample: bicubic, global_skip: true}\n"
        "degradation: [{type: downscale}]\n",
    )


@pytest.fixture(scope="module")
def x4(x4_file: Path) -> torch.nn.Module:
    return sr_toolkit.load_model(x4_file)


def photo(width: int, height: int, mode: str = "RGB") -> Image.Image:
    return Image.fromarray(skimage.data.astronaut()).resize((width, height)).convert(mode)


def as_tensor(image: Image.Image | np.ndarray) -> torch.Tensor:
    """8-bit RGB pixels as a float (3, H, W) tensor in [0, 1]."""
    return torch.from_numpy(np.asarray(image).transpose(2, 0, 1) / np.float32(255))


def expected_pixels(model: torch.nn.Module, rgb: torch.Tensor) -> np.ndarray:
    """The model's untiled output for (3, H, W), as 8-bit (H, W, 3): the reference for written files."""
    with torch.no_grad():
        return to_uint8(model(rgb[None])[0]).permute(1, 2, 0).numpy()


def gray_output(model: torch.nn.Module, gray: torch.Tensor) -> np.ndarray:
    """The model's output for a (1, H, W) gray image given as three equal channels: the mean of its
    three output channels, each clamped to [0, 1], as float (H, W)."""
    with torch.no_grad():
        return model(gray.expand(3, -1, -1)[None])[0].clamp(0, 1).mean(0).numpy()


def assert_same_image(path: Path, expected: np.ndarray) -> None:
    written = np.asarray(Image.open(path)).astype(int)
    assert written.shape == expected.shape
    assert np.abs(written - expected).max() <= 1  # tiled vs untiled: equal up to float rounding
    assert (written != expected).mean() < 1e-3


def run(*args: object) -> int:
    return upscale_tool.main([str(arg) for arg in args])


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def test_files_and_folders_keep_their_names(tmp_path: Path, x4_file: Path, x4: torch.nn.Module) -> None:
    photo(40, 30).save(tmp_path / "single.jpg")
    (tmp_path / "album" / "sub").mkdir(parents=True)
    photo(24, 36).save(tmp_path / "album" / "first.png")
    photo(33, 21).save(tmp_path / "album" / "sub" / "second.bmp")
    out = tmp_path / "out"
    assert run(x4_file, tmp_path / "single.jpg", tmp_path / "album", "--out", out, "--tile", "16") == 0
    written = sorted(str(path.relative_to(out)) for path in out.rglob("*") if path.is_file())
    assert written == ["first.png", "single.png", "sub/second.png"]
    for source, target in [
        ("single.jpg", "single.png"),
        ("album/first.png", "first.png"),
        ("album/sub/second.bmp", "sub/second.png"),
    ]:
        assert_same_image(out / target, expected_pixels(x4, read_image(tmp_path / source)))


def test_alpha_is_resized_apart_from_the_colours(tmp_path: Path, x4_file: Path, x4: torch.nn.Module) -> None:
    image = np.asarray(photo(20, 16, "RGBA")).copy()
    image[..., 3] = np.linspace(1, 255, 20, dtype=np.uint8)[None, :]  # a horizontal ramp, nothing hidden
    Image.fromarray(image).save(tmp_path / "ramp.png")
    assert run(x4_file, tmp_path / "ramp.png", "--out", tmp_path / "out") == 0
    written = Image.open(tmp_path / "out" / "ramp.png")
    assert written.mode == "RGBA" and written.size == (80, 64)
    pixels = read_image(tmp_path / "ramp.png", mode="RGBA")
    alpha = to_uint8(imresize(pixels[3:], scale=4).clamp(0, 1))[0].numpy()
    assert np.array_equal(np.asarray(written)[..., 3], alpha)
    assert_same_image(tmp_path / "out" / "ramp.png", np.dstack([expected_pixels(x4, pixels[:3]), alpha]))


def test_exif_orientation_is_applied(tmp_path: Path, x4_file: Path, x4: torch.nn.Module) -> None:
    image = photo(40, 24)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored on its side: viewers rotate it 90 degrees clockwise
    image.save(tmp_path / "rotated.png", exif=exif)
    assert run(x4_file, tmp_path / "rotated.png", "--out", tmp_path / "out") == 0
    upright = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "rotated.png")))
    assert upright.shape == (40, 24, 3)
    reference = expected_pixels(x4, as_tensor(upright))
    assert_same_image(tmp_path / "out" / "rotated.png", reference)


def test_16bit_inputs_and_16bit_outputs(tmp_path: Path, x4_file: Path, x4: torch.nn.Module) -> None:
    gray = (np.asarray(photo(24, 20, "L")).astype(np.uint16) * 257 + 100).astype(np.uint16)
    Image.fromarray(gray).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode == "I;16"
    photo(24, 20).save(tmp_path / "shallow.png")
    assert run(x4_file, tmp_path / "deep.png", "--out", tmp_path / "out") == 0
    assert run(x4_file, tmp_path / "shallow.png", "--out", tmp_path / "out16", "--16bit") == 0
    written = Image.open(tmp_path / "out" / "deep.png")
    assert written.mode == "I;16"  # 16-bit gray in, 16-bit gray out, without --16bit
    gray_out = np.round(gray_output(x4, read_image(tmp_path / "deep.png", mode="keep")) * 65535)
    assert np.abs(np.asarray(written).astype(int) - gray_out).max() <= 1
    assert (tmp_path / "out16" / "shallow.png").read_bytes()[24:26] == bytes([16, 2])  # IHDR: 16-bit RGB
    with torch.no_grad():
        full = x4(read_image(tmp_path / "shallow.png")[None])[0].clamp(0, 1).permute(1, 2, 0).numpy()
    deep_out = decode_image(tmp_path / "out16" / "shallow.png")
    assert deep_out.bits == 16
    assert np.abs(np.round(deep_out.pixels.permute(1, 2, 0).numpy() * 65535) - np.round(full * 65535)).max() <= 1


def test_restoration_keeps_the_size_and_pads_for_the_autoencoder(tmp_path: Path) -> None:
    model_file = write_model(
        tmp_path, "task: restore\nmodel: {type: conv_autoencoder}\ndegradation: [{type: gaussian_noise}]\n"
    )
    photo(50, 38).save(tmp_path / "noisy.png")  # not a multiple of 16: padded inside
    assert run(model_file, tmp_path / "noisy.png", "--out", tmp_path / "out", "--tile", "16") == 0
    model = sr_toolkit.load_model(model_file)
    pixels = read_image(tmp_path / "noisy.png")[None]
    with torch.no_grad():
        padded = model(torch.nn.functional.pad(pixels, (0, 14, 0, 10), mode="replicate"))[0, :, :38, :50]
    assert_same_image(tmp_path / "out" / "noisy.png", to_uint8(padded).permute(1, 2, 0).numpy())


def test_bad_inputs_fail_alone_with_one_line_each(tmp_path: Path, x4_file: Path) -> None:
    photo(20, 16).save(tmp_path / "good1.png")
    photo(16, 20).save(tmp_path / "good2.png")
    (tmp_path / "garbage.png").write_bytes(b"this is not an image at all")
    whole = (tmp_path / "good1.png").read_bytes()
    (tmp_path / "truncated.png").write_bytes(whole[: len(whole) // 2])
    inputs = ["good1.png", "garbage.png", "truncated.png", "missing.png", "good2.png"]
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "upscale.py"),
            str(x4_file),
            *(str(tmp_path / name) for name in inputs),
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["good1.png", "good2.png"]
    errors = error_lines(result.stderr)
    assert len(errors) == 3, result.stderr
    for line, name in zip(errors, ["garbage.png", "truncated.png", "missing.png"], strict=True):
        assert str(tmp_path / name) in line
    assert "2 written" in result.stderr and "3 failed" in result.stderr


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb's header)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = zlib.compress(b"\x00" + b"\x00" * 3)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def test_decompression_bombs_refused(tmp_path: Path, x4_file: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "bomb.png").write_bytes(png_claiming(100_000, 100_000))
    photo(20, 16).save(tmp_path / "fine.png")
    assert run(x4_file, tmp_path / "bomb.png", tmp_path / "fine.png", "--out", tmp_path / "out") == 1
    (line,) = error_lines(capsys.readouterr().err)
    assert str(tmp_path / "bomb.png") in line and "too large" in line and "10000000000 pixels" in line
    assert (tmp_path / "out" / "fine.png").is_file()
    # --max-pixels lowers the limit as well as raising it
    assert run(x4_file, tmp_path / "fine.png", "--out", tmp_path / "out2", "--max-pixels", "100") == 1
    (line,) = error_lines(capsys.readouterr().err)
    assert str(tmp_path / "fine.png") in line and "too large: 320 pixels" in line


def test_clashing_output_names(tmp_path: Path, x4_file: Path, capsys: pytest.CaptureFixture) -> None:
    photo(20, 16).save(tmp_path / "same.png")
    photo(20, 16).save(tmp_path / "same.jpg")
    assert run(x4_file, tmp_path / "same.png", tmp_path / "same.jpg", "--out", tmp_path / "out") == 1
    (line,) = error_lines(capsys.readouterr().err)
    assert str(tmp_path / "same.jpg") in line and "would overwrite" in line
    assert Image.open(tmp_path / "out" / "same.png").size == (80, 64)


def test_an_unusable_model_file_stops_with_code_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"not safetensors")
    photo(20, 16).save(tmp_path / "fine.png")
    assert run(tmp_path / "model.safetensors", tmp_path / "fine.png", "--out", tmp_path / "out") == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert "model.safetensors" in line and not (tmp_path / "out").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_asking_for_cuda_without_it_stops_with_code_2(
    tmp_path: Path, x4_file: Path, capsys: pytest.CaptureFixture
) -> None:
    photo(20, 16).save(tmp_path / "fine.png")
    assert run(x4_file, tmp_path / "fine.png", "--out", tmp_path / "out", "--device", "cuda") == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert "CUDA is not available" in line


def test_python_api_on_tensors_and_pil_images(x4: torch.nn.Module) -> None:
    x = as_tensor(photo(28, 20))
    with torch.no_grad():
        reference = x4(x[None])[0].clamp(0, 1)
    single = sr_toolkit.upscale(x4, x, tile=8)
    assert single.shape == (3, 80, 112)
    torch.testing.assert_close(single, reference, atol=1e-5, rtol=0)
    batch = sr_toolkit.upscale(x4, torch.stack([x, x.flip(-1)]))
    torch.testing.assert_close(batch[0], reference, atol=1e-5, rtol=0)
    assert batch.shape == (2, 3, 80, 112)

    rgb = photo(28, 20)
    result = sr_toolkit.upscale(x4, rgb, tile=8)
    assert isinstance(result, Image.Image) and result.mode == "RGB" and result.size == (112, 80)
    assert np.abs(np.asarray(result).astype(int) - expected_pixels(x4, x)).max() <= 1
    rgba = sr_toolkit.upscale(x4, photo(28, 20, "RGBA"))
    assert rgba.mode == "RGBA" and rgba.size == (112, 80) and np.asarray(rgba)[..., 3].min() == 255


def test_python_api_runs_in_eval_mode_and_restores_training_mode(x4: torch.nn.Module) -> None:
    x = as_tensor(photo(12, 12))
    expected = sr_toolkit.upscale(x4, x)
    x4.train()  # dropout and batch statistics would change the result
    try:
        torch.testing.assert_close(sr_toolkit.upscale(x4, x), expected)
        assert x4.training
    finally:
        x4.eval()
    with pytest.raises(TypeError, match="PIL image or a float tensor"):
        sr_toolkit.upscale(x4, torch.zeros(3, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="1 to 4 channels"):
        sr_toolkit.upscale(x4, torch.rand(5, 8, 8))


def test_import_sr_toolkit_stays_light() -> None:
    code = "import sys, sr_toolkit; assert 'torch' not in sys.modules, 'import sr_toolkit imported torch'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert sr_toolkit.upscale.__module__ == "sr_toolkit.inference.upscaling"
    assert sr_toolkit.load_model.__module__ == "sr_toolkit.core.model_file"
    with pytest.raises(AttributeError, match="no attribute 'upscal'"):
        sr_toolkit.upscal  # noqa: B018


def test_half_precision_stays_close(tmp_path: Path, x4_file: Path, x4: torch.nn.Module) -> None:
    photo(24, 20).save(tmp_path / "small.png")
    assert run(x4_file, tmp_path / "small.png", "--out", tmp_path / "out", "--half", "--tile", "8") == 0
    written = np.asarray(Image.open(tmp_path / "out" / "small.png")).astype(int)
    difference = np.abs(written - expected_pixels(x4, read_image(tmp_path / "small.png")))
    assert difference.max() <= 8 and difference.mean() < 1  # bfloat16 on the CPU: about 3 significant digits


def test_tiling_an_align_corners_model_warns(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    model_file = write_model(
        tmp_path, "scale: 4\nmodel: {type: resnet_x4, channels: 8, blocks: 1}\ndegradation: [{type: downscale}]\n"
    )
    photo(20, 16).save(tmp_path / "small.png")
    assert run(model_file, tmp_path / "small.png", "--out", tmp_path / "whole") == 0
    assert "warning:" not in capsys.readouterr().err
    assert run(model_file, tmp_path / "small.png", "--out", tmp_path / "tiled", "--tile", "8") == 0
    assert "warning: this model upsamples with align_corners=True" in capsys.readouterr().err


@pytest.mark.parametrize(
    "channels, dtype", [(1, np.uint16), (1, np.uint8), (2, np.uint8), (3, np.uint8), (4, np.uint8)]
)
def test_write_png_round_trips_through_pillow(tmp_path: Path, channels: int, dtype: type) -> None:
    top = np.iinfo(dtype).max
    pixels = np.random.default_rng(0).integers(0, top + 1, (37, 29, channels)).astype(dtype)
    pixels[:5] = top // 3  # flat rows as well as noise
    save_pixels(pixels, tmp_path / "out.png")
    decoded = np.asarray(Image.open(tmp_path / "out.png"))
    assert np.array_equal(decoded.reshape(pixels.shape), pixels)


# --- colour under alpha 0 ------------------------------------------------------------------------


def disc_alpha(width: int, height: int) -> np.ndarray:
    """uint8 (H, W) alpha: an opaque disc with a half-transparent rim, 0 around it."""
    yy, xx = np.mgrid[:height, :width]
    distance = np.hypot(yy - (height - 1) / 2, xx - (width - 1) / 2)
    return np.select([distance < 6, distance < 7], [255, 128], 0).astype(np.uint8)


def over(rgba: np.ndarray, background: int) -> np.ndarray:
    """8-bit RGBA (H, W, 4) laid over a uniform 8-bit background, as float (H, W, 3) levels."""
    alpha = rgba[..., 3:] / 255
    return rgba[..., :3] * alpha + background * (1 - alpha)


def test_colour_under_alpha_0_has_no_influence(tmp_path: Path, x4_file: Path, x4: torch.nn.Module) -> None:
    alpha = disc_alpha(24, 20)
    shape = np.asarray(photo(24, 20)).copy()
    hidden_colours = {
        "black": 0,
        "white": 255,
        "noise": np.random.default_rng(0).integers(0, 256, shape.shape, dtype=np.uint8),
    }
    images = {}
    for name, hidden in hidden_colours.items():
        rgb = np.where(alpha[..., None] == 0, hidden, shape).astype(np.uint8)
        images[name] = Image.fromarray(np.dstack([rgb, alpha]))
        images[name].save(tmp_path / f"{name}.png")
    assert run(x4_file, *(tmp_path / f"{name}.png" for name in images), "--out", tmp_path / "out") == 0
    written = {name: np.asarray(Image.open(tmp_path / "out" / f"{name}.png")) for name in images}
    assert written["black"].shape == (80, 96, 4)
    for name in ("white", "noise"):  # unfilled, these differed by up to 48 levels (this model)
        for background in (255, 0):
            assert np.array_equal(over(written[name], background), over(written["black"], background))
        assert np.array_equal(written[name], written["black"])
        api = np.asarray(sr_toolkit.upscale(x4, images[name], tile=8))
        assert np.abs(api.astype(int) - written["black"]).max() <= 1  # tiled: float rounding only


def test_transparent_edges_take_the_shapes_colour(tmp_path: Path, x4_file: Path, x4: torch.nn.Module) -> None:
    """A flat orange disc on black under alpha 0: its edges are orange, not darkened by the black."""
    alpha = disc_alpha(24, 20)
    orange = np.zeros((20, 24, 3), np.uint8) + np.array([230, 120, 40], np.uint8)
    Image.fromarray(np.dstack([orange * (alpha[..., None] > 0), alpha])).save(tmp_path / "disc.png")
    assert run(x4_file, tmp_path / "disc.png", "--out", tmp_path / "out") == 0
    written = np.asarray(Image.open(tmp_path / "out" / "disc.png")).astype(int)
    flat = expected_pixels(x4, as_tensor(orange))  # the plain RGB path on an all-orange image
    visible = written[..., 3] > 0
    assert visible.sum() > 0.1 * visible.size
    assert np.abs(written[..., :3] - flat)[visible].max() <= 1  # the fill's float rounding
    resized = to_uint8(imresize(torch.from_numpy(alpha / np.float32(255))[None], scale=4).clamp(0, 1))[0]
    assert np.array_equal(written[..., 3], resized.numpy())


def test_fill_hidden_blends_the_visible_colours() -> None:
    colour = torch.tensor([[[[0.2, 0.9, 0.7, 0.6]]]])
    alpha = torch.tensor([[[[1.0, 0.0, 0.0, 0.5]]]])
    filled = fill_hidden(colour, alpha)  # 2x2 means 0.2 and 0.6, bilinearly interpolated between
    torch.testing.assert_close(filled, torch.tensor([[[[0.2, 0.3, 0.5, 0.6]]]]), rtol=0, atol=1e-7)
    square = torch.tensor([[[[0.8, 0.1], [0.5, 0.3]]]])
    corner = torch.tensor([[[[0.0, 0.0], [0.0, 1.0]]]])
    torch.testing.assert_close(fill_hidden(square, corner), torch.full((1, 1, 2, 2), 0.3), rtol=0, atol=1e-7)
    assert fill_hidden(square, torch.zeros_like(corner)).tolist() == [[[[0.0, 0.0], [0.0, 0.0]]]]
    assert fill_hidden(square, torch.ones_like(corner)) is square


# --- outputs keep the input's kind -----------------------------------------------------------------


def test_opaque_alpha_gives_exactly_the_colours_without_it(tmp_path: Path, x4_file: Path, x4: torch.nn.Module) -> None:
    rgb, gray = photo(24, 20), photo(24, 20, "L")
    for name, image in {"rgb": rgb, "rgba": rgb.convert("RGBA"), "l": gray, "la": gray.convert("LA")}.items():
        image.save(tmp_path / f"{name}.png")
    names = ("rgb", "rgba", "l", "la")
    assert run(x4_file, *(tmp_path / f"{name}.png" for name in names), "--out", tmp_path / "out") == 0
    written = {name: Image.open(tmp_path / "out" / f"{name}.png") for name in names}
    assert [written[name].mode for name in names] == ["RGB", "RGBA", "L", "LA"]
    pixels = {name: np.asarray(image) for name, image in written.items()}
    assert np.array_equal(pixels["rgba"][..., :3], pixels["rgb"]) and (pixels["rgba"][..., 3] == 255).all()
    assert np.array_equal(pixels["la"][..., 0], pixels["l"]) and (pixels["la"][..., 1] == 255).all()
    api = {
        name: np.asarray(sr_toolkit.upscale(x4, image))
        for name, image in {"rgb": rgb, "rgba": rgb.convert("RGBA")}.items()
    }
    assert np.array_equal(api["rgba"][..., :3], api["rgb"]) and (api["rgba"][..., 3] == 255).all()


def ramp(width: int, height: int) -> np.ndarray:
    """uint8 (H, W) alpha from 1 to 255 across: every pixel visible, so nothing is filled."""
    return np.tile(np.linspace(1, 255, width).astype(np.uint8), (height, 1))


def kind_inputs(width: int, height: int) -> dict[str, np.ndarray]:
    """Input pixels (H, W, C), uint8 or uint16, by kind."""
    rgb, gray = np.asarray(photo(width, height)), np.asarray(photo(width, height, "L"))
    deep = rgb.astype(np.uint16) * 257 + np.arange(rgb.size, dtype=np.uint16).reshape(rgb.shape) % 250
    alpha = ramp(width, height)[..., None]
    return {
        "L": gray[..., None],
        "LA": np.dstack([gray, alpha]),
        "RGB": rgb,
        "RGBA": np.dstack([rgb, alpha]),
        "L16": deep[..., :1],
        "LA16": np.dstack([deep[..., :1], alpha.astype(np.uint16) * 257]),
        "RGB16": deep,
        "RGBA16": np.dstack([deep, alpha.astype(np.uint16) * 257]),
    }


def scaled(pixels: np.ndarray) -> torch.Tensor:
    """(H, W, C) integer pixels as float (C, H, W) in [0, 1]."""
    return torch.from_numpy(pixels.transpose(2, 0, 1) / np.float32(np.iinfo(pixels.dtype).max))


def expected_output(model: torch.nn.Module, values: torch.Tensor) -> np.ndarray:
    """The reference output, float (H, W, C) in [0, 1], for (C, H, W) input in [0, 1]: the model's
    untiled colour (gray as the mean of three channels), alpha resized alone by bicubic."""
    colour, alpha = (values[:-1], values[-1:]) if values.shape[0] in (2, 4) else (values, None)
    if colour.shape[0] == 1:
        result = gray_output(model, colour)[..., None]
    else:
        with torch.no_grad():
            result = model(colour[None])[0].clamp(0, 1).permute(1, 2, 0).numpy()
    if alpha is not None:
        result = np.dstack([result, imresize(alpha, scale=4).clamp(0, 1)[0].numpy()])
    return result


@pytest.mark.parametrize(
    "kind, depth, colour_type",
    [
        ("L", 8, 0),
        ("LA", 8, 4),
        ("RGB", 8, 2),
        ("RGBA", 8, 6),
        ("L16", 16, 0),
        ("LA16", 16, 4),
        ("RGB16", 16, 2),
        ("RGBA16", 16, 6),
    ],
)
def test_outputs_keep_the_inputs_kind(
    tmp_path: Path, x4_file: Path, x4: torch.nn.Module, kind: str, depth: int, colour_type: int
) -> None:
    pixels = kind_inputs(24, 20)[kind]
    save_pixels(pixels, tmp_path / "in.png")
    assert (tmp_path / "in.png").read_bytes()[24:26] == bytes([depth, colour_type])
    assert run(x4_file, tmp_path / "in.png", "--out", tmp_path / "out") == 0
    assert (tmp_path / "out" / "in.png").read_bytes()[24:26] == bytes([depth, colour_type])  # IHDR
    top = 2**depth - 1
    written = np.round(decode_image(tmp_path / "out" / "in.png").pixels.permute(1, 2, 0).numpy() * top)
    expected = np.round(expected_output(x4, scaled(pixels)) * top)
    assert written.shape == expected.shape == (80, 96, pixels.shape[2])
    assert np.abs(written - expected).max() <= 1


@pytest.mark.parametrize("kind, mode", [("P", "RGB"), ("P+key", "RGBA")])
def test_palette_inputs_give_rgb_or_rgba(tmp_path: Path, x4_file: Path, kind: str, mode: str) -> None:
    palette = photo(24, 20).quantize(colors=16)
    palette.save(tmp_path / "p.png", **({"transparency": 3} if kind == "P+key" else {}))
    Image.open(tmp_path / "p.png").convert(mode).save(tmp_path / "converted.png")
    assert run(x4_file, tmp_path / "p.png", tmp_path / "converted.png", "--out", tmp_path / "out") == 0
    written = Image.open(tmp_path / "out" / "p.png")
    assert written.mode == mode  # the palette's colours (and its transparency), as its conversion gives
    assert np.array_equal(np.asarray(written), np.asarray(Image.open(tmp_path / "out" / "converted.png")))
    if mode == "RGBA":
        assert (np.asarray(written)[..., 3] == 0).any() and (np.asarray(written)[..., 3] == 255).any()


def test_formats_without_alpha_or_16_bits_warn_once(
    tmp_path: Path, x4_file: Path, x4: torch.nn.Module, capsys: pytest.CaptureFixture
) -> None:
    inputs = kind_inputs(24, 20)
    for name in ("RGBA", "LA", "RGB16", "L"):
        save_pixels(inputs[name], tmp_path / f"{name}.png")
    files = [tmp_path / f"{name}.png" for name in ("RGBA", "LA", "RGB16")]
    assert run(x4_file, *files, "--out", tmp_path / "bmp", "--ext", "bmp") == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: BMP cannot store alpha: inputs with alpha are laid over white",
        "warning: BMP is written with 8 bits per channel: 16-bit inputs lose their low bits",
    ]
    for name, mode in [("RGBA", "RGB"), ("LA", "L"), ("RGB16", "RGB")]:
        written = Image.open(tmp_path / "bmp" / f"{name}.bmp")
        assert written.mode == mode
        values = scaled(inputs[name])
        if name in ("RGBA", "LA"):  # laid over white before the network: as if flattened first
            values = values[:-1] * values[-1:] + (1 - values[-1:])
        expected = np.round(expected_output(x4, values) * 255)
        assert np.abs(np.asarray(written).reshape(expected.shape) - expected).max() <= 1
    assert run(x4_file, tmp_path / "RGBA.png", tmp_path / "L.png", "--out", tmp_path / "jpg", "--ext", "jpg") == 0
    assert "JPEG cannot store alpha" in capsys.readouterr().err
    assert [Image.open(tmp_path / "jpg" / name).mode for name in ("RGBA.jpg", "L.jpg")] == ["RGB", "L"]
    assert run(x4_file, tmp_path / "RGBA.png", "--out", tmp_path / "webp", "--ext", "webp") == 0
    assert "warning:" not in capsys.readouterr().err
    assert Image.open(tmp_path / "webp" / "RGBA.webp").mode == "RGBA"


@pytest.mark.parametrize(
    "mode, returned",
    [
        ("L", "L"),
        ("LA", "LA"),
        ("1", "L"),
        ("RGB", "RGB"),
        ("RGBA", "RGBA"),
        ("P", "RGB"),
        ("PA", "RGBA"),
        ("CMYK", "RGB"),
        ("I;16", "I;16"),
        ("I", "I;16"),
    ],
)
def test_python_api_keeps_the_mode(x4: torch.nn.Module, mode: str, returned: str) -> None:
    gray = np.asarray(photo(24, 20, "L"))
    image = Image.fromarray(gray.astype(np.uint16) * 257).convert(mode) if mode.startswith("I") else photo(24, 20, mode)
    result = sr_toolkit.upscale(x4, image, tile=8)
    assert result.mode == returned and result.size == (96, 80)
    if mode in ("L", "I;16"):
        top = 255 if mode == "L" else 65535
        expected = np.round(gray_output(x4, torch.from_numpy(np.asarray(image) / np.float32(top))[None]) * top)
        assert np.abs(np.asarray(result).astype(int) - expected).max() <= 1


# --- memory: automatic tiles, and one error line when memory runs out ------------------------------


class Widening(torch.nn.Module):
    """Restoration (x1, no context) that makes a ``factor`` times wider float copy of its input, three
    times over, each freed before the next."""

    scale, halo = 1, 0

    def __init__(self, factor: int) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(3):
            x = torch.cat([x] * self.factor, dim=1)[:, :3] * 1
        return x


@pytest.mark.parametrize("factor", [1, 10])
def test_bytes_per_output_pixel_is_the_peak_of_live_tensors(factor: int) -> None:
    # at the peak: the probe (12 bytes a pixel), the previous copy (12), the wide one (12 * factor) and its
    # first three channels (12); the two earlier wide copies were freed and do not count
    assert bytes_per_output_pixel(Widening(factor)) == 12 * factor + 36


class NeedsTiles(torch.nn.Module):
    """An x2 upscaler (two 3x3 convs, then pixel shuffle: a halo of 2) whose device runs out of memory
    on inputs of more than ``LIMIT`` pixels, raising ``ERROR``."""

    scale, halo = 2, 2
    LIMIT = 70 * 70  # above the 64x64 probe of bytes_per_output_pixel
    ERROR: BaseException = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, padding=1),
            torch.nn.Tanh(),
            torch.nn.Conv2d(8, 12, 3, padding=1),
            torch.nn.PixelShuffle(2),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2] * x.shape[-1] > self.LIMIT:
            raise self.ERROR
        return self.body(x)


@pytest.fixture
def needs_tiles(tmp_path: Path, clean_registries: None) -> Path:
    """A model file of :class:`NeedsTiles`, registered for this test."""
    MODELS.register("needs_tiles")(NeedsTiles)
    torch.manual_seed(0)
    path = tmp_path / "needs_tiles.safetensors"
    save_model(path, NeedsTiles(), {"model": {"type": "needs_tiles"}, "scale": 2, "task": "upscale"})
    return path


def limit_memory(monkeypatch: pytest.MonkeyPatch, model: torch.nn.Module, output_pixels: int) -> int:
    """Make the available memory what ``model`` takes for ``output_pixels`` output pixels in one pass,
    over :data:`MEMORY_SHARE`; returns it (bytes)."""
    available = int((output_pixels + 0.5) * bytes_per_output_pixel(model) / MEMORY_SHARE)
    monkeypatch.setattr(upscaling, "available_memory", lambda device: available)
    return available


def test_images_too_large_for_memory_run_in_tiles(
    tmp_path: Path, needs_tiles: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    model = prepare(sr_toolkit.load_model(needs_tiles))
    available = limit_memory(monkeypatch, model, 140 * 140)  # 70x70 input pixels in one pass: a tile of 66, overlap 2
    photo(96, 80).save(tmp_path / "large.png")  # 7680 pixels: out of memory in one pass
    photo(20, 16).save(tmp_path / "small.png")
    assert run(needs_tiles, tmp_path / "large.png", tmp_path / "small.png", "--out", tmp_path / "out") == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "tiles of" in line]
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{tmp_path / 'large.png'}: tiles of 66 px: one pass over 96x80 would take about ")
    assert lines[0].endswith(f"more than 50% of the {available / 2**30:.2f} GiB available")
    x = read_image(tmp_path / "large.png")[None]
    monkeypatch.setattr(NeedsTiles, "LIMIT", 10**9)
    with torch.no_grad():
        whole = model(x)
    assert plan_memory(model, 80, 96, device="cpu", bytes_per_pixel=bytes_per_output_pixel(model)).tile == 66
    tiled = upscale_batch(model, x, scale=2, tile=66)
    torch.testing.assert_close(tiled, whole.clamp(0, 1), atol=1e-5, rtol=0)
    assert_same_image(tmp_path / "out" / "large.png", to_uint8(whole[0]).permute(1, 2, 0).numpy())
    assert Image.open(tmp_path / "out" / "small.png").size == (40, 32)


@pytest.mark.parametrize(
    "error",
    [
        torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"),
        RuntimeError(
            "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: you "
            "tried to allocate 11059200000 bytes. Error code 12 (Cannot allocate memory)"
        ),
        MemoryError(),
    ],
    ids=["cuda", "cpu", "python"],
)
@pytest.mark.parametrize(
    "tile, where, suggestion",
    [
        (None, "in one pass over 96x80 pixels", 48),
        (70, "in tiles of 70 px", 35),  # 74x74 input pixels with the overlap: more than 70x70
    ],
)
def test_running_out_of_memory_is_one_line_and_the_others_complete(
    tmp_path: Path,
    needs_tiles: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
    error: BaseException,
    tile: int | None,
    where: str,
    suggestion: int,
) -> None:
    monkeypatch.setattr(NeedsTiles, "ERROR", error)
    monkeypatch.setattr(upscaling, "available_memory", lambda device: 2**50)  # the estimate says it fits
    photo(96, 80).save(tmp_path / "large.png")
    photo(20, 16).save(tmp_path / "small.png")
    tiling = ["--tile", tile] if tile else []
    assert run(needs_tiles, tmp_path / "large.png", tmp_path / "small.png", "--out", tmp_path / "out", *tiling) == 1
    err = capsys.readouterr().err
    assert error_lines(err) == [f"error: {tmp_path / 'large.png'}: out of memory {where}: try --tile {suggestion}"]
    assert "Traceback" not in err and "1 written to" in err and "1 failed" in err
    assert [path.name for path in (tmp_path / "out").iterdir()] == ["small.png"]


def test_out_of_memory_errors_are_told_from_others() -> None:
    assert is_out_of_memory(MemoryError())
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory."))
    assert is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 8"))
    assert not is_out_of_memory(RuntimeError("Given groups=1, weight of size [8, 3, 3, 3], expected input"))
    assert not is_out_of_memory(ValueError("out of memory"))


def test_available_memory_is_what_the_system_can_give(monkeypatch: pytest.MonkeyPatch) -> None:
    import psutil

    monkeypatch.setattr(psutil, "virtual_memory", lambda: SimpleNamespace(total=10**6, available=12345))
    assert upscaling.available_memory("cpu") == 12345


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_available_gpu_memory_is_at_most_its_total() -> None:
    free = upscaling.available_memory("cuda")
    assert 0 < free <= torch.cuda.get_device_properties(0).total_memory


class NoHalo(torch.nn.Module):
    """A plugin model that declares no halo."""

    def __init__(self, scale: int = 2) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Conv2d(3, 12, 3, padding=1), torch.nn.PixelShuffle(scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def test_tiling_a_model_without_a_halo_warns_in_one_line_naming_the_option(
    tmp_path: Path, clean_registries: None, capsys: pytest.CaptureFixture[str]
) -> None:
    MODELS.register("no_halo")(NoHalo)
    model_path = tmp_path / "no_halo.safetensors"
    recipe = {"model": {"type": "no_halo"}, "scale": 2, "task": "upscale"}
    save_model(model_path, MODELS.build({"type": "no_halo"}), recipe)
    Image.fromarray(skimage.data.astronaut()[:40, :48]).save(tmp_path / "small.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no Python warning (and its source line) on the way
        code = upscale_tool.main(
            [str(model_path), str(tmp_path / "small.png"), "--tile", "16", "--out", str(tmp_path / "out")]
        )
    err = capsys.readouterr().err
    assert code == 0 and (tmp_path / "out" / "small.png").is_file()
    expected = "warning: model 'no_halo' declares no 'halo' (receptive-field radius): tiles overlap by 32 px"
    assert expected in err and "--tile-overlap" in err and "UserWarning" not in err
