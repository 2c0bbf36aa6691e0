"""The Brain2Pix PatchGAN discriminator (paper section 3.2.1; docs/method.md section 4)."""

from mxnet.gluon import HybridBlock, nn

__all__ = ["PatchDiscriminator", "patch_discriminator"]


class PatchDiscriminator(HybridBlock):
    """PatchGAN on concat(network input, image).

    Parameters
    ----------
    in_channels : int
        Channels of the concatenated input: generator input channels + 3 (18 with 15 RFSimages).
    ndf : int
        Base width (64).
    bn_momentum : float

    Shapes
    ------
    input (N, in_channels, 96, 96) -> logits (N, 1, 6, 6). With in_channels=18, ndf=64:
    2,779,201 parameters (running statistics included).
    """

    def __init__(self, in_channels=18, ndf=64, bn_momentum=0.1, **kwargs):
        super().__init__(**kwargs)
        self.in_channels = in_channels
        with self.name_scope():
            self.body = nn.HybridSequential(prefix="")
            with self.body.name_scope():
                self.body.add(nn.Conv2D(ndf, 4, 2, 1, in_channels=in_channels, use_bias=True),
                              nn.LeakyReLU(0.2))
                widths = [(ndf, 2 * ndf, 2), (2 * ndf, 4 * ndf, 2), (4 * ndf, 8 * ndf, 1)]
                for c_in, c_out, stride in widths:
                    self.body.add(nn.Conv2D(c_out, 4, stride, 1, in_channels=c_in, use_bias=False),
                                  nn.BatchNorm(momentum=bn_momentum, in_channels=c_out),
                                  nn.LeakyReLU(0.2))
                self.body.add(nn.Conv2D(1, 3, 2, 1, in_channels=8 * ndf, use_bias=True))

    def hybrid_forward(self, F, x):
        return self.body(x)


def patch_discriminator(in_channels=18, ndf=64, bn_momentum=0.1, **kwargs):
    """Build the Brain2Pix PatchGAN discriminator (see :class:`PatchDiscriminator`)."""
    return PatchDiscriminator(in_channels, ndf, bn_momentum, **kwargs)
