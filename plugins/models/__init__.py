"""First-party models: importing this package registers them."""

from . import conv_autoencoder, deconv, edsr, resnet_x4, spandrel_archs, srresnet, vgg_discriminator  # noqa: F401
