"""Feature networks of the evaluation: AlexNet (pool2, pool5, fc6) and C3D (pool2, pool5, fc6).

Fixed choices (the paper does not publish them):

* AlexNet (ImageNet, Gluon model zoo): each frame is bilinearly resized to 224x224 and normalised
  with the ImageNet mean and std; fc6 is taken after its ReLU (Gluon's Dense carries it).
* C3D (Kinetics-400, GluonCV ``c3d_kinetics400``): the clip of a frame is the 16 consecutive
  frames of its run centred on it (frames t-8 ... t+7), clamped at the run's ends by repeating the
  first/last frame; frames resized to 112x112 and normalised like AlexNet's; fc6 after its ReLU.
"""

import os
import warnings

import mxnet as mx
import numpy as np
from mxnet.gluon.model_zoo import vision

from ..model_zoo.alexnet_taps import AlexNetTaps
from ..model_zoo.c3d_taps import C3DTaps
from ..model_zoo.pretrained import RANDOM_MARK, build_with_weights, resolve_weights
from ..model_zoo.vgg_features import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["LAYERS", "AlexNetTaps", "C3DTaps", "build_feature_nets", "clip_indices",
           "FeatureExtractor", "feature_extractor"]

LAYERS = ("alexnet_pool2", "alexnet_pool5", "alexnet_fc6", "c3d_pool2", "c3d_pool5", "c3d_fc6")


def _weights_for(weights, name):
    """Resolve the evaluation weights setting for one network."""
    if weights in ("pretrained", "random"):
        return weights
    path = os.path.join(os.path.expanduser(weights), f"{name}.params")
    return path


def build_feature_nets(weights="auto", ctx=None, seed=0):
    """AlexNet and C3D under the package's weights policy.

    Parameters
    ----------
    weights : str
        ``"auto"`` (pretrained when both are cached or downloadable, else random with a
        warning), ``"pretrained"`` (download on first use), ``"random"`` (marked), or a folder holding
        ``alexnet.params`` and ``c3d_kinetics400.params``.

    Returns
    -------
    alexnet : AlexNetTaps
    c3d : C3DTaps
    sources : dict of str -> str
        Where each network's weights came from.
    """
    from gluoncv.model_zoo import get_model as gcv_get_model
    from gluoncv.model_zoo.action_recognition.c3d import C3D

    ctx = ctx or mx.cpu()
    weights = resolve_weights(weights, "evaluation")
    alex, alex_src = build_with_weights(
        "alexnet", _weights_for(weights, "alexnet"), vision.alexnet,
        lambda root: vision.alexnet(pretrained=True, root=root), ctx=ctx, seed=seed)
    if weights == "random":
        mx.random.seed(seed + 1)
        c3d = gcv_get_model("c3d_kinetics400", pretrained=False, ctx=ctx)  # MSRA init inside
        c3d_src = RANDOM_MARK
    else:
        c3d, c3d_src = build_with_weights(
            "c3d_kinetics400", _weights_for(weights, "c3d_kinetics400"), lambda: C3D(nclass=400),
            lambda root: gcv_get_model("c3d_kinetics400", pretrained=True, root=root), ctx=ctx)
    alex(mx.nd.zeros((1, 3, 224, 224), ctx=ctx))   # completes a deferred (random) initialisation
    # features[:10] ends at fc6: fc7 and the classifier are never run
    alex_taps, c3d_taps = AlexNetTaps(alex.features[:10]), C3DTaps(c3d)
    for net in (alex_taps, c3d_taps):
        net.hybridize(static_alloc=True)
    return alex_taps, c3d_taps, {"alexnet": alex_src, "c3d": c3d_src}


def clip_indices(runs, length=16):
    """Array positions of each sample's C3D clip (see the module docstring).

    Parameters
    ----------
    runs : ndarray of int, shape (n,)
        Run of each sample; samples of a run are consecutive frames in order.
    length : int

    Returns
    -------
    ndarray of int, shape (n, length)
    """
    runs = np.asarray(runs)
    n = len(runs)
    starts = np.zeros(n, np.int64)
    ends = np.zeros(n, np.int64)
    for run in np.unique(runs):
        where = np.flatnonzero(runs == run)
        starts[where], ends[where] = where.min(), where.max()
    offsets = np.arange(length) - length // 2
    positions = np.arange(n)[:, None] + offsets[None, :]
    return np.clip(positions, starts[:, None], ends[:, None])


class FeatureExtractor:
    """Batched features of frames for the six evaluation layers.

    Parameters
    ----------
    alexnet, c3d : AlexNetTaps, C3DTaps
    alexnet_size, c3d_size, clip_length : int
    normalize : bool
    ctx : mx.Context
    """

    def __init__(self, alexnet, c3d, alexnet_size=224, c3d_size=112, clip_length=16,
                 normalize=True, ctx=None):
        self.alexnet, self.c3d = alexnet, c3d
        self.alexnet_size, self.c3d_size, self.clip_length = alexnet_size, c3d_size, clip_length
        self.normalize = normalize
        self.ctx = ctx or mx.cpu()
        self.mean = mx.nd.array(IMAGENET_MEAN, ctx=self.ctx).reshape((1, 3, 1, 1))
        self.std = mx.nd.array(IMAGENET_STD, ctx=self.ctx).reshape((1, 3, 1, 1))

    def _prep(self, frames, size):
        x = mx.nd.array(frames, ctx=self.ctx)
        x = mx.nd.contrib.BilinearResize2D(x, height=size, width=size)
        if self.normalize:
            x = mx.nd.broadcast_div(mx.nd.broadcast_sub(x, self.mean), self.std)
        return x

    def alexnet_features(self, frames):
        """AlexNet pool2, pool5, fc6 of frames (b, 3, H, W) -> dict of (b, d) arrays."""
        pool2, pool5, fc6 = self.alexnet(self._prep(frames, self.alexnet_size))
        return {"alexnet_pool2": pool2.asnumpy(), "alexnet_pool5": pool5.asnumpy(),
                "alexnet_fc6": fc6.asnumpy()}

    def c3d_features(self, all_frames, positions, clips):
        """C3D pool2, pool5, fc6 of the clips of ``positions`` -> dict of (b, d) arrays.

        ``clips[positions]`` index ``all_frames`` (see :func:`clip_indices`).
        """
        idx = np.asarray(clips)[positions].reshape(-1)
        b, length = len(positions), np.asarray(clips).shape[1]
        x = self._prep(all_frames[idx], self.c3d_size)                  # (b*L, 3, s, s)
        x = x.reshape((b, length, 3, self.c3d_size, self.c3d_size)).transpose((0, 2, 1, 3, 4))
        with warnings.catch_warnings():   # fc7/fc8 of C3D are deliberately never run
            warnings.filterwarnings("ignore", message=".*is not used by any computation")
            pool2, pool5, fc6 = self.c3d(x)
        return {"c3d_pool2": pool2.asnumpy(), "c3d_pool5": pool5.asnumpy(),
                "c3d_fc6": fc6.asnumpy()}

    def __call__(self, frames, all_frames, positions, clips):
        """Features of some frames for the six layers.

        Parameters
        ----------
        frames : ndarray, shape (b, 3, H, W)
            The frames themselves (AlexNet).
        all_frames : ndarray, shape (n, 3, H, W)
            Every frame of the set, from which the clips are cut.
        positions : ndarray of int, shape (b,)
            Positions of ``frames`` in ``all_frames``.
        clips : ndarray of int, shape (n, clip_length)
            From :func:`clip_indices`.

        Returns
        -------
        dict of str -> ndarray, shape (b, d_layer)
        """
        return {**self.alexnet_features(frames), **self.c3d_features(all_frames, positions, clips)}


def feature_extractor(settings=None, ctx=None):
    """The evaluation's feature extractor, built from its settings: the one way to make it.

    ``evaluate``, baseline 1's encoding model and the demo all use it, so ``c3d_size``,
    ``clip_length`` and the rest apply to each of them.

    Parameters
    ----------
    settings : EvalConfig, optional
        ``feature_weights``, ``seed``, ``alexnet_size``, ``c3d_size``, ``clip_length``,
        ``imagenet_normalize`` (default: the paper's).
    ctx : mx.Context, optional

    Returns
    -------
    FeatureExtractor
        Its ``sources`` attribute says where the AlexNet and C3D weights came from.
    """
    from ..config import EvalConfig

    settings = settings or EvalConfig()
    alex, c3d, sources = build_feature_nets(settings.feature_weights, ctx, settings.seed)
    extractor = FeatureExtractor(alex, c3d, settings.alexnet_size, settings.c3d_size,
                                 settings.clip_length, settings.imagenet_normalize, ctx)
    extractor.sources = sources
    return extractor
