"""The architectures people train and share today, built on spandrel's classes (spandrel's main package, MIT).

Each factory builds the spandrel class itself, not a wrapper, so a ``model.safetensors`` trained here has the
original project's state-dict keys and loads unchanged with ``spandrel.ModelLoader().load_from_file`` (and so in
chaiNNer and ComfyUI). Names and default sizes follow traiNNer-redux's ``network_g`` types. Hyper-parameters that
spandrel cannot read back from a state dict (SwinIR's, HAT's and DAT's ``img_range``, HAT's ``conv_scale``, RealPLKSR's
``norm_groups``, SPAN's normalisation constants) stay at the values its detection assumes.
"""

from __future__ import annotations

from collections.abc import Sequence

from spandrel.architectures.Compact import Compact
from spandrel.architectures.DAT import DAT
from spandrel.architectures.ESRGAN import ESRGAN
from spandrel.architectures.HAT import HAT
from spandrel.architectures.OmniSR import OmniSR
from spandrel.architectures.PLKSR import RealPLKSR
from spandrel.architectures.SPAN import SPAN
from spandrel.architectures.SwinIR import SwinIR
from torch import nn

from sr_toolkit.core.model_contract import declare
from sr_toolkit.core.receptive_field import halo
from sr_toolkit.core.registry import MODELS

SCALES = (2, 3, 4)
"""The scales every family here trains at (SwinIR's nearest+conv upsampler: 4 only)."""

SPATIAL = (nn.Conv2d, nn.PixelShuffle, nn.Upsample)
WINDOW_CAVEAT = "attends within windows laid out from the image's corner, so a tile's windows differ from the whole's"
MINIMUM_WINDOWED = 16  # spandrel's size requirement for its window-attention models


def require_scale(scale: int, supported: Sequence[int] = SCALES) -> None:
    """Raise ValueError unless ``scale`` is one of ``supported``."""
    if scale not in supported:
        raise ValueError(f"scale {scale} is not supported; supported scales: {', '.join(map(str, supported))}")


def spatial_layers(model: nn.Module, skip: Sequence[nn.Module] = ()) -> list[nn.Module]:
    """``model``'s convolutions, pixel shuffles and upsampling layers in registration order (the order they run in
    these networks), leaving out those inside ``skip`` (branches that do not run at inference)."""
    skipped = {id(layer) for branch in skip for layer in branch.modules()}
    return [module for module in model.modules() if isinstance(module, SPATIAL) and id(module) not in skipped]


def declare_convolutional(
    model: nn.Module, scale: int, layers: Sequence[nn.Module], *extra: nn.Module, **values: object
) -> nn.Module:
    """Declare the contract of a convolutional ``model``: exact tiling with its receptive-field radius.

    The halo chains ``layers`` (everything else in these networks is pointwise); ``extra`` layers form a
    parallel branch (a global skip). ``values`` add or override declarations."""
    declare(model, scale=scale, halo=halo(layers, extra), **{"exact_tiling": True, **values})
    return model


def declare_windowed(
    model: nn.Module, scale: int, window: int, supports_half: bool, supports_bfloat16: bool = True
) -> nn.Module:
    """Declare the contract of a window-attention ``model``: inputs padded to ``window`` multiples, tiles
    overlapping by one window, tiling only approximate."""
    declare(
        model,
        scale=scale,
        size_multiple=window,
        minimum_size=MINIMUM_WINDOWED,
        halo=window,
        exact_tiling=False,
        tiling_caveat=WINDOW_CAVEAT,
        supports_half=supports_half,
        supports_bfloat16=supports_bfloat16,
    )
    return model


@MODELS.register("esrgan")
def esrgan(scale: int = 4, num_filters: int = 64, num_blocks: int = 23) -> nn.Module:
    """ESRGAN's RRDBNet (Wang et al. 2018); defaults: Real-ESRGAN x4plus (64 features, 23 RRDBs, growth 32)."""
    require_scale(scale)
    model = ESRGAN(num_filters=num_filters, num_blocks=num_blocks, scale=scale)
    return declare_convolutional(model, scale, spatial_layers(model))


def compact_net(scale: int, num_feat: int, num_conv: int) -> nn.Module:
    """SRVGGNetCompact with a nearest-upsampled global skip (its contract declared)."""
    require_scale(scale)
    model = Compact(num_feat=num_feat, num_conv=num_conv, upscale=scale)
    return declare_convolutional(model, scale, spatial_layers(model), nn.Upsample(scale_factor=scale, mode="nearest"))


@MODELS.register("compact")
def compact(scale: int = 4, num_feat: int = 64, num_conv: int = 16) -> nn.Module:
    """Real-ESRGAN's SRVGGNetCompact: a plain conv + PReLU stack and a pixel shuffle (64 features, 16 convs)."""
    return compact_net(scale, num_feat, num_conv)


@MODELS.register("ultracompact")
def ultracompact(scale: int = 4, num_feat: int = 64, num_conv: int = 8) -> nn.Module:
    """SRVGGNetCompact at the ultra-compact size: 64 features, 8 convs."""
    return compact_net(scale, num_feat, num_conv)


@MODELS.register("superultracompact")
def superultracompact(scale: int = 4, num_feat: int = 24, num_conv: int = 8) -> nn.Module:
    """SRVGGNetCompact at the super-ultra-compact size: 24 features, 8 convs."""
    return compact_net(scale, num_feat, num_conv)


@MODELS.register("span")
def span(scale: int = 4, feature_channels: int = 48) -> nn.Module:
    """SPAN (Wan et al. 2024): swift parameter-free attention, re-parameterisable convs (48 features)."""
    require_scale(scale)
    model = SPAN(num_in_ch=3, num_out_ch=3, feature_channels=feature_channels, upscale=scale)
    reparameterised = [block for block in model.modules() if hasattr(block, "eval_conv")]
    for block in reparameterised:
        derived_not_learnt(block.eval_conv)
    training_branches = [branch for block in reparameterised for branch in (block.conv, block.sk)]
    return declare_convolutional(model, scale, spatial_layers(model, skip=training_branches))


def derived_not_learnt(layer: nn.Module) -> None:
    """Turn ``layer``'s parameters into buffers of the same names (its state-dict keys are unchanged): SPAN's
    inference convolution is recomputed from the training branch in eval mode, so no optimizer should hold,
    decay or expect a gradient for it."""
    for name, parameter in list(layer.named_parameters(recurse=False)):
        delattr(layer, name)
        layer.register_buffer(name, parameter.detach())


@MODELS.register("realplksr")
def realplksr(
    scale: int = 4,
    dim: int = 64,
    n_blocks: int = 28,
    kernel_size: int = 17,
    split_ratio: float = 0.25,
    use_ea: bool = True,
    layer_norm: bool = True,
) -> nn.Module:
    """RealPLKSR (partial large-kernel CNN, Lee et al. 2024; neosr's real-world variant), 64 dim, 28 blocks.

    Without ``layer_norm`` each block ends in a GroupNorm over the whole image: tiles then only approximate the
    whole image's result, and float16 is unsupported (as spandrel says)."""
    require_scale(scale)
    if dim % 4:
        raise ValueError(f"dim must be a multiple of 4 (its GroupNorm's 4 groups), got {dim}")
    model = RealPLKSR(
        dim=dim,
        n_blocks=n_blocks,
        upscaling_factor=scale,
        kernel_size=kernel_size,
        split_ratio=split_ratio,
        use_ea=use_ea,
        layer_norm=layer_norm,
    )
    if layer_norm:
        return declare_convolutional(model, scale, spatial_layers(model))
    return declare_convolutional(
        model,
        scale,
        spatial_layers(model),
        supports_half=False,
        exact_tiling=False,
        tiling_caveat="normalises each block over the whole image (GroupNorm), so tiles differ from the whole",
    )


def swinir_net(
    scale: int,
    img_size: int,
    embed_dim: int,
    depths: Sequence[int],
    num_heads: Sequence[int],
    window_size: int,
    upsampler: str,
) -> nn.Module:
    """SwinIR with traiNNer-redux's fixed choices (mlp ratio 2, img_range 1); the large size's nearest+conv
    upsampler works at x4 only."""
    require_scale(scale, (4,) if upsampler == "nearest+conv" else SCALES)
    model = SwinIR(
        upscale=scale,
        img_size=img_size,
        embed_dim=embed_dim,
        depths=list(depths),
        num_heads=list(num_heads),
        window_size=window_size,
        mlp_ratio=2.0,
        img_range=1.0,
        upsampler=upsampler,
        resi_connection="3conv" if upsampler == "nearest+conv" else "1conv",
    )
    # spandrel's SwinIR adds its attention mask in float32 for any size but its training one, so with bfloat16
    # weights the attention's matmul mixes dtypes and fails: it runs in float32 only
    return declare_windowed(model, scale, window_size, supports_half=False, supports_bfloat16=False)


@MODELS.register("swinir_s")
def swinir_s(
    scale: int = 4,
    embed_dim: int = 60,
    depths: Sequence[int] = (6, 6, 6, 6),
    num_heads: Sequence[int] = (6, 6, 6, 6),
    window_size: int = 8,
) -> nn.Module:
    """SwinIR small (Liang et al. 2021; lightweight SR): 60 dim, 4 x 6 Swin blocks, pixel-shuffle direct."""
    return swinir_net(scale, 64, embed_dim, depths, num_heads, window_size, "pixelshuffledirect")


@MODELS.register("swinir_m")
def swinir_m(
    scale: int = 4,
    embed_dim: int = 180,
    depths: Sequence[int] = (6, 6, 6, 6, 6, 6),
    num_heads: Sequence[int] = (6, 6, 6, 6, 6, 6),
    window_size: int = 8,
) -> nn.Module:
    """SwinIR medium (the paper's classical SR model): 180 dim, 6 x 6 Swin blocks, pixel shuffle."""
    return swinir_net(scale, 48, embed_dim, depths, num_heads, window_size, "pixelshuffle")


@MODELS.register("swinir_l")
def swinir_l(
    scale: int = 4,
    embed_dim: int = 240,
    depths: Sequence[int] = (6,) * 9,
    num_heads: Sequence[int] = (8,) * 9,
    window_size: int = 8,
) -> nn.Module:
    """SwinIR large (the paper's real-world SR model): 240 dim, 9 x 6 Swin blocks, nearest+conv, x4 only."""
    return swinir_net(scale, 64, embed_dim, depths, num_heads, window_size, "nearest+conv")


def hat_net(
    scale: int,
    embed_dim: int,
    depths: Sequence[int],
    num_heads: Sequence[int],
    window_size: int,
    compress_ratio: int,
    squeeze_factor: int,
) -> nn.Module:
    """HAT with traiNNer-redux's fixed choices (mlp ratio 2, img_range 1, conv_scale 0.01)."""
    require_scale(scale)
    if embed_dim < max(compress_ratio, squeeze_factor):
        raise ValueError(
            f"embed_dim {embed_dim} leaves its channel attention no channels: it must be at least "
            f"compress_ratio ({compress_ratio}) and squeeze_factor ({squeeze_factor})"
        )
    model = HAT(
        upscale=scale,
        img_size=64,
        embed_dim=embed_dim,
        depths=list(depths),
        num_heads=list(num_heads),
        window_size=window_size,
        compress_ratio=compress_ratio,
        squeeze_factor=squeeze_factor,
        mlp_ratio=2.0,
        img_range=1.0,
    )
    return declare_windowed(model, scale, window_size, supports_half=False)


@MODELS.register("hat_s")
def hat_s(
    scale: int = 4,
    embed_dim: int = 144,
    depths: Sequence[int] = (6,) * 6,
    num_heads: Sequence[int] = (6,) * 6,
    window_size: int = 16,
    compress_ratio: int = 24,
    squeeze_factor: int = 24,
) -> nn.Module:
    """HAT small (Chen et al. 2023, hybrid attention transformer): 144 dim, 6 x 6 blocks, compress/squeeze 24."""
    return hat_net(scale, embed_dim, depths, num_heads, window_size, compress_ratio, squeeze_factor)


@MODELS.register("hat_m")
def hat_m(
    scale: int = 4,
    embed_dim: int = 180,
    depths: Sequence[int] = (6,) * 6,
    num_heads: Sequence[int] = (6,) * 6,
    window_size: int = 16,
    compress_ratio: int = 3,
    squeeze_factor: int = 30,
) -> nn.Module:
    """HAT medium (the paper's HAT): 180 dim, 6 x 6 blocks, 16 px windows."""
    return hat_net(scale, embed_dim, depths, num_heads, window_size, compress_ratio, squeeze_factor)


@MODELS.register("hat_l")
def hat_l(
    scale: int = 4,
    embed_dim: int = 180,
    depths: Sequence[int] = (6,) * 12,
    num_heads: Sequence[int] = (6,) * 12,
    window_size: int = 16,
    compress_ratio: int = 3,
    squeeze_factor: int = 30,
) -> nn.Module:
    """HAT large (the paper's HAT-L): 180 dim, 12 x 6 blocks, 16 px windows."""
    return hat_net(scale, embed_dim, depths, num_heads, window_size, compress_ratio, squeeze_factor)


def dat_net(
    scale: int,
    embed_dim: int,
    depth: Sequence[int],
    num_heads: Sequence[int],
    split_size: Sequence[int],
    expansion_factor: float,
    light: bool = False,
) -> nn.Module:
    """DAT with img_range 1; the light size has a 3-conv residual connection and a direct pixel shuffle."""
    require_scale(scale)
    model = DAT(
        upscale=scale,
        img_size=64,
        embed_dim=embed_dim,
        depth=list(depth),
        num_heads=list(num_heads),
        split_size=list(split_size),
        expansion_factor=expansion_factor,
        img_range=1.0,
        resi_connection="3conv" if light else "1conv",
        upsampler="pixelshuffledirect" if light else "pixelshuffle",
    )
    return declare_windowed(model, scale, max(split_size), supports_half=False)


@MODELS.register("dat")
def dat(
    scale: int = 4,
    embed_dim: int = 180,
    depth: Sequence[int] = (6,) * 6,
    num_heads: Sequence[int] = (6,) * 6,
    split_size: Sequence[int] = (8, 32),
    expansion_factor: float = 4.0,
) -> nn.Module:
    """DAT (Chen et al. 2023, dual aggregation transformer): 180 dim, 6 x 6 blocks, 8 x 32 windows."""
    return dat_net(scale, embed_dim, depth, num_heads, split_size, expansion_factor)


@MODELS.register("dat_s")
def dat_s(
    scale: int = 4,
    embed_dim: int = 180,
    depth: Sequence[int] = (6,) * 6,
    num_heads: Sequence[int] = (6,) * 6,
    split_size: Sequence[int] = (8, 16),
    expansion_factor: float = 2.0,
) -> nn.Module:
    """DAT-S: 180 dim, 6 x 6 blocks, 8 x 16 windows, expansion 2."""
    return dat_net(scale, embed_dim, depth, num_heads, split_size, expansion_factor)


@MODELS.register("dat_2")
def dat_2(
    scale: int = 4,
    embed_dim: int = 180,
    depth: Sequence[int] = (6,) * 6,
    num_heads: Sequence[int] = (6,) * 6,
    split_size: Sequence[int] = (8, 32),
    expansion_factor: float = 2.0,
) -> nn.Module:
    """DAT-2: 180 dim, 6 x 6 blocks, 8 x 32 windows, expansion 2."""
    return dat_net(scale, embed_dim, depth, num_heads, split_size, expansion_factor)


@MODELS.register("dat_light")
def dat_light(
    scale: int = 4,
    embed_dim: int = 60,
    depth: Sequence[int] = (18,),
    num_heads: Sequence[int] = (6,),
    split_size: Sequence[int] = (8, 32),
    expansion_factor: float = 2.0,
) -> nn.Module:
    """DAT-light: 60 dim, one group of 18 blocks, 8 x 32 windows, 3-conv residual, direct pixel shuffle."""
    return dat_net(scale, embed_dim, depth, num_heads, split_size, expansion_factor, light=True)


@MODELS.register("omnisr")
def omnisr(scale: int = 4, num_feat: int = 64, res_num: int = 5, block_num: int = 1, window_size: int = 8) -> nn.Module:
    """Omni-SR (Wang et al. 2023, omni self-attention): 64 features, 5 groups, 8 px windows."""
    require_scale(scale)
    model = OmniSR(num_feat=num_feat, res_num=res_num, block_num=block_num, window_size=window_size, up_scale=scale)
    return declare_windowed(model, scale, window_size, supports_half=True)
