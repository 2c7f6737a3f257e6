"""First-party degradations: importing this package registers them."""

from . import blur, brightness, compose, downscale, impulse, jpeg, noise  # noqa: F401
