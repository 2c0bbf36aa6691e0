"""AlexNet's features up to fc6 as taps of the evaluation (pool2, pool5, fc6; paper section 3.5).

The network itself is Gluon's model-zoo AlexNet, built with its weights by
:func:`brain2pix_gluon.evaluation.features.build_feature_nets`.
"""

from mxnet.gluon import HybridBlock

__all__ = ["AlexNetTaps"]


class AlexNetTaps(HybridBlock):
    """AlexNet's features up to fc6, returning pool2, pool5 and fc6 (each flattened)."""

    def __init__(self, features, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.features = features

    def hybrid_forward(self, F, x):
        f = self.features
        for k in range(4):
            x = f[k](x)
        pool2 = x
        for k in range(4, 8):
            x = f[k](x)
        pool5 = x
        fc6 = f[9](f[8](x))
        return F.flatten(pool2), F.flatten(pool5), fc6
