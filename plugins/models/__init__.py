"""First-party models: importing this package registers them."""

from . import conv_autoencoder, deconv, edsr, resnet_x4, srresnet  # noqa: F401
