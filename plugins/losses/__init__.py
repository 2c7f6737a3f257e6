"""First-party losses: importing this package registers them."""

from sr_toolkit_plugins.losses import pixel, structural  # noqa: F401
