"""First-party datasets: importing this package registers them."""

from sr_toolkit_plugins.datasets import builtin, cifar10, image_folder, paired_folder, prepared  # noqa: F401
