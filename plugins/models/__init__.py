"""First-party models: importing this package registers them."""

from . import (  # noqa: F401
    conv_autoencoder,
    deconv,
    edsr,
    resnet_x4,
    spandrel_archs,
    srresnet,
    unet_discriminator,
    vgg_discriminator,
)
