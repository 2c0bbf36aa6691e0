"""One policy for every pretrained network (VGG-19, AlexNet, C3D).

``weights`` is ``"auto"`` (the default), ``"pretrained"`` (Gluon model zoo / GluonCV download into
``$MXNET_HOME/models`` on first use), a path to a local ``.params`` file, or ``"random"``.

``"auto"`` is resolved once, at the start of a command (:func:`resolve_weights`): the cached
pretrained weights if the model store holds them, else the download if the store's server answers
within :data:`PROBE_TIMEOUT` seconds, else random weights with one log line saying so. Random
networks, asked for or fallen back to, carry ``weights_source`` starting with ``"random"`` and every
output made with them is marked (``provenance``). An explicit ``"pretrained"`` never falls back.
"""

import glob
import os
import threading
import time
import urllib.error
import urllib.request

import mxnet as mx

from ..errors import WeightsUnavailableError, params_load_problem
from ..provenance import RANDOM_SOURCE, is_random
from ..utils import get_logger, model_root

__all__ = ["build_with_weights", "RANDOM_MARK", "is_random", "AUTO", "PROBE_TIMEOUT",
           "NETWORKS", "cached_weights", "download_url", "probe_download", "probe_downloads",
           "resolve_weights", "resolve_config_weights"]

AUTO = "auto"
# Seconds a machine without internet waits before ``auto`` falls back to random weights.
PROBE_TIMEOUT = 3.0
# Model-store name -> what a user calls it; the stores cache ``<name>-<hash8>.params``.
NETWORKS = {"vgg19": "VGG-19", "alexnet": "AlexNet", "c3d_kinetics400": "C3D"}
# The networks each weights setting builds (a config field -> model-store names).
_ROLE_NETWORKS = {"feature_loss": ("vgg19",), "evaluation": ("alexnet", "c3d_kinetics400")}
_probed = {}   # url -> None (answers) or the reason it does not; one probe per process

RANDOM_MARK = RANDOM_SOURCE   # kept under its old name for the modules that import it here

# What a failed download or cache read raises: network and file errors (requests' exceptions are
# OSErrors), Gluon's hash check (UserWarning), the model store's hash check (ValueError) and
# MXNet's own loader. Anything else is a bug and is not dressed up as "no internet".
_DOWNLOAD_ERRORS = (OSError, UserWarning, ValueError, mx.base.MXNetError)


def _model_store(name):
    """The store that owns a network: GluonCV's for C3D, MXNet's for VGG-19 and AlexNet."""
    if name.startswith("c3d"):
        from gluoncv.model_zoo import model_store
    else:
        from mxnet.gluon.model_zoo import model_store
    return model_store


def cached_weights(name, root=None):
    """The cached ``.params`` file of a network in ``root`` (default :func:`model_root`), or None.

    Any ``<name>-<8 hex>.params`` counts: the store checks the file's SHA-1 when it loads it and
    downloads it again when it does not match.
    """
    found = sorted(glob.glob(os.path.join(root or model_root(), f"{name}-" + "[0-9a-f]" * 8 +
                                          ".params")))
    return found[0] if found else None


def download_url(name):
    """Where the model store downloads a network's weights from (``MXNET_GLUON_REPO`` honoured)."""
    store = _model_store(name)
    repo = os.environ.get("MXNET_GLUON_REPO", store.apache_repo_url)
    repo = repo if repo.endswith("/") else repo + "/"
    return store._url_format.format(repo_url=repo, file_name=f"{name}-{store.short_hash(name)}")


def probe_download(url, timeout=PROBE_TIMEOUT):
    """Ask for the headers of ``url`` without downloading it; None when it answers 200 within
    ``timeout`` seconds, else the reason (a string). See :func:`probe_downloads`."""
    return probe_downloads([url], timeout)[url]


def probe_downloads(urls, timeout=PROBE_TIMEOUT):
    """:func:`probe_download` for several URLs at once: url -> None or the reason.

    Name resolution ignores socket timeouts, so each request runs in a daemon thread that is
    abandoned when ``timeout`` has passed: a machine without internet waits at most that long,
    however many networks it asks about. Answers are remembered for the rest of the process.
    """
    def ask(url, outcome):
        try:
            with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"),
                                        timeout=timeout) as response:
                outcome[0] = None if response.status == 200 else f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            outcome[0] = f"HTTP {exc.code}"
        except (OSError, ValueError) as exc:   # URLError, socket errors, a malformed repo URL
            outcome[0] = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"

    asked = {}
    for url in dict.fromkeys(urls):
        if url not in _probed:
            outcome = [f"no answer within {timeout:g} s"]
            thread = threading.Thread(target=ask, args=(url, outcome), daemon=True)
            thread.start()
            asked[url] = (thread, outcome)
    deadline = time.monotonic() + timeout
    for url, (thread, outcome) in asked.items():
        thread.join(max(0.0, deadline - time.monotonic()))
        _probed[url] = outcome[0]
    return {url: _probed[url] for url in urls}


def _unavailable(names, timeout):
    """Networks among ``names`` neither cached nor downloadable: name -> (url, reason)."""
    urls = {name: download_url(name) for name in names if cached_weights(name) is None}
    answers = probe_downloads(list(urls.values()), timeout)
    return {name: (url, answers[url]) for name, url in urls.items() if answers[url] is not None}


def _fallback_line(missing):
    """The one line that announces the fallback; ``missing``: name -> (url, reason)."""
    nets = ", ".join(NETWORKS.get(n, n) for n in missing)
    by_reason = {}
    for url, reason in missing.values():
        by_reason.setdefault(reason, []).append(url.rsplit("/", 1)[-1])
    where = os.path.dirname(next(iter(missing.values()))[0]) + "/"
    reasons = "; ".join(f"{', '.join(files)}: {reason}" for reason, files in by_reason.items())
    return (f"weights 'auto': no pretrained {nets} in {model_root()} and no download from {where} "
            f"({reasons}): using RANDOM weights, and every output is marked as such. Run once "
            f"with internet access to cache them (`brain2pix doctor` checks), or pass a .params "
            f"path.")


def resolve_weights(weights, role, timeout=PROBE_TIMEOUT):
    """Turn a weights setting of ``"auto"`` into ``"pretrained"`` or ``"random"``.

    Parameters
    ----------
    weights : str
        A weights setting; anything but ``"auto"`` is returned unchanged.
    role : {"feature_loss", "evaluation"}
        Which networks the setting builds (VGG-19; AlexNet and C3D).
    timeout : float
        Seconds the download probe may take.

    Returns
    -------
    str
        ``"pretrained"`` when every network of the role is cached or downloadable, else
        ``"random"``, after one warning that names what was missing.
    """
    return _resolve(_ROLE_NETWORKS[role], timeout) if weights == AUTO else weights


def _resolve(names, timeout):
    missing = _unavailable(names, timeout)
    if missing:
        get_logger().warning(_fallback_line(missing))
    return "random" if missing else "pretrained"


def resolve_config_weights(config, timeout=PROBE_TIMEOUT):
    """``config`` with ``loss.feature_weights`` and ``evaluation.feature_weights`` resolved, and
    at most one log line for both (an experiment or the demo resolves once, at its start).

    The VGG-19 is not looked for when ``loss.feature_weight`` is 0 (it is never built then).

    Returns
    -------
    config : Config
    overrides : list of str
        The ``section.key=value`` overrides that record the resolution (empty when nothing was
        ``"auto"``), for code that rebuilds configs from overrides.
    """
    from ..config import apply_overrides

    fields = {}
    if config.loss.feature_weights == AUTO:
        fields["loss.feature_weights"] = _ROLE_NETWORKS["feature_loss"] \
            if config.loss.feature_weight != 0 else ()
    if config.evaluation.feature_weights == AUTO:
        fields["evaluation.feature_weights"] = _ROLE_NETWORKS["evaluation"]
    missing = _unavailable([n for names in fields.values() for n in names], timeout)
    overrides = [f"{key}={'random' if any(n in missing for n in names) else 'pretrained'}"
                 for key, names in fields.items()]
    if missing:
        get_logger().warning(_fallback_line(missing))
    return apply_overrides(config, overrides), overrides


def build_with_weights(name, weights, build, build_pretrained, init=None, ctx=None, seed=0):
    """Build a network under the weights policy.

    Parameters
    ----------
    name : str
        Human-readable model name for messages (e.g. ``"vgg19"``).
    weights : str
        ``"auto"``, ``"pretrained"``, ``"random"`` or a path to a ``.params`` file.
    build : callable
        ``build()`` returns the network without weights.
    build_pretrained : callable
        ``build_pretrained(root)`` returns the network with downloaded weights.
    init : mx.init.Initializer, optional
        Used for ``"random"``.
    ctx : mx.Context, optional
    seed : int
        Seed of the random initialisation.

    Returns
    -------
    net : gluon.Block
    source : str
        Where the weights came from.
    """
    ctx = ctx or mx.cpu()
    if weights == AUTO:   # a caller that did not resolve at its start (resolve_weights)
        weights = _resolve((name,), PROBE_TIMEOUT)
    if weights == "random":
        net = build()
        mx.random.seed(seed)
        net.initialize(init or mx.init.Xavier(), ctx=ctx)
        return net, RANDOM_MARK
    if weights == "pretrained":
        root = model_root()
        try:
            net = build_pretrained(root)
        except _DOWNLOAD_ERRORS as exc:
            raise WeightsUnavailableError(
                f"pretrained weights for {name} could not be loaded or downloaded into {root} "
                f"({type(exc).__name__}: {exc}). Either run once with internet access (they are "
                f"cached in $MXNET_HOME/models), or download the .params file elsewhere and pass "
                f"its path as the weights setting, or set the weights to 'random' explicitly for "
                f"tests and smoke runs (outputs are then marked as random-weight results).") from exc
        net.collect_params().reset_ctx(ctx)
        return net, f"pretrained ({name}, downloaded model-zoo weights)"
    path = os.path.expanduser(str(weights))
    if not os.path.isfile(path):
        raise WeightsUnavailableError(
            f"weights for {name}: {weights!r} is neither 'auto', 'pretrained', 'random' nor an "
            f"existing .params file")
    net = build()
    try:
        net.load_parameters(path, ctx=ctx, allow_missing=False, ignore_extra=True)
    except (AssertionError, mx.base.MXNetError) as exc:
        raise WeightsUnavailableError(f"weights for {name}: {path} "
                                      f"{params_load_problem(exc)}") from exc
    return net, f"file ({name}: {path})"
