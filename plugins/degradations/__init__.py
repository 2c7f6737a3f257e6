"""First-party degradations: importing this package registers them."""

from . import blur, brightness, compose, compression, downscale, impulse, noise, realesrgan, resize  # noqa: F401
