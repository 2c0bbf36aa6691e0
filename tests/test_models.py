import mxnet as mx
import numpy as np
import pytest

from brain2pix_gluon.model_zoo import get_model, get_model_list, initialize_paper, register_model, vgg_features
from brain2pix_gluon.model_zoo.pretrained import RANDOM_MARK, build_with_weights, is_random
from brain2pix_gluon.errors import ConfigError, WeightsUnavailableError


def n_params(net):
    return sum(p.data().size for p in net.collect_params().values())


def _local_names(net):
    """Parameter shapes keyed by name without the net's own prefix: MXNet numbers top-level blocks
    with a process-wide counter (unetgenerator0_, unetgenerator1_, ...), so the prefix depends on
    how many networks were built before; names inside the block are scoped and stable."""
    assert all(k.startswith(net.prefix) for k in net.collect_params())
    return {k[len(net.prefix):]: v.shape for k, v in net.collect_params().items()}


@pytest.fixture(scope="module")
def paper_nets():
    mx.random.seed(0)
    g = initialize_paper(get_model("unet_generator", in_channels=15))
    d = initialize_paper(get_model("patch_discriminator", in_channels=18))
    return g, d


def _conv(c_in, c_out, k=4, bias=False):
    """Weights (and bias) of a k x k (transposed) convolution."""
    return c_in * c_out * k * k + (c_out if bias else 0)


def _bn(c):
    """gamma, beta, running mean and running variance."""
    return 4 * c


def _skip(outer, inner, innermost=False):
    """One U-Net level: down conv + BN, up ConvT (of the concat unless innermost) + BN."""
    return (_conv(outer, inner) + _bn(inner)
            + _conv(inner if innermost else 2 * inner, outer) + _bn(outer))


def test_parameter_counts_and_shapes_match_the_spec(paper_nets):
    """Counts derived from the paper's widths (ngf = ndf = 64, 15 input channels): the U-Net's
    levels of 64, 128, 256, 512, 512 channels, the PatchGAN's 64 -> 128 -> 256 -> 512 -> 1."""
    g, d = paper_nets
    ngf = ndf = 64
    expected_g = (_conv(15, ngf, bias=True) + _skip(ngf, 2 * ngf) + _skip(2 * ngf, 4 * ngf)
                  + _skip(4 * ngf, 8 * ngf) + _skip(8 * ngf, 8 * ngf, innermost=True)
                  + _conv(2 * ngf, 3, bias=True))
    expected_d = (_conv(18, ndf, bias=True) + _conv(ndf, 2 * ndf) + _bn(2 * ndf)
                  + _conv(2 * ndf, 4 * ndf) + _bn(4 * ndf) + _conv(4 * ndf, 8 * ndf)
                  + _bn(8 * ndf) + _conv(8 * ndf, 1, k=3, bias=True))
    assert n_params(g) == expected_g == 16_677_187     # the count the docstrings state
    assert n_params(d) == expected_d == 2_779_201
    x = mx.nd.random.uniform(shape=(2, 15, 96, 96))
    y = g(x)
    assert y.shape == (2, 3, 96, 96)
    assert float(y.min().asscalar()) >= 0 and float(y.max().asscalar()) <= 1   # sigmoid
    assert d(mx.nd.concat(x, y, dim=1)).shape == (2, 1, 6, 6)


def test_layer_table(paper_nets):
    g, d = paper_nets
    shapes = _local_names(g)
    assert shapes["conv0_weight"] == (64, 15, 4, 4) and "conv0_bias" in shapes
    assert shapes["skip64_conv0_weight"] == (128, 64, 4, 4)
    assert shapes["skip64_conv1_weight"] == (256, 64, 4, 4)     # ConvT(256 -> 64)
    assert shapes["skip512_conv1_weight"] == (512, 512, 4, 4)   # innermost ConvT(512 -> 512)
    assert shapes["conv1_weight"] == (128, 3, 4, 4) and "conv1_bias" in shapes
    assert not any(k.endswith("skip64_conv0_bias") for k in shapes)
    body = d.body
    assert body[-1]._kwargs["kernel"] == (3, 3) and body[-1]._kwargs["stride"] == (2, 2)
    assert body[8]._kwargs["stride"] == (1, 1)
    bns = [b for b in d.body if isinstance(b, mx.gluon.nn.BatchNorm)]
    assert bns and all(b._kwargs["momentum"] == 0.1 for b in bns)


def test_initialisation_statistics(paper_nets):
    g, _ = paper_nets
    params = {k[len(g.prefix):]: v for k, v in g.collect_params().items()}
    w = params["skip256_conv0_weight"].data().asnumpy()
    assert w.mean() == pytest.approx(0, abs=1e-3) and w.std() == pytest.approx(0.02, rel=0.02)
    gamma = params["skip256_batchnorm0_gamma"].data().asnumpy()
    assert gamma.mean() == pytest.approx(1, abs=0.01) and 0.01 < gamma.std() < 0.03
    assert np.all(params["conv0_bias"].data().asnumpy() == 0)
    assert np.all(params["skip256_batchnorm0_beta"].data().asnumpy() == 0)


@pytest.mark.parametrize("name, kwargs, shape", [
    ("unet_generator", {"in_channels": 5, "ngf": 8}, (3, 5, 64, 64)),
    ("patch_discriminator", {"in_channels": 8, "ndf": 8}, (3, 8, 64, 64)),
])
def test_hybridized_equals_imperative(name, kwargs, shape):
    mx.random.seed(1)
    net = initialize_paper(get_model(name, **kwargs))
    x = mx.nd.random.uniform(shape=shape)
    with mx.autograd.train_mode():
        train_imperative = net(x).asnumpy()
    eval_imperative = net(x).asnumpy()
    net.hybridize(static_alloc=True)
    with mx.autograd.train_mode():
        train_hybrid = net(x).asnumpy()
    np.testing.assert_allclose(net(x).asnumpy(), eval_imperative, atol=1e-5)
    np.testing.assert_allclose(train_hybrid, train_imperative, atol=1e-5)


def test_any_multiple_of_32(paper_nets):
    mx.random.seed(2)
    g = initialize_paper(get_model("unet_generator", in_channels=3, ngf=8))
    assert g(mx.nd.zeros((1, 3, 32, 32))).shape == (1, 3, 32, 32)
    assert g(mx.nd.zeros((1, 3, 128, 64))).shape == (1, 3, 128, 64)


def test_learned_rf_maps_each_roi_separately():
    mx.random.seed(3)
    net = initialize_paper(get_model("learned_rf", n_voxels=(4, 6), n_trs=5, size=8))
    voxels = mx.nd.random.normal(shape=(2, 5, 10))
    out = net(voxels)
    assert out.shape == (2, 10, 8, 8)
    changed = voxels.copy()
    changed[:, :, 4:] += 1.0                       # ROI 2's voxels only
    delta = np.abs(net(changed).asnumpy() - out.asnumpy())
    assert delta[:, :5].max() == 0 and delta[:, 5:].max() > 0
    w = net.dense[1].weight.data().asnumpy()
    assert w.shape == (64, 6) and w.std() == pytest.approx(0.02, rel=0.3)
    assert np.all(net.dense[0].bias.data().asnumpy() == 0)
    net.hybridize()
    np.testing.assert_allclose(net(voxels).asnumpy(), out.asnumpy(), atol=1e-6)


def test_registry_lists_valid_names():
    assert {"unet_generator", "patch_discriminator", "learned_rf"} <= set(get_model_list())
    with pytest.raises(ConfigError, match="valid names are: .*unet_generator"):
        get_model("pix2pixHD")
    with pytest.raises(ConfigError, match="'UNet_Generator' is already registered"):
        register_model("UNet_Generator", lambda **kw: None)
    assert get_model_list().count("unet_generator") == 1


def test_vgg_features_conv4_2_and_frozen():
    net = vgg_features("random", resize=64)
    assert is_random(net.weights_source) and "NOT pretrained" in net.weights_source
    convs = [b for b in net.features if isinstance(b, mx.gluon.nn.Conv2D)]
    assert len(net.features) == 22 and len(convs) == 10         # ends at the 10th conv
    assert isinstance(net.features[-1], mx.gluon.nn.Conv2D)     # before its ReLU
    assert all(p.grad_req == "null" for p in net.collect_params().values())
    out = net(mx.nd.random.uniform(shape=(2, 3, 32, 32)))
    assert out.shape == (2, 512, 8, 8)
    normalised = vgg_features("random", resize=64, normalize=True)
    x = mx.nd.random.uniform(shape=(1, 3, 32, 32))
    assert not np.allclose(normalised(x).asnumpy(), net(x).asnumpy())


def _tiny_builder():
    net = mx.gluon.nn.Dense(3, in_units=4)
    return net


def test_weights_policy_random_file_and_unavailable(tmp_path, monkeypatch):
    net, source = build_with_weights("tiny", "random", _tiny_builder, None)
    assert source == RANDOM_MARK
    path = str(tmp_path / "tiny.params")
    net.save_parameters(path)
    loaded, source = build_with_weights("tiny", path, _tiny_builder, None)
    assert source.startswith("file") and not is_random(source)
    np.testing.assert_array_equal(loaded.weight.data().asnumpy(), net.weight.data().asnumpy())

    def offline(root):
        raise OSError("no route to host")

    with pytest.raises(WeightsUnavailableError, match=r"could not be loaded or downloaded.*'random'"):
        build_with_weights("tiny", "pretrained", _tiny_builder, offline)
    with pytest.raises(WeightsUnavailableError, match="neither 'auto', 'pretrained', 'random' nor"):
        build_with_weights("tiny", str(tmp_path / "missing.params"), _tiny_builder, None)


def test_weights_errors_name_their_cause(tmp_path):
    net, _ = build_with_weights("tiny", "random", _tiny_builder, None)
    good = str(tmp_path / "tiny.params")
    net.save_parameters(good)
    truncated = str(tmp_path / "truncated.params")
    with open(good, "rb") as src, open(truncated, "wb") as dst:
        dst.write(src.read()[:40])
    with pytest.raises(WeightsUnavailableError, match="not a readable .params file"):
        build_with_weights("tiny", truncated, _tiny_builder, None)
    other = mx.gluon.nn.Dense(5, in_units=4, prefix=net.prefix)   # same names, other shapes
    other.initialize()
    wrong = str(tmp_path / "wrong.params")
    other.save_parameters(wrong)
    with pytest.raises(WeightsUnavailableError, match="does not match the network's shapes"):
        build_with_weights("tiny", wrong, _tiny_builder, None)
    unrelated = mx.gluon.nn.Dense(3, in_units=4, use_bias=False, prefix="other_")
    unrelated.initialize()
    missing = str(tmp_path / "missing_bias.params")
    unrelated.save_parameters(missing)
    with pytest.raises(WeightsUnavailableError, match="lacks parameters"):
        build_with_weights("tiny", missing, _tiny_builder, None)

    def buggy(root):   # a programming error is not a failed download
        raise TypeError("unexpected keyword argument 'pretrianed'")

    with pytest.raises(TypeError, match="pretrianed"):
        build_with_weights("tiny", "pretrained", _tiny_builder, buggy)


def test_vgg_pretrained_without_network_fails_clearly(tmp_path, monkeypatch):
    import mxnet.gluon.utils as gutils

    def no_download(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(gutils, "download", no_download)
    monkeypatch.setattr("mxnet.gluon.model_zoo.model_store.download", no_download)
    monkeypatch.setenv("MXNET_HOME", str(tmp_path))
    with pytest.raises(WeightsUnavailableError, match="vgg19"):
        vgg_features("pretrained")
