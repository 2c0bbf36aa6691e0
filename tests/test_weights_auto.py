"""Weights 'auto' (the default): cached pretrained weights are used, an unreachable download falls
back to random weights with one warning and the usual marks, and the probe never hangs. No test
touches the network: urlopen is replaced."""

import logging
import time
import urllib.error
import urllib.request

import mxnet as mx
import pytest
from mxnet import gluon

from brain2pix_gluon.config import Config, apply_overrides
from brain2pix_gluon.model_zoo import pretrained
from brain2pix_gluon.model_zoo.vgg_features import vgg_features
from brain2pix_gluon.provenance import RANDOM_SOURCE, random_mark, run_marks


@pytest.fixture
def models(monkeypatch, tmp_path):
    """An empty model cache; no probe answers are remembered from other tests."""
    monkeypatch.setenv("MXNET_HOME", str(tmp_path))
    monkeypatch.setattr(pretrained, "_probed", {})
    root = tmp_path / "models"
    root.mkdir()
    return root


def no_network(request, timeout=None):
    raise urllib.error.URLError("[Errno -2] Name or service not known (test)")


def warnings_of(caplog):
    return [r for r in caplog.records if r.levelno == logging.WARNING]


def test_cached_weights_are_used_without_probing(models, monkeypatch):
    def must_not_probe(*args, **kwargs):
        raise AssertionError("a cached network must not be probed")

    monkeypatch.setattr(urllib.request, "urlopen", must_not_probe)
    tiny = gluon.nn.Dense(2, in_units=3)
    tiny.initialize(mx.init.Constant(0.5))
    tiny.save_parameters(str(models / "vgg19-ad2f660d.params"))
    assert pretrained.cached_weights("vgg19") == str(models / "vgg19-ad2f660d.params")
    assert pretrained.resolve_weights("auto", "feature_loss") == "pretrained"

    roots = []

    def from_cache(root):          # what vision.vgg19(pretrained=True, root=root) does
        roots.append(root)
        net = gluon.nn.Dense(2, in_units=3)
        net.load_parameters(pretrained.cached_weights("vgg19", root))
        return net

    net, source = pretrained.build_with_weights("vgg19", "auto", build=None,
                                                build_pretrained=from_cache)
    assert roots == [str(models)] and source.startswith("pretrained")
    assert net.weight.data().asnumpy().tolist() == [[0.5] * 3] * 2


def test_unreachable_falls_back_to_random_with_one_warning_and_marks(models, monkeypatch, caplog):
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    with caplog.at_level(logging.WARNING, logger="brain2pix_gluon"):
        net = vgg_features("auto", layers=2, resize=0)
    assert net.weights_source == RANDOM_SOURCE
    assert run_marks({"feature_loss": net.weights_source}) == [random_mark("feature_loss")]
    lines = warnings_of(caplog)
    assert len(lines) == 1 and "RANDOM" in lines[0].getMessage()
    assert "VGG-19" in lines[0].getMessage() and "Name or service" in lines[0].getMessage()


def test_a_config_is_resolved_once_with_one_line(models, monkeypatch, caplog):
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    with caplog.at_level(logging.WARNING, logger="brain2pix_gluon"):
        config, overrides = pretrained.resolve_config_weights(Config())
    assert (config.loss.feature_weights, config.evaluation.feature_weights) == ("random", "random")
    assert overrides == ["loss.feature_weights=random", "evaluation.feature_weights=random"]
    lines = warnings_of(caplog)
    assert len(lines) == 1
    assert all(n in lines[0].getMessage() for n in ("VGG-19", "AlexNet", "C3D"))
    # explicit settings are left alone, and a run without feature loss needs no VGG
    pinned = apply_overrides(Config(), ["loss.feature_weights=random", "loss.feature_weight=0",
                                        "evaluation.feature_weights=random"])
    assert pretrained.resolve_config_weights(pinned) == (pinned, [])


def test_reachable_download_resolves_to_pretrained(models, monkeypatch):
    class Answer:
        status = 200

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    asked = []
    monkeypatch.setattr(urllib.request, "urlopen",
                        lambda request, timeout=None: asked.append(request.get_method()) or Answer())
    assert pretrained.resolve_weights("auto", "evaluation") == "pretrained"
    assert asked == ["HEAD", "HEAD"]            # AlexNet and C3D, headers only


def test_the_probe_gives_up_after_its_timeout(models, monkeypatch):
    # name resolution ignores socket timeouts: a stalled lookup must not stall the run, and three
    # networks cost one timeout, not three
    def stalled(request, timeout=None):
        time.sleep(3)
        return no_network(request)

    monkeypatch.setattr(urllib.request, "urlopen", stalled)
    urls = [f"https://example.invalid/{n}.zip" for n in ("a", "b", "c")]
    start = time.monotonic()
    reasons = pretrained.probe_downloads(urls, timeout=0.5)
    assert time.monotonic() - start < 1.5
    assert reasons == {url: "no answer within 0.5 s" for url in urls}
