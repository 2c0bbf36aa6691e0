"""One typed configuration with the paper's values as defaults.

Experiment files (``configs/*.yaml``) list only what differs from these defaults; the resolved
configuration is written beside every prepared dataset, checkpoint and result.

Values follow ``SPEC.md``; where the authors' code and the paper disagree the code's behaviour is
the default (marked [code!=paper] in the field comments).
"""

import dataclasses
import json
import typing
from dataclasses import dataclass, field, fields, is_dataclass, replace

from .errors import ConfigError

__all__ = [
    "DataConfig", "SimulationConfig", "ModelConfig", "LossConfig", "TrainConfig", "EvalConfig",
    "Config",
    "load_config", "apply_overrides", "config_to_dict", "config_from_dict",
]


@dataclass(frozen=True)
class DataConfig:
    """How raw fMRI and video become RFSimage samples (paper §2; README "Preprocessing")."""

    image_size: int = 96
    tr: float = 0.7                 # seconds; one stimulus frame per TR
    shift: int = 4                  # [code!=paper] volumes t+4 ... t+8 for frame t
    n_trs: int = 5                  # time_range: number of volumes stacked per ROI
    rois: typing.Tuple[str, ...] = ("V1", "V2", "V3")
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
        choices = {"rf_layout": ("aligned", "authors_fixed_rf", "authors_learned_rf"),
                   "video_aspect": ("squash", "crop"), "video_backend": ("auto", "ffmpeg", "opencv"),
                   "reencode": ("none", "webm")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"data.{name}: expected one of {list(allowed)}, "
                                  f"got {getattr(self, name)!r}")
        if self.max_unused_s < 0:
            raise ConfigError(f"data.max_unused_s: expected >= 0, got {self.max_unused_s}")


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

    def __post_init__(self):
        if self.mat_version not in ("5", "7.3"):
            raise ConfigError(f"simulation.mat_version: expected '5' or '7.3', got {self.mat_version!r}")
        if self.video_ext not in ("webm", "mp4"):
            raise ConfigError(f"simulation.video_ext: expected 'webm' or 'mp4', got {self.video_ext!r}")
        if len(self.video_size) != 2 or min(self.video_size) < 16:
            raise ConfigError(f"simulation.video_size: expected (width, height) of at least 16 px, "
                              f"got {self.video_size}")
        low_high = self.post_stimulus_s
        if len(low_high) != 2 or not 0 <= low_high[0] <= low_high[1]:
            raise ConfigError(f"simulation.post_stimulus_s: expected (low, high) seconds with "
                              f"0 <= low <= high, got {low_high}")
        if self.video_fps <= 0:
            raise ConfigError(f"simulation.video_fps: expected > 0, got {self.video_fps}")


@dataclass(frozen=True)
class ModelConfig:
    """Networks (SPEC section 4)."""

    variant: str = "fixed_rf"       # fixed_rf | learned_rf | shen | fully_connected
    input: str = "fmri"             # fmri | synthetic (experiment 1: RF-sampled target pixels)
    ngf: int = 64
    ndf: int = 64
    fc_hidden: typing.Tuple[int, ...] = (512, 256, 512)   # baseline 3's dense widths
    bn_momentum: float = 0.1        # MXNet meaning: running = 0.1 running + 0.9 batch
    init_sigma: float = 0.02


@dataclass(frozen=True)
class LossConfig:
    """Generator and discriminator losses (SPEC section 5)."""

    adversarial_weight: float = 1.0
    feature_weight: float = 100.0
    pixel_weight: float = 1.0
    feature_distance: str = "l1"    # [code!=paper] the paper says Euclidean: "l2"
    feature_resize: int = 224
    feature_layers: int = 22        # VGG-19 features[:22] = conv4_2 before its ReLU
    imagenet_normalize: bool = False
    feature_weights: str = "pretrained"   # pretrained | random | path to a .params file


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and bookkeeping."""

    batch_size: int = 8             # 12 for LearnedRF, 4 in the data-size runs
    epochs: int = 50
    lr: float = 2e-4
    beta1: float = 0.5
    history_capacity: int = 50
    history_swap_prob: float = 0.5
    train_fraction: float = 1.0     # leading fraction of the training samples (experiment 7)
    seed: int = 0
    num_workers: int = 0
    hybridize: bool = True
    amp: bool = False               # mixed precision, GPU only
    max_steps_per_epoch: int = 0    # 0 = the whole epoch
    grid_samples: int = 6
    profile: str = "paper"          # paper | quick (outputs of quick runs say so)


@dataclass(frozen=True)
class EvalConfig:
    """Feature networks and statistics of the evaluation (paper sections 3.5-3.6, SPEC 7).

    The paper does not publish how frames become C3D clips nor the resizing/normalisation; these
    are our fixed choices (README, "Evaluation").
    """

    feature_weights: str = "pretrained"   # pretrained | random | a folder with alexnet/c3d .params
    alexnet_size: int = 224         # frames bilinearly resized to this for AlexNet
    c3d_size: int = 112             # and to this for C3D
    clip_length: int = 16           # consecutive frames per C3D clip, centred on the frame
    imagenet_normalize: bool = True
    batch_size: int = 16
    max_frames: int = 0             # 0 = every test frame; >0 evaluates the first N (quick runs)
    seed: int = 0


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
    return _validate(_build(Config, data or {}, ""))


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
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path!s} is not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path!s}: expected a mapping at the top, got {data!r}")
    config = config_from_dict(data)
    return apply_overrides(config, overrides) if overrides else config


def _validate(config):
    from .errors import check_choice

    check_choice(config.model.variant, "model.variant",
                 ("fixed_rf", "learned_rf", "shen", "fully_connected"))
    check_choice(config.model.input, "model.input", ("fmri", "synthetic"))
    check_choice(config.loss.feature_distance, "loss.feature_distance", ("l1", "l2"))
    check_choice(config.data.compression, "data.compression", ("gzip", "lzf", "none"))
    check_choice(config.train.profile, "train.profile", ("paper", "quick"))
    for roi in config.data.rois:
        check_choice(roi, "data.rois", ("V1", "V2", "V3"))
    if config.model.ngf < 16 or config.model.ngf % 8:
        # hybridized, MXNet 1.9.1's MKLDNN backward of ReLU(concat(8 + 8 channels)) -> ConvT dies
        # with SIGFPE; 16 and above (the paper uses 64) are safe
        raise ConfigError(f"model.ngf: expected a multiple of 8 that is at least 16, got "
                          f"{config.model.ngf}")
    if config.data.image_size % 32:
        raise ConfigError(f"data.image_size: expected a multiple of 32, got {config.data.image_size}")
    if not 0 < config.train.train_fraction <= 1:
        raise ConfigError(f"train.train_fraction: expected 0 < f <= 1, got {config.train.train_fraction}")
    if config.train.batch_size < 1:
        raise ConfigError(f"train.batch_size: expected >= 1, got {config.train.batch_size}")
    if not 0 <= config.train.history_swap_prob <= 1:
        raise ConfigError(
            f"train.history_swap_prob: expected 0 <= p <= 1, got {config.train.history_swap_prob}")
    if len(config.simulation.n_voxels) != 3 or len(config.simulation.rf_sigma) != 3:
        raise ConfigError("simulation.n_voxels and simulation.rf_sigma: expected 3 values (V1, V2, V3)")
    return config


def with_changes(config, **sections):
    """Return ``config`` with whole sections or fields replaced, e.g. ``train={"epochs": 2}``."""
    updates = {}
    for name, changes in sections.items():
        current = getattr(config, name)
        updates[name] = replace(current, **changes) if isinstance(changes, dict) else changes
    return _validate(replace(config, **updates))
