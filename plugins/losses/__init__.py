"""First-party losses: importing this package registers them."""

from sr_toolkit_plugins.losses import adversarial, perceptual, pixel, structural  # noqa: F401
