"""The shipped recipes (YAML), installed with sr-toolkit as the package ``sr_toolkit.recipes``.

This file only makes the folder a package, so a wheel carries the recipes and
``sr_toolkit.config.shipped`` finds them by name (``sr-toolkit train resnet_x4``) in any install.
"""
