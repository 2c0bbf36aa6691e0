"""LearnedRF: dense voxel->image layers added to the fixed RFSimages (paper eq. 4; docs/method.md section 3)."""

from mxnet.gluon import HybridBlock, nn

__all__ = ["LearnedRF", "learned_rf"]


class LearnedRF(HybridBlock):
    """One dense layer per ROI, ``n_voxels_roi -> size * size``, applied to every TR slice.

    The authors' code adds these maps to the fixed RFSimages (the default, [code!=paper]); the
    paper's masked perturbation (eq. 4) is obtained with ``mask`` set on the training step.

    Parameters
    ----------
    n_voxels : sequence of int
        Voxels of each ROI, in channel order (e.g. V1, V2, V3).
    n_trs : int
        Volumes per ROI (5).
    size : int
        Image side (96).

    Shapes
    ------
    voxels (N, n_trs, sum(n_voxels)) -> maps (N, len(n_voxels) * n_trs, size, size), ROI-major
    like the RFSimage channels.
    """

    def __init__(self, n_voxels, n_trs=5, size=96, **kwargs):
        super().__init__(**kwargs)
        self.n_voxels = tuple(int(n) for n in n_voxels)
        self.n_trs, self.size = int(n_trs), int(size)
        with self.name_scope():
            self.dense = nn.HybridSequential(prefix="")
            with self.dense.name_scope():
                for k, n in enumerate(self.n_voxels):
                    self.dense.add(nn.Dense(self.size * self.size, flatten=False, in_units=n,
                                            prefix=f"roi{k}_"))

    def hybrid_forward(self, F, voxels):
        maps, start = [], 0
        for k, n in enumerate(self.n_voxels):
            part = F.slice_axis(voxels, axis=2, begin=start, end=start + n)
            start += n
            out = self.dense[k](part)
            maps.append(F.reshape(out, shape=(0, 0, self.size, self.size)))
        return maps[0] if len(maps) == 1 else F.concat(*maps, dim=1)


def learned_rf(n_voxels, n_trs=5, size=96, **kwargs):
    """Build the LearnedRF layers (see :class:`LearnedRF`)."""
    return LearnedRF(n_voxels, n_trs, size, **kwargs)
