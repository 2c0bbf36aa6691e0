"""VGG-19 conv4_2 features for the generator's feature loss (paper section 3.2.1; docs/method.md section 5)."""

import mxnet as mx
from mxnet.gluon import HybridBlock
from mxnet.gluon.model_zoo import vision

from .pretrained import RANDOM_MARK, build_with_weights, resolve_weights

__all__ = ["VGGFeatures", "vgg_features", "IMAGENET_MEAN", "IMAGENET_STD"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class VGGFeatures(HybridBlock):
    """Resize, optionally normalise, and run the first ``layers`` modules of VGG-19's features.

    Parameters
    ----------
    features : gluon.nn.HybridSequential
        ``vgg19().features[:layers]``; ``[:22]`` ends at conv4_2 before its ReLU, the paper's
        "layer 10" (its 10th convolution).
    resize : int
        Images are bilinearly resized to resize x resize (224 in the reference); 0 keeps the size.
    normalize : bool
        Subtract the ImageNet mean and divide by its std (off in the reference).

    Shapes
    ------
    images (N, 3, H, W) in [0, 1] -> features (N, 512, resize/8, resize/8)
    """

    def __init__(self, features, resize=224, normalize=False, **kwargs):
        super().__init__(**kwargs)
        self.resize, self.normalize = int(resize), bool(normalize)
        self.weights_source = "unset"
        with self.name_scope():
            self.features = features
            if self.normalize:  # constants exist only when used, so hybridize has no dead inputs
                self.mean = self.params.get_constant(
                    "mean", mx.nd.array(IMAGENET_MEAN).reshape((1, 3, 1, 1)))
                self.std = self.params.get_constant(
                    "std", mx.nd.array(IMAGENET_STD).reshape((1, 3, 1, 1)))

    def hybrid_forward(self, F, x, **constants):
        if self.resize:
            x = F.contrib.BilinearResize2D(x, height=self.resize, width=self.resize)
        if self.normalize:
            x = F.broadcast_div(F.broadcast_sub(x, constants["mean"]), constants["std"])
        return self.features(x)


def vgg_features(weights="auto", layers=22, resize=224, normalize=False, ctx=None, seed=0):
    """Build the frozen VGG-19 feature extractor under the package's weights policy.

    Parameters
    ----------
    weights : str
        ``"auto"`` (pretrained when cached or downloadable, else random with a warning),
        ``"pretrained"`` (Gluon model zoo ImageNet weights), a ``.params`` path, or ``"random"``.
    layers : int
        Modules of ``features`` kept (22 = up to conv4_2).
    resize, normalize
        See :class:`VGGFeatures`.
    ctx : mx.Context or list of mx.Context, optional
        Every context of a data-parallel run holds a copy.
    seed : int
        Seed of a random initialisation.

    Returns
    -------
    VGGFeatures
        With ``weights_source`` set and every parameter's ``grad_req`` = "null".
    """
    ctx = ctx or mx.cpu()
    weights = resolve_weights(weights, "feature_loss")
    if weights == "random":
        # Initialise only the kept layers: the classifier's 120 M parameters are never used.
        block = VGGFeatures(vision.vgg19().features[:layers], resize, normalize)
        mx.random.seed(seed)
        block.initialize(mx.init.Xavier(rnd_type="gaussian", factor_type="out", magnitude=2), ctx=ctx)
        block.weights_source = RANDOM_MARK
    else:
        net, source = build_with_weights(
            "vgg19", weights, build=vision.vgg19,
            build_pretrained=lambda root: vision.vgg19(pretrained=True, root=root), ctx=ctx)
        block = VGGFeatures(net.features[:layers], resize, normalize)
        if normalize:
            block.mean.initialize(ctx=ctx)
            block.std.initialize(ctx=ctx)
        block.weights_source = source
    block.collect_params().setattr("grad_req", "null")
    return block
