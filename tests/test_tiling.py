"""Tiled inference: tiled output equals untiled output when the overlap covers the receptive field."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from sr_toolkit.core.imageio import to_uint8
from sr_toolkit.core.registry import MODELS
from sr_toolkit.inference.tiling import (
    FALLBACK_OVERLAP,
    auto_tile,
    default_overlap,
    forward_tiled,
    spans,
    tile_count,
    tiles_exactly,
)

# Small versions of every shipped model for which tiling is exact (see the tiling module's docstring).
EXACT = [
    {"type": "edsr", "channels": 8, "blocks": 2},
    {"type": "srresnet", "channels": 8, "blocks": 2, "scale": 2},
    {"type": "resnet_x4", "channels": 8, "blocks": 1, "upsample": "bicubic", "global_skip": True},
    {"type": "deconv", "scale": 2},
    {"type": "deconv", "scale": 4},
    {"type": "conv_autoencoder"},
]


def randomised(spec: dict) -> nn.Module:
    """The model in eval mode with every weight, bias and BatchNorm statistic random (nothing zero)."""
    model = MODELS.build(spec).eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point():
                noise = torch.rand(tensor.shape, generator=generator)
                tensor.copy_(0.5 + noise if name.endswith("running_var") else 0.4 * (noise - 0.5))
    return model


@pytest.mark.parametrize("spec", EXACT, ids=lambda spec: spec["type"] + str(spec.get("scale", "")))
def test_tiled_equals_untiled_with_the_default_overlap(spec: dict) -> None:
    model = randomised(spec)
    x = torch.rand(2, 3, 37, 53, generator=torch.Generator().manual_seed(1))
    if spec["type"] == "conv_autoencoder":
        x = torch.rand(1, 3, 70, 90, generator=torch.Generator().manual_seed(1))  # padded to 80x96 inside
    whole = forward_tiled(model, x, scale=model.scale, tile=None)
    calls = []
    tiled = forward_tiled(model, x, scale=model.scale, tile=16, on_tile=lambda: calls.append(1))
    assert whole.shape == (x.shape[0], 3, model.scale * x.shape[2], model.scale * x.shape[3])
    assert len(calls) == tile_count(model, x.shape[2], x.shape[3], 16) > 4
    assert whole.std() > 0.01  # a model that outputs a constant would tile trivially
    torch.testing.assert_close(tiled, whole, atol=1e-5, rtol=0)
    if spec["type"] != "conv_autoencoder":
        with torch.no_grad():
            torch.testing.assert_close(whole, model(x), atol=1e-5, rtol=0)


def test_conv_autoencoder_untiled_pads_to_its_size_multiple() -> None:
    model = randomised({"type": "conv_autoencoder"})
    x = torch.rand(1, 3, 40, 50)
    padded = torch.nn.functional.pad(x, (0, 14, 0, 8), mode="replicate")
    with torch.no_grad():
        expected = model(padded)[..., :40, :50]
    torch.testing.assert_close(forward_tiled(model, x, scale=1, tile=None), expected, atol=1e-6, rtol=0)
    assert default_overlap(model) % 16 == 0 and default_overlap(model) >= model.halo


def test_an_overlap_short_of_the_receptive_field_leaves_seams() -> None:
    model = randomised({"type": "edsr", "channels": 8, "blocks": 2})
    x = torch.rand(1, 3, 40, 40)
    whole = forward_tiled(model, x, scale=4, tile=16)
    short = forward_tiled(model, x, scale=4, tile=16, overlap=model.halo // 2)
    assert (short - whole).abs().max() > 1e-3


def test_bilinear_align_corners_upsampling_does_not_tile_exactly() -> None:
    # documented exception: align_corners=True samples on a grid that depends on the input size
    model = randomised({"type": "resnet_x4", "channels": 8, "blocks": 1, "upsample": "bilinear_ac"})
    x = torch.rand(1, 3, 40, 40)
    whole = forward_tiled(model, x, scale=4, tile=None)
    assert (forward_tiled(model, x, scale=4, tile=16) - whole).abs().max() > 1e-3
    assert not tiles_exactly(model)
    assert all(tiles_exactly(MODELS.build(spec)) for spec in EXACT)


class Recorder(nn.Module):
    """Nearest x2 upscaling that remembers the largest input it was given."""

    scale, halo = 2, 3

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.largest = max(self.largest, x.shape[-2] * x.shape[-1])
        return x.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)


@pytest.mark.parametrize("size", [40, 200])
def test_the_model_never_sees_more_than_a_tile_and_its_overlap(size: int) -> None:
    model = Recorder()
    x = torch.rand(1, 3, size, size + 7)
    out = forward_tiled(model, x, scale=2, tile=16)
    assert model.largest == (16 + 2 * 3) ** 2  # the same for both image sizes
    torch.testing.assert_close(out, x.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1))


def test_spans_partition_the_axis_and_read_the_overlap() -> None:
    result = spans(50, 16, 5)
    assert [(s.start, s.stop) for s in result] == [(0, 16), (16, 32), (32, 48), (48, 50)]
    assert [(s.read_start, s.read_stop) for s in result] == [(0, 21), (11, 37), (27, 50), (43, 50)]
    assert spans(50, None, 5) == spans(50, 64, 5) == [(0, 50, 0, 50)]


def test_integer_output_is_rounded_like_a_saved_image() -> None:
    model = randomised({"type": "deconv", "scale": 2})
    x = torch.rand(1, 3, 30, 20)
    out = torch.empty(1, 3, 60, 40, dtype=torch.uint8)
    forward_tiled(model, x, scale=2, tile=8, out=out)
    assert torch.equal(out, to_uint8(forward_tiled(model, x, scale=2, tile=None)))


def test_tiles_run_in_the_model_dtype_and_come_back_in_the_input_dtype() -> None:
    model = randomised({"type": "edsr", "channels": 8, "blocks": 1})
    x = torch.rand(1, 3, 24, 24)
    reference = forward_tiled(model, x, scale=4, tile=None)
    result = forward_tiled(model.to(torch.bfloat16), x, scale=4, tile=8)
    assert result.dtype == torch.float32
    assert 0 < (result - reference).abs().max() < 0.1


def test_models_without_a_halo_get_a_fallback_overlap_and_a_warning() -> None:
    model = nn.Conv2d(3, 3, 3, padding=1)
    with pytest.warns(UserWarning, match="no 'halo'"):
        assert default_overlap(model) == FALLBACK_OVERLAP
    x = torch.rand(1, 3, 40, 40)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one tile needs no overlap: no warning
        whole = forward_tiled(model, x, scale=1, tile=None)
    with pytest.warns(UserWarning, match="no 'halo'"):
        torch.testing.assert_close(forward_tiled(model, x, scale=1, tile=16), whole)


def test_bad_arguments_are_refused() -> None:
    model = randomised({"type": "deconv", "scale": 2})
    x = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match="not 64x64 \\(scale 4\\)"):
        forward_tiled(model, x, scale=4, tile=None)
    with pytest.raises(ValueError, match="tile"):
        forward_tiled(model, x, scale=2, tile=0)
    with pytest.raises(ValueError, match="overlap"):
        forward_tiled(model, x, scale=2, tile=8, overlap=-1)
    with pytest.raises(ValueError, match="N, C, H, W"):
        forward_tiled(model, x[0], scale=2, tile=8)
    with pytest.raises(ValueError, match="float"):
        forward_tiled(model, (x * 255).to(torch.uint8), scale=2, tile=8)
    with pytest.raises(ValueError, match="out: expected 32x32"):
        forward_tiled(model, x, scale=2, tile=8, out=torch.empty(1, 3, 30, 32))


class Padded(Recorder):
    """:class:`Recorder` that needs sizes in multiples of 8 (its halo of 3 becomes an overlap of 8)."""

    size_multiple = 8


def test_auto_tile_leaves_images_that_fit_in_one_pass() -> None:
    model = Recorder()  # x2, halo 3
    assert auto_tile(model, 40, 50, scale=2, max_pixels=80 * 100) is None  # exactly the limit
    assert auto_tile(model, 40, 51, scale=2, max_pixels=80 * 100) == 38  # 89 output pixels a side: 44 input
    assert auto_tile(model, 40, 51, scale=2, max_pixels=80 * 100, tile=256) == 256  # evaluation's fixed tile


@pytest.mark.parametrize(
    "model, max_pixels, overlap, tile",
    [
        (Recorder(), 80 * 80, None, 34),  # (34 + 2 * 3) * 2 = 80 output pixels a side
        (Recorder(), 81 * 81, None, 34),  # 81 // 2 = 40 input pixels a side, 6 of them overlap
        (Recorder(), 80 * 80, 10, 20),  # the overlap asked for
        (Padded(), 80 * 80, None, 24),  # 40 - 2 * 8, in multiples of 8
        (Padded(), 85 * 85, 5, 24),  # an overlap of 5 is rounded up to 8 as forward_tiled rounds it
        (Recorder(), 30 * 30, None, 16),  # too little memory for any tile: the smallest
        (Padded(), 0, None, 16),
    ],
)
def test_auto_tile_is_the_largest_tile_whose_pass_fits(
    model: nn.Module, max_pixels: int, overlap: int | None, tile: int
) -> None:
    assert auto_tile(model, 200, 300, scale=2, max_pixels=max_pixels, overlap=overlap) == tile


def test_auto_tile_passes_stay_within_the_limit_and_equal_one_pass() -> None:
    model = Recorder()
    x = torch.rand(1, 3, 150, 97)
    tile = auto_tile(model, 150, 97, scale=2, max_pixels=4 * 50 * 50)
    assert tile == 44
    out = forward_tiled(model, x, scale=2, tile=tile)
    assert model.largest * 4 <= 4 * 50 * 50  # no pass made more output pixels than allowed
    torch.testing.assert_close(out, x.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1))


def test_auto_tile_never_tiles_where_tiles_would_differ() -> None:
    align_corners = randomised({"type": "resnet_x4", "channels": 8, "blocks": 1, "upsample": "bilinear_ac"})
    assert auto_tile(align_corners, 500, 500, scale=4, max_pixels=100) is None
    no_halo = nn.Conv2d(3, 3, 3, padding=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no guessed overlap, no warning about one
        assert auto_tile(no_halo, 500, 500, scale=1, max_pixels=100) is None
        assert auto_tile(no_halo, 500, 500, scale=1, max_pixels=100, tile=256) is None
    assert all(auto_tile(MODELS.build(spec), 100, 100, scale=4, max_pixels=100) is not None for spec in EXACT)
