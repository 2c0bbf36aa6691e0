"""One typed configuration with the paper's values as defaults.

Experiment files (``configs/*.yaml``) list only what differs from these defaults; the resolved
configuration is written beside every prepared dataset, checkpoint and result.

Values follow the paper and the authors' code (docs/method.md); where they disagree the code's behaviour is
the default (marked [code!=paper] in the field comments).
"""

import dataclasses
import json
import math
import typing
from dataclasses import dataclass, field, fields, is_dataclass, replace

from .errors import ConfigError

__all__ = [
    "DataConfig", "SimulationConfig", "ModelConfig", "LossConfig", "TrainConfig", "EvalConfig",
    "PRFConfig", "Vim2Config", "Config",
    "load_config", "apply_overrides", "check_overrides_once", "config_to_dict", "config_from_dict",
    "ROIS", "RF_LAYOUTS", "ASPECT_MODES", "REENCODE_MODES", "VIDEO_BACKENDS", "INPUT_CONTROLS",
    "PROFILES",
]

# The allowed values of settings that other modules check or name too: they import them from
# here, the lowest layer of the package.
ROIS = ("V1", "V2", "V3")                       # the release's ROIs (io/names.py: their files)
# RFSimage / target orientation (preprocessing/receptive_fields.py)
RF_LAYOUTS = ("aligned", "authors_fixed_rf", "authors_learned_rf")
ASPECT_MODES = ("squash", "crop")               # io/video.py
REENCODE_MODES = ("none", "webm")
VIDEO_BACKENDS = ("auto", "ffmpeg", "opencv")
INPUT_CONTROLS = ("none", "time_shuffled")      # data/controls.py

# Run profiles: the overrides each applies (why each departs from the paper:
# experiments/profiles.py; every output of a profile but paper is marked, provenance.py).
_SHORT_CPU_RUN = ["train.epochs=4", "train.lr=0.001", "model.ngf=32", "model.ndf=32",
                  "loss.feature_resize=64", "train.grid_samples=4"]
PROFILES = {
    "paper": [],
    "quick": ["train.profile=quick", "train.epochs=4", "train.max_steps_per_epoch=40",
              "train.lr=0.001", "loss.feature_resize=64", "train.grid_samples=4",
              "evaluation.max_frames=48"],
    "science": ["train.profile=science", *_SHORT_CPU_RUN, "simulation.n_test_clips=4"],
    "demo": ["train.profile=demo", *_SHORT_CPU_RUN, "train.save_weights_every=1"],
}


@dataclass(frozen=True)
class DataConfig:
    """How raw fMRI and video become RFSimage samples (paper section 3.4; docs/method.md
    sections 1-3)."""

    dataset: str = "raw"            # the package's raw layout, or the vim-2 release
    image_size: int = 96
    tr: float = 0.7                 # seconds; one stimulus frame per TR
    shift: int = 4                  # [code!=paper] volumes t+4 ... t+8 for frame t
    n_trs: int = 5                  # time_range: number of volumes stacked per ROI
    rois: typing.Tuple[str, ...] = ROIS
    max_ratio: float = 10.0         # fisheye warp strength
    fisheye: bool = True
    # How RFSimages and targets are laid out (README, "Orientation"). "aligned": RFSimage[y, x]
    # with upright targets (maps and frames line up). [code!=paper] the authors' tensors:
    # "authors_fixed_rf" = x-first maps (their map[x, y]) with transposed targets (their runnable
    # FixedRF/data-size script), "authors_learned_rf" = x-first maps with upright targets.
    rf_layout: str = "aligned"
    rf_swap_axes: bool = False      # the col file holds y and the row file x (fixes a wrong-axis report)
    rf_flip_y: bool = False         # y measured upwards: use -y (fixes a flipped report)
    zscore_test: bool = False       # test data (averaged repetitions) are used as given
    compression: str = "lzf"        # HDF5 filter of the prepared data: lzf (fast), gzip (smaller), none
    video_aspect: str = "squash"    # squash (the authors' scale=96:96) or crop (centred square)
    video_backend: str = "auto"     # auto (ffmpeg when available), ffmpeg or opencv
    reencode: str = "none"          # webm: the authors' intermediate 96x96 WebM (their targets' compression)
    max_unused_s: float = 60.0      # more unused volumes after the last window: probably the wrong video

    def __post_init__(self):
        _check_section(self, "data")


@dataclass(frozen=True)
class SimulationConfig:
    """Size and noise of the simulated dataset (small enough for 2 CPU cores)."""

    seed: int = 0
    n_train_runs: int = 4
    volumes_per_run: int = 400
    n_test_clips: int = 2
    volumes_per_clip: int = 90
    n_repetitions: int = 10
    n_voxels: typing.Tuple[int, ...] = (900, 700, 500)    # V1, V2, V3 (dorsal + ventral)
    n_nonvisual_voxels: int = 200
    rf_sigma: typing.Tuple[float, ...] = (0.015, 0.025, 0.04)  # at the fovea, image units
    noise_sd: float = 0.5           # relative to the signal's standard deviation
    centre_error_sd: float = 0.004  # estimation error of the RF centres written to disk
    nan_fraction: float = 0.03      # voxels without an RF estimate
    video_ext: str = "webm"         # webm needs ffmpeg (imageio-ffmpeg); mp4 is written with OpenCV
    video_fps: float = 25.0         # native frame rate of the stimulus videos, as in the release
    video_size: typing.Tuple[int, ...] = (128, 72)   # width, height: 16:9 like the episodes
    post_stimulus_s: typing.Tuple[float, ...] = (10.0, 20.0)   # scanning goes on after the video
    mat_version: str = "5"          # MATLAB files as v5 ("5") or v7.3 ("7.3", HDF5)
    # what a voxel responds to (docs/method.md section 9b): contrast energy, colour opponency
    # and a little luminance, weighted per ROI (V1, V2, V3) below; or its pRF luminance alone
    drive: str = "cortex"
    drive_contrast: typing.Tuple[float, ...] = (1.0, 1.0, 1.0)      # compressed contrast energy
    drive_red_green: typing.Tuple[float, ...] = (0.6, 0.4, 0.3)     # L-M opponency
    drive_blue_yellow: typing.Tuple[float, ...] = (0.3, 0.2, 0.15)  # S-(L+M) opponency
    drive_luminance: typing.Tuple[float, ...] = (0.4, 0.3, 0.2)     # L+M
    css_exponent: typing.Tuple[float, ...] = (0.5, 0.4, 0.3)        # contrast compression

    def __post_init__(self):
        _check_section(self, "simulation")


@dataclass(frozen=True)
class ModelConfig:
    """Networks (paper section 3.2.1; docs/method.md section 4)."""

    variant: str = "fixed_rf"       # the generator (shen, fully_connected: baselines 2, 3)
    input: str = "fmri"             # synthetic: experiment 1's RF-sampled target pixels
    ngf: int = 64
    ndf: int = 64
    fc_hidden: typing.Tuple[int, ...] = (512, 256, 512)   # baseline 3's dense widths
    bn_momentum: float = 0.1        # MXNet meaning: running = 0.1 running + 0.9 batch
    init_sigma: float = 0.02
    learned_rf_mask: bool = False   # [code!=paper] eq. 4: LearnedRF maps only where a voxel lands
    learned_rf_weight_decay: float = 0.0  # [code!=paper] L2 on the LearnedRF maps (0 = none)

    def __post_init__(self):
        _check_section(self, "model")


@dataclass(frozen=True)
class LossConfig:
    """Generator and discriminator losses (paper sections 3.2.1-3.2.2; docs/method.md section 5)."""

    adversarial_weight: float = 1.0
    feature_weight: float = 100.0
    pixel_weight: float = 1.0
    feature_distance: str = "l1"    # [code!=paper] the paper says Euclidean: "l2"
    feature_resize: int = 224
    feature_layers: int = 22        # VGG-19 features[:22] = conv4_2 before its ReLU
    imagenet_normalize: bool = False
    feature_weights: str = "auto"   # VGG-19's weights (model_zoo/pretrained.py), or a .params path

    def __post_init__(self):
        _check_section(self, "loss")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and bookkeeping."""

    batch_size: int = 8             # 12 for LearnedRF, 4 in the data-size runs
    epochs: int = 50
    lr: float = 2e-4
    lr_decay_epochs: int = 0        # [code!=paper] the last N epochs decay lr linearly towards 0
    beta1: float = 0.5
    history_capacity: int = 50
    history_swap_prob: float = 0.5
    train_fraction: float = 1.0     # leading fraction of the training samples (experiment 7)
    seed: int = 0
    num_workers: int = 0
    hybridize: bool = True
    amp: bool = False               # mixed precision (MXNet AMP, dynamic loss scaling), GPU only
    kvstore: str = "device"         # where gradients are reduced (dist_sync: one model over the
                                    # workers of `brain2pix launch`)
    max_steps_per_epoch: int = 0    # 0 = the whole epoch
    save_weights_every: int = 1     # weights/*_epochNNN.params every N epochs and after the last
                                    # (0 = never; checkpoints are kept regardless)
    grid_samples: int = 6
    profile: str = "paper"          # the run profile (experiments/profiles.py); outputs of any but paper say so
    input_control: str = "none"     # time_shuffled: inputs re-paired with other targets
    tensorboard: bool = True        # event files in RUN/tensorboard (training/tensorboard.py)

    def __post_init__(self):
        _check_section(self, "train")


@dataclass(frozen=True)
class EvalConfig:
    """Feature networks and statistics of the evaluation (paper sections 3.5-3.6; docs/method.md section 7).

    The paper does not publish how frames become C3D clips nor the resizing/normalisation; these
    are our fixed choices (README, "Evaluation").
    """

    feature_weights: str = "auto"   # AlexNet's and C3D's, or a folder with their .params
    alexnet_size: int = 224         # frames bilinearly resized to this for AlexNet
    c3d_size: int = 112             # and to this for C3D
    clip_length: int = 16           # consecutive frames per C3D clip, centred on the frame
    imagenet_normalize: bool = True
    batch_size: int = 16
    max_frames: int = 0             # 0 = every test frame; >0 evaluates the first N (quick runs)
    seed: int = 0
    feature_cache: str = "auto"     # ground-truth features: auto ($BRAIN2PIX_CACHE or the data
                                    # home's eval_features), off, or a folder

    def __post_init__(self):
        _check_section(self, "evaluation")


@dataclass(frozen=True)
class PRFConfig:
    """Estimating receptive fields from the training data (``brain2pix estimate-rf``).

    The paper takes the released centres as given (section 2.3); these are our choices for data
    without them: an isotropic Gaussian pRF on a per-pixel drive of the fisheye-warped frames,
    linear for luminance (Dumoulin & Wandell 2008), compressive for contrast (CSS, Kay et al.
    2013), or linear in several image features with a weight each (``features``), convolved with
    a double-gamma HRF, fitted by a grid search on correlation and a parabolic refinement, with
    run-wise cross-validated R^2 (preprocessing/prf.py).
    """

    drive: str = "features"         # what a pRF sums, and its model (preprocessing/prf.py):
                                    # luminance (linear), contrast (CSS) or features (linear in
                                    # contrast energy, colour-opponent contrasts and luminance)
    contrast_sigma: float = 1.0     # pixels; blur of the contrast-energy drive
    # exponents n of the compressive (CSS) model (pooled contrast ** n) searched with the contrast
    # drive; (1.0,) gives the linear model
    css_exponents: typing.Tuple[float, ...] = (0.125, 0.25, 0.5, 1.0)
    grid_stride: int = 2            # pixels between candidate centres along x and y
    n_sigma: int = 12               # log-spaced candidate sizes ...
    sigma_min: float = 0.008        # ... from (image units; 0.008 = 0.77 px at 96 px)
    sigma_max: float = 0.3          # ... to
    r2_threshold: float = 0.05      # centres of voxels below this cross-validated R^2 are NaN
    chunk_voxels: int = 256         # voxels fitted together; memory ~ n_runs * chunk * S^2 floats
    chunk_memory_mb: int = 512      # CSS model: fewer voxels per chunk if their per-run covariances
                                    # with every candidate (n_runs * chunk * candidates) need more;
                                    # features: if their per-fold maps and candidate sums do

    def __post_init__(self):
        _check_section(self, "prf")


@dataclass(frozen=True)
class Vim2Config:
    """Reading the vim-2 release (Nishimoto et al. 2011, CRCNS) instead of the raw layout."""

    subject: int = 1                # VoxelResponses_subject{1,2,3}.mat
    stimulus_hz: float = 15.0       # frame rate of Stimuli.mat
    tr: float = 1.0                 # seconds per volume
    run_volumes: int = 600          # training volumes per run (blocks for leave-one-run-out)

    def __post_init__(self):
        _check_section(self, "vim2")


@dataclass(frozen=True)
class Config:
    """The whole resolved configuration of a run."""

    name: str = "fixed_rf"
    data: DataConfig = field(default_factory=DataConfig)
    simulation: SimulationConfig = field(default_factory=SimulationConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluation: EvalConfig = field(default_factory=EvalConfig)
    prf: PRFConfig = field(default_factory=PRFConfig)
    vim2: Vim2Config = field(default_factory=Vim2Config)

    def __post_init__(self):
        _check_config(self)


def _coerce(value, annotation, key):
    """Convert a YAML/CLI value to the field's declared type, or raise ConfigError."""
    origin = typing.get_origin(annotation)
    if origin is tuple:
        if isinstance(value, str):
            value = [v for v in value.replace("(", "").replace(")", "").split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        (item_type, _ellipsis) = typing.get_args(annotation)
        return tuple(_coerce(v.strip() if isinstance(v, str) else v, item_type, key) for v in value)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "0", "no", "off"):
            return False
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if annotation in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected {annotation.__name__}, got {value!r}")
        try:
            number = annotation(float(value)) if annotation is int else float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected {annotation.__name__}, got {value!r}") from None
        if annotation is int and float(value) != number:
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return number
    if annotation is str:
        if not isinstance(value, (str, int, float)):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return str(value)
    return value


def _build(cls, data, prefix):
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"{prefix or 'config'}: unknown key(s) {unknown}; valid keys are {sorted(names)}")
    kwargs = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else name
        annotation = hints[name]
        if is_dataclass(annotation):
            kwargs[name] = _build(annotation, value, key)
        else:
            kwargs[name] = _coerce(value, annotation, key)
    return cls(**kwargs)


def config_from_dict(data):
    """Build a :class:`Config` from a nested mapping holding only the keys that differ."""
    return _build(Config, data or {}, "")


def config_to_dict(config):
    """Nested plain-Python dict of a config (tuples become lists), suitable for JSON/YAML."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def apply_overrides(config, overrides):
    """Return a copy of ``config`` with ``key=value`` overrides (dotted keys) applied.

    Parameters
    ----------
    config : Config
    overrides : sequence of str
        e.g. ``["train.batch_size=4", "loss.feature_weights=random"]``.
    """
    data = config_to_dict(config)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected the form section.key=value")
        key, value = item.split("=", 1)
        parts = key.strip().split(".")
        node = data
        for part in parts[:-1]:
            if part not in node or not isinstance(node[part], dict):
                raise ConfigError(
                    f"override {item!r}: unknown section {part!r}; valid sections are "
                    f"{sorted(k for k, v in node.items() if isinstance(v, dict))}")
            node = node[part]
        if parts[-1] not in node:
            raise ConfigError(
                f"override {item!r}: unknown key {parts[-1]!r}; valid keys are {sorted(node)}")
        node[parts[-1]] = value
    return config_from_dict(data)


def check_overrides_once(overrides):
    """Refuse a key given twice with different values (``data.shift=3 data.shift=5``).

    :func:`apply_overrides` lets a later item win, which is what layered settings (a variant's,
    then the user's) need; on one command line a repeated key is a slip whose outcome the user
    would have to guess. The same item repeated verbatim is harmless and accepted.

    Raises
    ------
    ConfigError
        Naming the key and both values.
    """
    seen = {}
    for item in overrides:
        if "=" not in item:
            continue        # apply_overrides reports the form
        key, value = item.split("=", 1)
        key = key.strip()
        if key in seen and seen[key] != value:
            raise ConfigError(f"override {key} given twice: {key}={seen[key]} and {key}={value}; "
                              f"give it once")
        seen[key] = value
    return overrides


def load_config(path=None, overrides=()):
    """Load a YAML experiment file (differences from the defaults) and apply overrides.

    Parameters
    ----------
    path : str or path-like, optional
        YAML file; ``None`` gives the paper's defaults.
    overrides : sequence of str
        ``section.key=value`` items applied after the file.
    """
    import yaml

    data = {}
    if path is not None:
        try:
            with open(path) as handle:
                data = yaml.safe_load(handle) or {}
        except FileNotFoundError:
            raise ConfigError(f"config file {path!s} does not exist") from None
        except IsADirectoryError:
            raise ConfigError(f"config file {path!s} is a directory; expected a YAML file "
                              f"(e.g. brain2pix_gluon/configs/fixed_rf.yaml)") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"config file {path!s} is not a text file ({exc.reason} at byte "
                              f"{exc.start}); expected a YAML file") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path!s} is not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path!s}: expected a mapping at the top, got {data!r}")
    config = config_from_dict(data)
    return apply_overrides(config, overrides) if overrides else config


# ---------------------------------------------------------------------------- validation
# Every field of every section has one rule here: (test, what is expected). A section runs its
# rules when it is constructed (``PRFConfig(grid_stride=0)`` raises), and a whole ``Config`` its
# name rule and the rules that tie sections together; tests check that no field is left without a
# rule. Functions that receive a section trust it and do not check its fields again.

def _finite(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _int_at_least(low):
    return (lambda v: isinstance(v, int) and v >= low), f"an integer >= {low}"


def _number(low=None, high=None, low_open=False, high_open=False):
    def test(v):
        if not _finite(v):
            return False
        if low is not None and (v <= low if low_open else v < low):
            return False
        return not (high is not None and (v >= high if high_open else v > high))

    left = "" if low is None else f"{low} {'<' if low_open else '<='} "
    right = "" if high is None else f" {'<' if high_open else '<='} {high}"
    return test, f"a finite number x with {left}x{right}" if (left or right) else "a finite number"


def _one_of(*choices):
    return (lambda v: v in choices), f"one of {list(choices)}"


def _boolean():
    return (lambda v: isinstance(v, bool)), "true or false"


def _text():
    return (lambda v: isinstance(v, str) and v.strip() != ""), "a non-empty string"


def _weights_setting(path_kind):
    # 'auto' = cached or downloadable pretrained weights, else random with a warning (pretrained.py)
    return ((lambda v: isinstance(v, str) and v.strip() != ""),
            f"'auto', 'pretrained', 'random' or {path_kind}")


def _seed():
    return (lambda v: isinstance(v, int) and 0 <= v < 2 ** 32), "an integer in [0, 2**32)"


def _tuple_of(rule, length=None, distinct=False):
    test, text = rule

    def check(v):
        return (isinstance(v, tuple) and len(v) > 0 and (length is None or len(v) == length)
                and all(test(x) for x in v) and (not distinct or len(set(v)) == len(v)))

    count = f"{length}" if length else "one or more"
    return check, f"{count}{' distinct' if distinct else ''} values, each {text}"


RULES = {
    "name": ((lambda v: isinstance(v, str) and v.strip() != "" and "/" not in v and "\\" not in v
              and v not in (".", "..")), "a non-empty name without / or \\ (it names folders)"),
    # data
    "data.dataset": _one_of("raw", "vim2"),
    "data.image_size": ((lambda v: isinstance(v, int) and v >= 32 and v % 32 == 0),
                        "a multiple of 32 that is at least 32 (the U-Net halves it 5 times)"),
    "data.tr": _number(0, low_open=True),
    "data.shift": _int_at_least(0),
    "data.n_trs": _int_at_least(1),
    "data.rois": _tuple_of(_one_of(*ROIS), distinct=True),
    "data.max_ratio": _number(1, low_open=True),
    "data.fisheye": _boolean(),
    "data.rf_layout": _one_of(*RF_LAYOUTS),
    "data.rf_swap_axes": _boolean(),
    "data.rf_flip_y": _boolean(),
    "data.video_aspect": _one_of(*ASPECT_MODES),
    "data.video_backend": _one_of(*VIDEO_BACKENDS),
    "data.reencode": _one_of(*REENCODE_MODES),
    "data.max_unused_s": _number(0),
    "data.zscore_test": _boolean(),
    "data.compression": _one_of("gzip", "lzf", "none"),
    # simulation
    "simulation.seed": _seed(),
    "simulation.n_train_runs": _int_at_least(1),
    "simulation.volumes_per_run": _int_at_least(1),
    "simulation.n_test_clips": _int_at_least(1),
    "simulation.volumes_per_clip": _int_at_least(1),
    "simulation.n_repetitions": _int_at_least(1),
    "simulation.n_voxels": _tuple_of(_int_at_least(2), length=3),
    "simulation.n_nonvisual_voxels": _int_at_least(0),
    "simulation.rf_sigma": _tuple_of(_number(0, low_open=True), length=3),
    "simulation.noise_sd": _number(0),
    "simulation.centre_error_sd": _number(0),
    "simulation.nan_fraction": _number(0, 1, high_open=True),
    "simulation.video_ext": _one_of("webm", "mp4"),
    "simulation.video_fps": _number(0, low_open=True),
    "simulation.video_size": ((lambda v: isinstance(v, tuple) and len(v) == 2
                               and all(isinstance(x, int) and x >= 16 for x in v)),
                              "(width, height), integers of at least 16 px"),
    "simulation.post_stimulus_s": ((lambda v: isinstance(v, tuple) and len(v) == 2
                                    and all(_finite(x) for x in v) and 0 <= v[0] <= v[1]),
                                   "(low, high) seconds with 0 <= low <= high"),
    "simulation.mat_version": _one_of("5", "7.3"),
    "simulation.drive": _one_of("cortex", "luminance"),
    "simulation.drive_contrast": _tuple_of(_number(0), length=3),
    "simulation.drive_red_green": _tuple_of(_number(0), length=3),
    "simulation.drive_blue_yellow": _tuple_of(_number(0), length=3),
    "simulation.drive_luminance": _tuple_of(_number(0), length=3),
    "simulation.css_exponent": _tuple_of(_number(0, 1, low_open=True), length=3),
    # model
    # ngf: hybridized, MXNet 1.9.1's MKLDNN backward of ReLU(concat(8 + 8 channels)) -> ConvT
    # dies with SIGFPE; 16 and above (the paper uses 64) are safe
    "model.variant": _one_of("fixed_rf", "learned_rf", "shen", "fully_connected"),
    "model.input": _one_of("fmri", "synthetic"),
    "model.ngf": ((lambda v: isinstance(v, int) and v >= 16 and v % 8 == 0),
                  "a multiple of 8 that is at least 16"),
    "model.ndf": _int_at_least(1),
    "model.fc_hidden": _tuple_of(_int_at_least(1)),
    "model.bn_momentum": _number(0, 1),
    "model.init_sigma": _number(0, low_open=True),
    "model.learned_rf_mask": _boolean(),
    "model.learned_rf_weight_decay": _number(0),
    # loss
    "loss.adversarial_weight": _number(0),
    "loss.feature_weight": _number(0),
    "loss.pixel_weight": _number(0),
    "loss.feature_distance": _one_of("l1", "l2"),
    "loss.feature_resize": ((lambda v: isinstance(v, int) and (v == 0 or v >= 8)),
                            "0 (keep the image size) or an integer >= 8 (VGG pools 3 times "
                            "before conv4_2)"),
    "loss.feature_layers": ((lambda v: isinstance(v, int) and 1 <= v <= 37),
                            "an integer in [1, 37] (modules of VGG-19's features)"),
    "loss.imagenet_normalize": _boolean(),
    "loss.feature_weights": _weights_setting("a path to a VGG-19 .params file"),
    # train
    "train.batch_size": _int_at_least(1),
    "train.epochs": _int_at_least(1),
    "train.lr": _number(0, low_open=True),
    "train.lr_decay_epochs": _int_at_least(0),
    "train.beta1": _number(0, 1, high_open=True),
    "train.history_capacity": _int_at_least(0),
    "train.history_swap_prob": _number(0, 1),
    "train.train_fraction": _number(0, 1, low_open=True),
    "train.seed": _seed(),
    "train.num_workers": _int_at_least(0),
    "train.hybridize": _boolean(),
    "train.amp": _boolean(),
    "train.tensorboard": _boolean(),
    "train.save_weights_every": ((lambda v: isinstance(v, int) and v >= 0),
                                 "an integer >= 0 (0 = no per-epoch weight files)"),
    "train.max_steps_per_epoch": ((lambda v: isinstance(v, int) and v >= 0),
                                  "an integer >= 0 (0 = the whole epoch)"),
    "train.grid_samples": ((lambda v: isinstance(v, int) and v >= 0),
                           "an integer >= 0 (0 = no grid pictures)"),
    "train.profile": _one_of(*PROFILES),
    "train.input_control": _one_of(*INPUT_CONTROLS),
    "train.kvstore": _one_of("device", "nccl", "local", "dist_sync"),
    # evaluation
    "evaluation.feature_weights": _weights_setting(
        "a folder holding alexnet.params and c3d_kinetics400.params"),
    "evaluation.alexnet_size": ((lambda v: isinstance(v, int) and v >= 63),
                                "an integer >= 63 (AlexNet's smallest input)"),
    "evaluation.c3d_size": ((lambda v: isinstance(v, int) and v >= 16),
                            "an integer >= 16 (C3D's smallest input)"),
    "evaluation.clip_length": ((lambda v: isinstance(v, int) and v >= 16),
                               "an integer >= 16 (C3D pools time 4 times)"),
    "evaluation.imagenet_normalize": _boolean(),
    "evaluation.batch_size": _int_at_least(1),
    "evaluation.max_frames": ((lambda v: isinstance(v, int) and (v == 0 or v >= 2)),
                              "0 (every test frame) or an integer >= 2 (chance needs two)"),
    "evaluation.seed": _seed(),
    "evaluation.feature_cache": _text(),       # "auto", "off" or a folder
    # prf
    "prf.drive": _one_of("luminance", "contrast", "features"),
    "prf.contrast_sigma": _number(0, low_open=True),
    "prf.grid_stride": _int_at_least(1),
    "prf.n_sigma": _int_at_least(1),
    "prf.sigma_min": _number(0, low_open=True),
    "prf.sigma_max": _number(0, low_open=True),
    "prf.r2_threshold": _number(-1, 1),
    "prf.chunk_voxels": _int_at_least(1),
    "prf.css_exponents": _tuple_of(_number(0, 2, low_open=True), distinct=True),
    "prf.chunk_memory_mb": _int_at_least(1),
    # vim2
    "vim2.subject": _one_of(1, 2, 3),
    "vim2.stimulus_hz": _number(0, low_open=True),
    "vim2.tr": _number(0, low_open=True),
    "vim2.run_volumes": _int_at_least(2),
}


def _section_cross_checks(section, name):
    """Rules that tie fields of one section together: yield (keys, expected, received)."""
    if name == "model" and section.learned_rf_mask and section.variant != "learned_rf":
        yield ("model.learned_rf_mask", "false unless model.variant is learned_rf (the mask "
               "restricts the LearnedRF maps)", f"true with variant {section.variant!r}")
    if name == "loss" and section.adversarial_weight == section.feature_weight \
            == section.pixel_weight == 0:
        yield ("loss.adversarial_weight, loss.feature_weight, loss.pixel_weight",
               "at least one weight > 0 (else the generator learns nothing)", "all 0")
    if name == "prf" and section.sigma_min >= section.sigma_max:
        yield ("prf.sigma_min, prf.sigma_max", "sigma_min < sigma_max",
               (section.sigma_min, section.sigma_max))


def _cross_checks(config):
    """Rules that tie sections together: yield (keys, expected, received)."""
    d, sim = config.data, config.simulation
    window = d.shift + d.n_trs
    for key in ("volumes_per_run", "volumes_per_clip"):
        if getattr(sim, key) < window:
            yield (f"simulation.{key}", f"at least data.shift + data.n_trs = {window} (one sample "
                   f"needs that many volumes)", getattr(sim, key))


def _check_section(section, name):
    """Run the rules of one section (its fields and its cross-field rules).

    Raises
    ------
    ConfigError
        Naming the key, the valid range and the value received.
    """
    prefix = name + "."
    for key, (test, expected) in RULES.items():
        if key.startswith(prefix):
            value = getattr(section, key[len(prefix):])
            if not test(value):
                raise ConfigError(f"{key}: expected {expected}, got {value!r}")
    for key, expected, got in _section_cross_checks(section, name):
        raise ConfigError(f"{key}: expected {expected}, got {got!r}")


def _check_config(config):
    """The rules of a whole config beyond its sections' own: its name, the cross-section rules."""
    for f in fields(config):
        if not is_dataclass(f.type) and f.name in RULES:
            test, expected = RULES[f.name]
            value = getattr(config, f.name)
            if not test(value):
                raise ConfigError(f"{f.name}: expected {expected}, got {value!r}")
    for key, expected, got in _cross_checks(config):
        raise ConfigError(f"{key}: expected {expected}, got {got!r}")



def with_changes(config, **sections):
    """Return ``config`` with whole sections or fields replaced, e.g. ``train={"epochs": 2}``."""
    updates = {}
    for name, changes in sections.items():
        current = getattr(config, name)
        updates[name] = replace(current, **changes) if isinstance(changes, dict) else changes
    return replace(config, **updates)
