"""Reading and writing images: modes, bit depths, orientation, and one clear error per bad file."""

from __future__ import annotations

import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from sr_toolkit.core.errors import DataError
from sr_toolkit.core.imageio import (
    composite,
    decode_image,
    from_pil,
    list_images,
    match_channels,
    read_image,
    save_image,
    split_alpha,
    to_uint8,
)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A real colour photo, small and not symmetric (uint8, H x W x 3)."""
    return np.array(Image.fromarray(data.chelsea()).resize((60, 40)))


def as_array(x: torch.Tensor) -> np.ndarray:
    return x.permute(1, 2, 0).numpy()


def test_rgb_png_exact(tmp_path: Path, photo: np.ndarray) -> None:
    Image.fromarray(photo).save(tmp_path / "cat.png")
    x = read_image(tmp_path / "cat.png")
    assert x.dtype == torch.float32 and x.shape == (3, 40, 60)
    np.testing.assert_allclose(as_array(x), photo / 255, atol=1e-7)


def test_grayscale_keep_gives_one_channel_and_rgb_replicates(tmp_path: Path) -> None:
    gray = data.camera()[::8, ::8]
    Image.fromarray(gray).save(tmp_path / "camera.png")
    kept = read_image(tmp_path / "camera.png", mode="keep")
    assert kept.shape == (1, 64, 64)
    np.testing.assert_allclose(kept[0].numpy(), gray / 255, atol=1e-7)
    rgb = read_image(tmp_path / "camera.png")
    assert rgb.shape == (3, 64, 64)
    assert torch.equal(rgb[0], kept[0]) and torch.equal(rgb[1], kept[0]) and torch.equal(rgb[2], kept[0])


def test_rgba_alpha_kept_or_dropped(tmp_path: Path, photo: np.ndarray) -> None:
    alpha = np.tile(np.linspace(0, 255, 60).astype(np.uint8), (40, 1))
    Image.fromarray(np.dstack([photo, alpha])).save(tmp_path / "a.png")
    rgba = read_image(tmp_path / "a.png", mode="RGBA")
    assert rgba.shape == (4, 40, 60)
    np.testing.assert_allclose(rgba[3].numpy(), alpha / 255, atol=1e-7)
    np.testing.assert_allclose(as_array(read_image(tmp_path / "a.png")), photo / 255, atol=1e-7)
    assert read_image(tmp_path / "a.png", mode="keep").shape == (3, 40, 60)
    opaque = tmp_path / "opaque.png"
    Image.fromarray(photo).save(opaque)
    assert torch.all(read_image(opaque, mode="RGBA")[3] == 1)


def test_gray_with_alpha(tmp_path: Path) -> None:
    gray = data.camera()[::16, ::16]
    Image.fromarray(np.dstack([gray, 255 - gray]), mode="LA").save(tmp_path / "la.png")
    assert read_image(tmp_path / "la.png", mode="keep").shape == (1, 32, 32)
    rgba = read_image(tmp_path / "la.png", mode="RGBA")
    np.testing.assert_allclose(rgba[0].numpy(), gray / 255, atol=1e-7)
    np.testing.assert_allclose(rgba[3].numpy(), (255 - gray) / 255, atol=1e-7)


def test_palette_image_reads_its_colours(tmp_path: Path, photo: np.ndarray) -> None:
    palette = Image.fromarray(photo).quantize(colors=16)
    palette.save(tmp_path / "p.png")
    indices = np.asarray(palette)
    colours = np.asarray(palette.getpalette(), dtype=np.float64).reshape(-1, 3)
    x = read_image(tmp_path / "p.png")
    np.testing.assert_allclose(as_array(x), colours[indices] / 255, atol=1e-7)
    assert read_image(tmp_path / "p.png", mode="keep").shape[0] == 3


def test_palette_transparency_becomes_alpha(tmp_path: Path, photo: np.ndarray) -> None:
    palette = Image.fromarray(photo).quantize(colors=8)
    palette.info["transparency"] = 0
    palette.save(tmp_path / "pt.png", transparency=0)
    alpha = read_image(tmp_path / "pt.png", mode="RGBA")[3].numpy()
    np.testing.assert_array_equal(alpha, (np.asarray(palette) != 0).astype(np.float32))


def test_16bit_grayscale_keeps_full_precision(tmp_path: Path) -> None:
    values = (data.camera()[::8, ::8].astype(np.uint32) * 257 + np.arange(64) % 200).astype(np.uint16)
    values[0, :3] = (0, 1, 65535)
    Image.fromarray(values).save(tmp_path / "deep.png")
    x = read_image(tmp_path / "deep.png", mode="keep")
    assert x.shape == (1, 64, 64)
    np.testing.assert_allclose(x[0].numpy(), values / 65535, rtol=0, atol=1e-7)
    assert x[0, 0, 1] > 0  # 1/65535 survives: not reduced to 8 bits


def test_32bit_integer_tiff_read_as_16bit_scale(tmp_path: Path) -> None:
    values = np.array([[0, 1000, 65535, 70000]], dtype=np.int32)
    Image.fromarray(values).save(tmp_path / "int.tif")
    x = read_image(tmp_path / "int.tif", mode="keep")
    np.testing.assert_allclose(x[0, 0].numpy(), [0, 1000 / 65535, 1, 1], atol=1e-7)


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    body = kind + payload
    return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def _png_16bit(path: Path, pixels: np.ndarray, colour_type: int, extra: bytes = b"") -> None:
    """Write (H, W, C) 16-bit samples as a PNG by hand (Pillow cannot write 16-bit colour); ``extra``
    chunks go before the image data."""
    height, width, _ = pixels.shape
    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in pixels)
    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    chunks = _png_chunk(b"IHDR", header) + extra + _png_chunk(b"IDAT", zlib.compress(rows))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunks + _png_chunk(b"IEND", b""))


def _deep(photo: np.ndarray) -> np.ndarray:
    """A photo on the 16-bit scale with low bytes that 8 bits cannot hold."""
    return photo.astype(np.uint16) * 257 + np.arange(photo.size, dtype=np.uint16).reshape(photo.shape) % 200


@pytest.mark.parametrize("colour_type, channels", [(2, 3), (6, 4), (4, 2)])
def test_16bit_colour_and_alpha_pngs_keep_full_precision(
    tmp_path: Path, photo: np.ndarray, colour_type: int, channels: int
) -> None:
    deep = _deep(np.dstack([photo, photo[..., :1]])[..., :channels])
    _png_16bit(tmp_path / "deep.png", deep, colour_type)
    pixels, bits = decode_image(tmp_path / "deep.png")
    assert bits == 16 and pixels.shape == (channels, 40, 60)
    np.testing.assert_allclose(as_array(pixels), deep / 65535, rtol=0, atol=1e-7)
    rgb = read_image(tmp_path / "deep.png")  # was Pillow's high byte: (deep >> 8) / 255
    expected_rgb = deep[..., :1].repeat(3, axis=2) if channels == 2 else deep[..., :3]
    np.testing.assert_allclose(as_array(rgb), expected_rgb / 65535, rtol=0, atol=1e-7)


def test_16bit_colour_png_orientation_key_and_truncation(tmp_path: Path, photo: np.ndarray) -> None:
    deep = _deep(photo)
    tiff = b"MM\x00\x2a\x00\x00\x00\x08\x00\x01" + struct.pack(">HHII", 0x0112, 3, 1, 6 << 16) + b"\x00" * 4
    _png_16bit(tmp_path / "rotated.png", deep, 2, _png_chunk(b"eXIf", tiff))  # orientation 6
    pixels, _ = decode_image(tmp_path / "rotated.png")
    np.testing.assert_allclose(as_array(pixels), np.rot90(deep, -1) / 65535, rtol=0, atol=1e-7)

    key = deep[0, 0]
    _png_16bit(tmp_path / "keyed.png", deep, 2, _png_chunk(b"tRNS", key.astype(">u2").tobytes()))
    pixels, bits = decode_image(tmp_path / "keyed.png")
    assert bits == 16 and pixels.shape == (4, 40, 60)
    np.testing.assert_array_equal(pixels[3].numpy(), np.any(deep != key, axis=2).astype(np.float32))
    assert pixels[3, 0, 0] == 0 and pixels[3].sum() == 40 * 60 - 1

    whole = (tmp_path / "keyed.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError, match="truncated or corrupt") as error:
        decode_image(tmp_path / "cut.png")
    assert str(tmp_path / "cut.png") in str(error.value) and "\n" not in str(error.value)


def _pil_kinds(photo: np.ndarray) -> dict[str, Image.Image]:
    gray = np.asarray(Image.fromarray(photo).convert("L"))
    keyed16 = Image.fromarray(gray.astype(np.uint16) * 257)
    keyed16.info["transparency"] = int(gray[0, 0]) * 257
    palette_with_key = Image.fromarray(photo).quantize(colors=8)
    palette_with_key.info["transparency"] = 0
    return {
        "L": Image.fromarray(gray),
        "LA": Image.fromarray(np.dstack([gray, 255 - gray])),
        "1": Image.fromarray(gray).convert("1"),
        "RGB": Image.fromarray(photo),
        "RGBA": Image.fromarray(photo).convert("RGBA"),
        "P": Image.fromarray(photo).quantize(colors=8),
        "P+key": palette_with_key,
        "CMYK": Image.fromarray(photo).convert("CMYK"),
        "I;16": Image.fromarray(gray.astype(np.uint16) * 257),
        "I;16+key": keyed16,
        "I": Image.fromarray(gray.astype(np.int32) * 257),
    }


@pytest.mark.parametrize(
    "kind, channels, bits",
    [
        ("L", 1, 8),
        ("LA", 2, 8),
        ("1", 1, 8),
        ("RGB", 3, 8),
        ("RGBA", 4, 8),
        ("P", 3, 8),
        ("P+key", 4, 8),
        ("CMYK", 3, 8),
        ("I;16", 1, 16),
        ("I;16+key", 2, 16),
        ("I", 1, 16),
    ],
)
def test_from_pil_keeps_the_channels_and_bits(photo: np.ndarray, kind: str, channels: int, bits: int) -> None:
    image = _pil_kinds(photo)[kind]
    pixels, found_bits = from_pil(image)
    assert pixels.shape == (channels, 40, 60) and found_bits == bits
    colour, alpha = split_alpha(pixels)
    rgb = np.asarray(image.convert("RGBA" if alpha is not None else "RGB"), dtype=np.float64) / 255
    if bits == 16:  # Pillow converts I;16 to 8 bits by clipping, not scaling: compare with the samples
        np.testing.assert_allclose(colour[0].numpy(), np.asarray(image) / 65535, rtol=0, atol=1e-7)
    else:
        expected = rgb[..., :1] if channels <= 2 else rgb[..., :3]
        np.testing.assert_allclose(as_array(colour), expected, rtol=0, atol=1e-7)
    if kind == "I;16+key":
        np.testing.assert_array_equal(alpha[0].numpy(), np.asarray(image) != image.info["transparency"])
    elif alpha is not None:
        np.testing.assert_allclose(alpha[0].numpy(), rgb[..., 3], rtol=0, atol=1e-7)


def test_float_images_are_refused(tmp_path: Path) -> None:
    image = Image.fromarray(np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="32-bit float"):
        from_pil(image)
    image.save(tmp_path / "float.tif")
    with pytest.raises(DataError, match="32-bit float") as error:
        read_image(tmp_path / "float.tif")
    assert str(tmp_path / "float.tif") in str(error.value)


def test_channel_helpers() -> None:
    gray = torch.tensor([[[0.25, 0.5]]])  # (1, 1, 2)
    assert match_channels(gray, 3).tolist() == [[[0.25, 0.5]]] * 3
    assert match_channels(gray[None], 3).shape == (1, 3, 1, 2)
    rgb = torch.tensor([[[0.0]], [[0.3]], [[0.9]]])
    torch.testing.assert_close(match_channels(rgb, 1), torch.tensor([[[0.4]]]))
    assert match_channels(rgb, 3) is rgb
    rgba = torch.cat([rgb, torch.tensor([[[0.5]]])])
    colour, alpha = split_alpha(rgba)
    assert torch.equal(colour, rgb) and alpha.tolist() == [[[0.5]]]
    assert split_alpha(rgb) == (rgb, None)
    torch.testing.assert_close(composite(rgba, 1.0), torch.tensor([[[0.5]], [[0.65]], [[0.95]]]))
    torch.testing.assert_close(composite(rgba[None], 0.0), torch.tensor([[[[0.0]], [[0.15]], [[0.45]]]]))
    assert composite(rgb, 1.0) is rgb


def test_cmyk_tiff(tmp_path: Path, photo: np.ndarray) -> None:
    Image.fromarray(photo).convert("CMYK").save(tmp_path / "c.tif")
    x = read_image(tmp_path / "c.tif")
    np.testing.assert_allclose(as_array(x), photo / 255, atol=1e-7)


def test_exif_orientation_is_applied(tmp_path: Path, photo: np.ndarray) -> None:
    image = Image.fromarray(photo)
    image.save(tmp_path / "plain.jpg", quality=95)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    image.save(tmp_path / "tagged.jpg", quality=95, exif=exif)
    plain, tagged = read_image(tmp_path / "plain.jpg"), read_image(tmp_path / "tagged.jpg")
    assert tagged.shape == (3, 60, 40)
    assert torch.equal(tagged, torch.rot90(plain, -1, (1, 2)))


def _bad_files(folder: Path, photo: np.ndarray) -> dict[str, Path]:
    Image.fromarray(photo).save(folder / "good.png")
    Image.fromarray(photo).save(folder / "good.jpg", quality=90)
    png, jpg = (folder / "good.png").read_bytes(), (folder / "good.jpg").read_bytes()
    files = {
        "empty": folder / "empty.png",
        "truncated png": folder / "cut.png",
        "truncated jpg": folder / "cut.jpg",
        "not an image": folder / "notes.png",
    }
    files["empty"].write_bytes(b"")
    files["truncated png"].write_bytes(png[: len(png) // 2])
    files["truncated jpg"].write_bytes(jpg[: len(jpg) // 2])
    files["not an image"].write_text("these are notes, not pixels\n")
    return files


@pytest.mark.parametrize(
    "kind, words",
    [
        ("empty", "empty"),
        ("truncated png", "truncated"),
        ("truncated jpg", "truncated"),
        ("not an image", "not an image"),
    ],
)
def test_bad_files_raise_data_error_naming_the_file(tmp_path: Path, photo: np.ndarray, kind: str, words: str) -> None:
    path = _bad_files(tmp_path, photo)[kind]
    with pytest.raises(DataError) as error:
        read_image(path)
    message = str(error.value)
    assert str(path) in message and words in message and "\n" not in message


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found") as error:
        read_image(tmp_path / "nowhere.png")
    assert str(tmp_path / "nowhere.png") in str(error.value)
    with pytest.raises(DataError, match="not a file"):
        read_image(tmp_path)


def test_decompression_bomb_limit(tmp_path: Path, photo: np.ndarray) -> None:
    Image.fromarray(photo).save(tmp_path / "big.png")
    with pytest.raises(DataError, match=r"too large: 2400 pixels, limit 1000") as error:
        read_image(tmp_path / "big.png", max_pixels=1000)
    assert str(tmp_path / "big.png") in str(error.value)
    assert read_image(tmp_path / "big.png", max_pixels=2400).shape == (3, 40, 60)


def test_pillow_bomb_warning_becomes_error_without_touching_global_filters(
    tmp_path: Path, photo: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    Image.fromarray(photo).save(tmp_path / "big.png")
    filters_before = list(warnings.filters)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2000)  # 2400 pixels: Pillow warns, does not raise
    with pytest.raises(DataError, match=r"too large: 2400 pixels, limit 2000"):
        read_image(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # over twice the limit: Pillow raises
    with pytest.raises(DataError, match=r"too large: 2400 pixels"):
        read_image(tmp_path / "big.png")
    assert warnings.filters == filters_before


def test_save_image_round_trip_is_exact_and_atomic(tmp_path: Path, photo: np.ndarray) -> None:
    x = torch.from_numpy(photo).permute(2, 0, 1).float() / 255
    target = tmp_path / "out" / "deep" / "cat.png"
    save_image(x, target)
    assert torch.equal(read_image(target), x)
    assert sorted(p.name for p in target.parent.iterdir()) == ["cat.png"]  # no temporary file left
    gray = x[:1]
    save_image(gray, tmp_path / "gray.png")
    assert torch.equal(read_image(tmp_path / "gray.png", mode="keep"), gray)
    rgba = torch.cat([x, x[:1]])
    save_image(rgba, tmp_path / "rgba.png")
    assert torch.equal(read_image(tmp_path / "rgba.png", mode="RGBA"), rgba)


def test_save_image_jpeg_and_refusals(tmp_path: Path, photo: np.ndarray) -> None:
    x = torch.from_numpy(photo).permute(2, 0, 1).float() / 255
    save_image(x, tmp_path / "cat.jpg")
    assert (read_image(tmp_path / "cat.jpg") - x).abs().mean() < 0.02
    with pytest.raises(ValueError, match="alpha"):
        save_image(torch.cat([x, x[:1]]), tmp_path / "cat4.jpg")
    with pytest.raises(ValueError, match="suffix"):
        save_image(x, tmp_path / "cat.xyz")
    with pytest.raises(ValueError, match="channels"):
        save_image(x[:2], tmp_path / "two.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cat.jpg"]


def test_failed_save_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_save(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_image(torch.zeros(3, 4, 4), tmp_path / "x.png")
    assert list(tmp_path.iterdir()) == []


def test_to_uint8_rounds_and_clamps() -> None:
    x = torch.tensor([-0.5, 0.0, 0.4 / 255, 1.4 / 255, 1.6 / 255, 0.5, 1.0, 2.0])
    assert to_uint8(x).tolist() == [0, 0, 0, 1, 2, 128, 255, 255]


def test_list_images_recursive_sorted_and_filtered(tmp_path: Path) -> None:
    for name in ["b.png", "a.JPG", "sub/c.webp", "sub/deeper/d.tif", "notes.txt", ".hidden/e.png", ".f.png"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    found = [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)]
    assert found == ["a.JPG", "b.png", "sub/c.webp", "sub/deeper/d.tif"]
    assert [p.name for p in list_images(tmp_path, recursive=False)] == ["a.JPG", "b.png"]
    with pytest.raises(DataError, match="folder not found") as error:
        list_images(tmp_path / "missing")
    assert str(tmp_path / "missing") in str(error.value)
    with pytest.raises(DataError, match="not a folder"):
        list_images(tmp_path / "b.png")
