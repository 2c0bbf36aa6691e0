"""Baseline 3: the generator with its convolutions replaced by dense layers (paper section 3.5; docs/method.md section 6)."""

from mxnet.gluon import HybridBlock, nn

__all__ = ["FCGenerator", "fc_generator"]


class FCGenerator(HybridBlock):
    """A fully connected encoder-decoder from RFSimages to frames.

    Widths (our choice; the paper does not give them): the flattened input (C*H*W) ->
    ``hidden[0]`` (LeakyReLU 0.2) -> ``hidden[1]`` (BatchNorm, LeakyReLU 0.2) -> ``hidden[2]``
    (BatchNorm, ReLU) -> 3*H*W (sigmoid), mirroring the U-Net's down/up path without its
    convolutions and skips. With the default (512, 256, 512), 15x96x96 inputs: 85,228,032
    parameters (running statistics included).

    Parameters
    ----------
    in_channels : int
    size : int
        Image side (square images).
    hidden : tuple of 3 int
    bn_momentum : float

    Shapes
    ------
    input (N, in_channels, size, size) -> output (N, 3, size, size)
    """

    def __init__(self, in_channels=15, size=96, hidden=(512, 256, 512), bn_momentum=0.1,
                 out_channels=3, **kwargs):
        super().__init__(**kwargs)
        self.size, self.out_channels = int(size), int(out_channels)
        h1, h2, h3 = hidden
        with self.name_scope():
            self.body = nn.HybridSequential(prefix="")
            with self.body.name_scope():
                self.body.add(nn.Dense(h1, in_units=in_channels * size * size), nn.LeakyReLU(0.2),
                              nn.Dense(h2, in_units=h1, use_bias=False),
                              nn.BatchNorm(momentum=bn_momentum, in_channels=h2), nn.LeakyReLU(0.2),
                              nn.Dense(h3, in_units=h2, use_bias=False),
                              nn.BatchNorm(momentum=bn_momentum, in_channels=h3), nn.Activation("relu"),
                              nn.Dense(out_channels * size * size, in_units=h3))

    def hybrid_forward(self, F, x):
        out = F.sigmoid(self.body(x))
        return F.reshape(out, shape=(0, self.out_channels, self.size, self.size))


def fc_generator(in_channels=15, size=96, hidden=(512, 256, 512), bn_momentum=0.1, **kwargs):
    """Build the fully connected generator of baseline 3 (see :class:`FCGenerator`)."""
    return FCGenerator(in_channels, size, hidden, bn_momentum, **kwargs)
