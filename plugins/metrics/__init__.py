"""First-party metrics: importing this package registers them."""

from sr_toolkit_plugins.metrics import fidelity, perceptual  # noqa: F401
