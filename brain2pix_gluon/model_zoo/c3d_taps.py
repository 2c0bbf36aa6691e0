"""GluonCV's C3D run up to fc6 as taps of the evaluation (pool2, pool5, fc6; paper section 3.5).

The network itself is GluonCV's ``c3d_kinetics400``, built with its weights by
:func:`brain2pix_gluon.evaluation.features.build_feature_nets`.
"""

from mxnet.gluon import HybridBlock

__all__ = ["C3DTaps"]


class C3DTaps(HybridBlock):
    """GluonCV's C3D run up to fc6, returning pool2, pool5 and fc6 (each flattened)."""

    def __init__(self, c3d, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.net = c3d

    def hybrid_forward(self, F, x):
        n = self.net
        x = n.pool1(n.relu(n.conv1(x)))
        pool2 = n.pool2(n.relu(n.conv2(x)))
        x = n.pool3(n.relu(n.conv3b(n.relu(n.conv3a(pool2)))))
        x = n.pool4(n.relu(n.conv4b(n.relu(n.conv4a(x)))))
        pool5 = n.pool5(n.relu(n.conv5b(n.relu(n.conv5a(x)))))
        fc6 = n.relu(n.fc6(F.flatten(pool5)))
        return F.flatten(pool2), F.flatten(pool5), fc6
