"""Small widths of the spandrel families that spandrel still detects (see tests/test_architectures.py):
name -> (arguments, spandrel architecture id)."""

from __future__ import annotations

from typing import Any

SMALL: dict[str, tuple[dict[str, Any], str]] = {
    "esrgan": ({"num_filters": 8, "num_blocks": 1}, "ESRGAN"),
    "compact": ({"num_feat": 8, "num_conv": 2}, "Compact"),
    "ultracompact": ({"num_feat": 8, "num_conv": 2}, "Compact"),
    "superultracompact": ({"num_feat": 8, "num_conv": 2}, "Compact"),
    "span": ({"feature_channels": 8}, "SPAN"),
    "realplksr": ({"dim": 8, "n_blocks": 2, "kernel_size": 5}, "PLKSR"),
    "dat": ({"embed_dim": 32, "depth": [2], "num_heads": [2], "split_size": [4, 8]}, "DAT"),
    "dat_s": ({"embed_dim": 32, "depth": [2], "num_heads": [2], "split_size": [4, 8]}, "DAT"),
    "dat_2": ({"embed_dim": 32, "depth": [2], "num_heads": [2], "split_size": [4, 8]}, "DAT"),
    "dat_light": ({"embed_dim": 32, "depth": [2], "num_heads": [2], "split_size": [4, 8]}, "DAT"),
    "swinir_s": ({"embed_dim": 12, "depths": [2], "num_heads": [2]}, "SwinIR"),
    "swinir_m": ({"embed_dim": 12, "depths": [2], "num_heads": [2]}, "SwinIR"),
    "swinir_l": ({"embed_dim": 12, "depths": [2], "num_heads": [2]}, "SwinIR"),
    "omnisr": ({"num_feat": 16, "res_num": 1}, "OmniSR"),
    "hat_s": ({"embed_dim": 24, "depths": [2], "num_heads": [2], "window_size": 8}, "HAT"),
    "hat_m": ({"embed_dim": 30, "depths": [2], "num_heads": [2], "window_size": 8}, "HAT"),
    "hat_l": ({"embed_dim": 30, "depths": [2], "num_heads": [2], "window_size": 8}, "HAT"),
}
