"""The Brain2Pix generator: a pix2pix U-Net (paper section 3.2.1; docs/method.md section 4)."""

from mxnet.gluon import HybridBlock, nn

__all__ = ["UnetSkipBlock", "UnetGenerator", "unet_generator"]


def _down(in_channels, channels, use_bias):
    return nn.Conv2D(channels, kernel_size=4, strides=2, padding=1, in_channels=in_channels,
                     use_bias=use_bias)


def _up(in_channels, channels, use_bias):
    return nn.Conv2DTranspose(channels, kernel_size=4, strides=2, padding=1,
                              in_channels=in_channels, use_bias=use_bias)


class UnetSkipBlock(HybridBlock):
    """One U-Net level: down-sample, inner block, up-sample, ReLU(concat(input, up)).

    Parameters
    ----------
    outer_channels : int
        Channels of the block's input (and of its up-sampled output before the concat).
    inner_channels : int
        Channels after the down-sampling convolution.
    inner : UnetSkipBlock, optional
        The next level; ``None`` makes this the innermost block (its up-convolution then reads
        ``inner_channels`` instead of ``2 * inner_channels``).
    bn_momentum : float
        MXNet meaning: running = momentum * running + (1 - momentum) * batch.

    Shapes
    ------
    input (N, outer, H, W) -> output (N, 2 * outer, H, W)
    """

    def __init__(self, outer_channels, inner_channels, inner=None, bn_momentum=0.1, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.down_conv = _down(outer_channels, inner_channels, use_bias=False)
            self.down_norm = nn.BatchNorm(momentum=bn_momentum, in_channels=inner_channels)
            self.down_act = nn.LeakyReLU(0.2)
            self.inner = inner
            up_in = inner_channels if inner is None else 2 * inner_channels
            self.up_conv = _up(up_in, outer_channels, use_bias=False)
            self.up_norm = nn.BatchNorm(momentum=bn_momentum, in_channels=outer_channels)

    def hybrid_forward(self, F, x):
        y = self.down_act(self.down_norm(self.down_conv(x)))
        if self.inner is not None:
            y = self.inner(y)
        y = self.up_norm(self.up_conv(y))
        return F.relu(F.concat(x, y, dim=1))


class UnetGenerator(HybridBlock):
    """pix2pix U-Net from RFSimages to frames.

    Parameters
    ----------
    in_channels : int
        15 for V1-V3 x 5 TRs; 5 for one ROI; 3 in the synthetic experiment.
    out_channels : int
        3 (RGB).
    ngf : int
        Base width (64): levels of 64, 128, 256, 512, 512 channels.
    bn_momentum : float

    Shapes
    ------
    input (N, in_channels, H, W) -> output (N, out_channels, H, W) in [0, 1] (sigmoid), with H and
    W multiples of 32. With in_channels=15, ngf=64: 16,677,187 parameters (running statistics
    included).
    """

    def __init__(self, in_channels=15, out_channels=3, ngf=64, bn_momentum=0.1, **kwargs):
        super().__init__(**kwargs)
        self.in_channels = in_channels
        with self.name_scope():
            self.input_conv = _down(in_channels, ngf, use_bias=True)
            self.input_act = nn.LeakyReLU(0.2)
            block = UnetSkipBlock(8 * ngf, 8 * ngf, None, bn_momentum, prefix="skip512_")
            block = UnetSkipBlock(4 * ngf, 8 * ngf, block, bn_momentum, prefix="skip256_")
            block = UnetSkipBlock(2 * ngf, 4 * ngf, block, bn_momentum, prefix="skip128_")
            self.skips = UnetSkipBlock(ngf, 2 * ngf, block, bn_momentum, prefix="skip64_")
            self.output_conv = _up(2 * ngf, out_channels, use_bias=True)

    def hybrid_forward(self, F, x):
        y = self.skips(self.input_act(self.input_conv(x)))
        return F.sigmoid(self.output_conv(y))


def unet_generator(in_channels=15, out_channels=3, ngf=64, bn_momentum=0.1, **kwargs):
    """Build the Brain2Pix U-Net generator (see :class:`UnetGenerator`)."""
    return UnetGenerator(in_channels, out_channels, ngf, bn_momentum, **kwargs)
