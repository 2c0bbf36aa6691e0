"""The learning check (model vs chance, vs the time-shuffled control, vs the mean frame): it passes
for reconstructions that carry the target's information and fails for a constant output and for a
model that learned nothing from its input (a control-like model, or the control itself)."""

import os

import numpy as np
import pytest
from scipy import ndimage

from brain2pix_gluon.config import apply_overrides

from brain2pix_gluon.errors import DataError
from brain2pix_gluon.evaluation.learning_check import learning_check
from brain2pix_gluon.evaluation.metrics import fisheye_valid_mask
from brain2pix_gluon.io.reconstructions import write_reconstructions

N, SIZE = 30, 32


class PooledPixels:
    """A stand-in for AlexNet: pool2 = 4x4-pooled pixels, pool5 = 8x8-pooled pixels (fast and
    deterministic; the check only needs features that follow the image)."""

    def alexnet_features(self, frames):
        frames = np.asarray(frames, np.float64)
        n, c, h, w = frames.shape
        p2 = frames.reshape(n, c, h // 4, 4, w // 4, 4).mean(axis=(3, 5))
        p5 = frames.reshape(n, c, h // 8, 8, w // 8, 8).mean(axis=(3, 5))
        return {"alexnet_pool2": p2.reshape(n, -1), "alexnet_pool5": p5.reshape(n, -1),
                "alexnet_fc6": p5.reshape(n, -1)}


def _frames(rng, n):
    x = ndimage.gaussian_filter(rng.random((n, 3, SIZE, SIZE)), (0, 0, 3, 3))
    x = (x - x.min()) / (x.max() - x.min())
    return (x * MASK).astype(np.float32)     # black outside the fisheye field, like the data


MASK = fisheye_valid_mask(SIZE, 10.0)


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    rng = np.random.default_rng(7)
    root = tmp_path_factory.mktemp("check")
    train, targets = _frames(rng, 60), _frames(rng, N)
    mean = train.mean(axis=0)
    samples = np.stack([np.zeros(N, int), np.arange(N), np.arange(N) + 4, np.arange(N),
                        np.arange(N) + 4], axis=1)

    def write(name, images):
        images = np.clip(images, 0, 1).astype(np.float32)
        return write_reconstructions(str(root / f"{name}.h5"), images, targets, samples,
                                     ["clip_01"], {"model": name})

    noise = lambda: rng.normal(0, 0.05, targets.shape) * MASK  # noqa: E731
    files = {
        # carries the target: a blurred, shrunk-towards-the-mean copy, plus noise
        "informative": write("informative", mean + 0.6 * (ndimage.gaussian_filter(
            targets, (0, 0, 1, 1)) - mean) + noise()),
        # the control: the mean frame plus noise that does not depend on the frame
        "control": write("control", mean + noise()),
        # a constant output: the same image for every frame
        "constant": write("constant", np.repeat(mean[None], N, axis=0)),
        # a control-like model: informative about the WRONG frames (another frame's target)
        "control_like": write("control_like", mean + 0.6 * (targets[np.roll(np.arange(N), 11)]
                                                             - mean) + noise()),
        # worse than nothing: the target's negative, around the mean frame
        "anti": write("anti", mean - 0.6 * (targets - mean) + noise()),
    }
    return {"files": files, "targets": targets, "mean": mean, "root": root, "samples": samples}


def _check(case, model, control="control", **kw):
    return learning_check(case["files"][model], case["files"][control], case["mean"],
                          PooledPixels(), n_permutations=200, mask=MASK, **kw)


def test_passes_for_reconstructions_that_carry_the_target(case):
    check = _check(case, "informative")
    assert check["passed"] is True
    assert [c["name"] for c in check["criteria"]] == [
        "identification_alexnet_pool2_vs_chance", "identification_alexnet_pool5_vs_chance",
        "twoway_alexnet2_vs_control", "twoway_alexnet5_vs_control", "pixcorr_disc_vs_control",
        "pixcorr_disc_vs_mean_frame"]
    assert all(c["passed"] for c in check["criteria"]) and len(check["reasons"]) == 5
    assert check["floors_passed"] is True
    # the numbers behind it, recomputed by hand
    data = case["files"]["informative"]
    import h5py

    with h5py.File(data, "r") as f:
        recon = f["reconstructions"][()]
    t = case["targets"]
    by_hand = [np.corrcoef(recon[i][:, MASK].ravel(), t[i][:, MASK].ravel())[0, 1]
               for i in range(N)]
    assert check["field"]["model"]["pixcorr_disc"]["mean"] == pytest.approx(np.mean(by_hand))
    mean_by_hand = [np.corrcoef(case["mean"][:, MASK].ravel(), t[i][:, MASK].ravel())[0, 1]
                    for i in range(N)]
    assert check["field"]["mean_frame"]["pixcorr_disc"]["mean"] == pytest.approx(
        np.mean(mean_by_hand))
    # two-way identification on pool5 by a double loop over frame pairs
    feats = PooledPixels()
    r5 = feats.alexnet_features(recon)["alexnet_pool5"]
    g5 = feats.alexnet_features(t)["alexnet_pool5"]
    wins = sum(np.corrcoef(r5[i], g5[i])[0, 1] > np.corrcoef(r5[i], g5[j])[0, 1]
               for i in range(N) for j in range(N) if j != i)
    assert check["identification"]["model"]["alexnet_pool5"]["accuracy"] == pytest.approx(
        wins / (N * (N - 1)))


def test_ridge_floor_is_a_separate_verdict_scored_by_hand(case):
    """A ridge decoder better than the model fails the floors but not the learning verdict;
    a worse one passes both. Pixel two-way identification by a double loop over frame pairs."""
    import h5py

    better = _check(case, "control_like", ridge_path=case["files"]["informative"])
    worse = _check(case, "informative", ridge_path=case["files"]["control_like"])
    assert worse["passed"] is True and worse["floors_passed"] is True
    assert better["floors_passed"] is False
    # the model learns (beats chance and its control) yet stays below a near-perfect floor
    exact = write_reconstructions(str(case["root"] / "exact.h5"), case["targets"],
                                  case["targets"], case["samples"], ["clip_01"],
                                  {"model": "ridge"})
    below = _check(case, "informative", ridge_path=exact)
    assert below["passed"] is True and below["floors_passed"] is False
    names = {c["name"]: c["passed"] for c in better["criteria"]}
    assert names["pixcorr_disc_vs_ridge"] is False and names["twoway_pixels_vs_ridge"] is False
    with h5py.File(case["files"]["informative"], "r") as f:
        recon = f["reconstructions"][()]
    t = case["targets"]
    r = recon[:, :, MASK].reshape(N, -1)
    g = t[:, :, MASK].reshape(N, -1)
    wins = [np.mean([np.corrcoef(r[i], g[i])[0, 1] > np.corrcoef(r[i], g[j])[0, 1]
                     for j in range(N) if j != i]) for i in range(N)]
    assert worse["twoway"]["model"]["twoway_pixels"]["mean"] == pytest.approx(np.mean(wins))
    assert better["twoway"]["ridge"]["twoway_pixels"]["mean"] == pytest.approx(np.mean(wins))
    assert worse["model_vs_ridge"]["twoway_pixels"]["other_mean"] == pytest.approx(
        better["model_vs_ridge"]["twoway_pixels"]["model_mean"])


def test_ridge_file_of_other_frames_is_refused(case, tmp_path):
    other = write_reconstructions(str(tmp_path / "other.h5"), case["targets"][::-1],
                                  case["targets"][::-1], case["samples"], ["clip_01"],
                                  {"model": "ridge"})
    with pytest.raises(DataError, match="same test frames"):
        _check(case, "informative", ridge_path=other)


def test_fails_for_a_constant_output(case):
    check = _check(case, "constant")
    assert check["passed"] is False
    failed = {c["name"] for c in check["criteria"] if not c["passed"]}
    assert {"identification_alexnet_pool2_vs_chance", "identification_alexnet_pool5_vs_chance",
            "twoway_alexnet2_vs_control", "twoway_alexnet5_vs_control"} <= failed
    assert check["identification"]["model"]["alexnet_pool5"]["accuracy"] <= 0.5


def test_fails_for_a_flat_grey_output(case, tmp_path):
    """A flat image has no PixCorr (NaN); it must count as no correlation, not be dropped."""
    flat = write_reconstructions(str(tmp_path / "flat.h5"),
                                 np.full(case["targets"].shape, 0.5, np.float32), case["targets"],
                                 case["samples"], ["clip_01"], {"model": "flat"})
    check = learning_check(flat, case["files"]["control"], case["mean"], PooledPixels(),
                           n_permutations=200, mask=MASK)
    assert check["passed"] is False
    assert check["model_vs_control"]["pixcorr_disc"]["n"] == N
    assert check["model_vs_control"]["pixcorr_disc"]["model_mean"] == 0.0


@pytest.mark.parametrize("which", ["control", "informative"])
def test_fails_when_the_model_is_the_control(case, which):
    """Model == control fails, even when both carry the target (beating chance is not enough)."""
    check = _check(case, which, control=which)
    assert check["passed"] is False
    vs = check["model_vs_control"]
    assert all(vs[k]["difference"] == 0 for k in ("twoway_alexnet2", "twoway_alexnet5",
                                                  "pixcorr_disc"))
    assert not any(c["passed"] for c in check["criteria"] if c["name"].endswith("_vs_control"))


def test_fails_for_a_control_like_model(case):
    """Sharp, target-like frames, but of other moments: as a model trained on shuffled fMRI."""
    check = _check(case, "control_like")
    assert check["passed"] is False
    ident = check["identification"]["model"]
    assert not (ident["alexnet_pool2"]["permutation_p"] < 0.05
                and ident["alexnet_pool5"]["permutation_p"] < 0.05)


def test_beating_a_bad_control_is_not_enough_without_beating_chance(case):
    """A constant output beats an anti-informative control on every per-frame comparison, yet
    is at chance on identification: the check fails."""
    check = _check(case, "constant", control="anti")
    assert all(c["passed"] for c in check["criteria"] if c["name"].endswith("_vs_control"))
    assert check["passed"] is False


def test_a_model_better_on_a_few_frames_only_fails_the_sign_test(case, tmp_path):
    """The control's output except on 8 of 30 frames, where it is the target itself: the mean
    difference is positive and the t-test significant, but the model wins on 8 frames only."""
    import h5py

    with h5py.File(case["files"]["control"], "r") as f:
        images = f["reconstructions"][()]
    images[:8] = case["targets"][:8]
    few = write_reconstructions(str(tmp_path / "few.h5"), images, case["targets"],
                                case["samples"], ["clip_01"], {"model": "few"})
    check = learning_check(few, case["files"]["control"], case["mean"], PooledPixels(),
                           n_permutations=200, mask=MASK)
    pix = check["model_vs_control"]["pixcorr_disc"]
    assert pix["difference"] > 0 and pix["t_p"] < 0.05 and pix["wins"] == 8
    assert check["passed"] is False


def test_the_informative_model_fails_against_a_better_control(case):
    """The verdict is about beating the control: swap the roles and every comparison with the
    control fails, each by the per-frame difference computed here by hand."""
    import h5py

    check = _check(case, "control", control="informative")
    assert check["passed"] is False
    versus = [c for c in check["criteria"] if c["name"].endswith("_vs_control")]
    assert len(versus) == 3 and not any(c["passed"] for c in versus)
    images = {}
    for name in ("control", "informative"):
        with h5py.File(case["files"][name], "r") as f:
            images[name] = f["reconstructions"][()]
    t = case["targets"]
    r = {name: [np.corrcoef(x[i][:, MASK].ravel(), t[i][:, MASK].ravel())[0, 1]
                for i in range(N)] for name, x in images.items()}
    difference = np.mean(r["control"]) - np.mean(r["informative"])
    assert difference < 0
    assert check["model_vs_control"]["pixcorr_disc"]["difference"] == pytest.approx(difference)
    assert check["model_vs_control"]["pixcorr_disc"]["wins"] == sum(
        a > b for a, b in zip(r["control"], r["informative"]))


def test_bad_inputs_name_the_problem(case, tmp_path):
    other = write_reconstructions(str(tmp_path / "other.h5"), case["targets"][:N - 1],
                                  case["targets"][:N - 1], case["samples"][:N - 1], ["clip_01"],
                                  {"model": "short"})
    with pytest.raises(DataError, match="same test frames"):
        learning_check(case["files"]["informative"], other, case["mean"], PooledPixels())
    with pytest.raises(DataError, match=r"mean_frame expected shape \(3, 32, 32\)"):
        learning_check(case["files"]["informative"], case["files"]["control"],
                       case["mean"][:, :16], PooledPixels())


def test_trainer_trains_the_control_on_shuffled_pairs_and_says_so(prepared_dir, tmp_path):
    """train.input_control=time_shuffled: the training set pairs each target with another
    sample's input; the test set is left alone; run.json carries the mark."""
    import json

    from brain2pix_gluon.data.dataset import RFSImageDataset
    from brain2pix_gluon.training.trainer import Trainer
    from conftest import tiny_config

    train, test = os.path.join(prepared_dir, "train.h5"), os.path.join(prepared_dir, "test.h5")
    config = tiny_config("train.input_control=time_shuffled", "train.max_steps_per_epoch=1")
    trainer = Trainer(config, train, str(tmp_path), test, show_progress=False)
    plain = RFSImageDataset(train, config.data.rois)
    moved = 0
    for i in range(len(plain)):
        rf, target = trainer.train_set[i]
        np.testing.assert_array_equal(target, plain[i][-1])
        partner = trainer.train_set.partner[i]
        np.testing.assert_array_equal(rf, plain[partner][0])
        moved += partner != i
    assert moved == len(plain)
    held_out = RFSImageDataset(test, config.data.rois)
    for i in (0, len(held_out) - 1):
        for mine, theirs in zip(trainer.test_set[i], held_out[i]):
            np.testing.assert_array_equal(mine, theirs)
    trainer.fit()
    assert "TIME-SHUFFLED fMRI CONTROL" in json.load(open(tmp_path / "run.json"))["marks"]
    plain_run = Trainer(tiny_config("train.max_steps_per_epoch=1"), train, str(tmp_path / "m"),
                        test, show_progress=False)
    assert plain_run.train_set.__class__ is RFSImageDataset
    assert "TIME-SHUFFLED fMRI CONTROL" not in plain_run.marks()


def test_tiny_training_end_to_end_the_model_passes_and_the_control_as_model_fails(tmp_path):
    """The real pipeline on a tiny high-SNR simulated dataset: FixedRF and its time-shuffled
    control are trained, reconstruct the held-out clips, and are scored with a random-weight
    AlexNet. The model, trained on the real pairing, PASSES against its control; the control
    passed as the model fails, and so does a model compared with itself.

    The budget is one that learns reliably in seconds: the pixel loss alone (the adversarial and
    feature terms make short runs swing from epoch to epoch, docs/learning_check.md), 16 x 10
    iterations, two 90-volume test clips. It passed for simulation seeds 0-3; with the paper's
    losses at 8 x 10 iterations it did not for every seed."""
    import mxnet as mx

    from brain2pix_gluon.data.dataset import RFSImageDataset
    from brain2pix_gluon.evaluation.features import FeatureExtractor, build_feature_nets
    from brain2pix_gluon.evaluation.metrics import mean_training_frame
    from brain2pix_gluon.data.simulation import simulate_dataset
    from brain2pix_gluon.preprocessing.prepare import prepare_dataset
    from brain2pix_gluon.training.inference import reconstruct
    from brain2pix_gluon.training.trainer import Trainer
    from conftest import tiny_config

    config = tiny_config("simulation.noise_sd=0.1", "simulation.n_test_clips=2",
                         "simulation.volumes_per_clip=90", "train.epochs=16",
                         "train.max_steps_per_epoch=10", "train.lr=0.001",
                         "loss.adversarial_weight=0", "loss.feature_weight=0",
                         "simulation.drive=luminance")
    raw, prepared = str(tmp_path / "raw"), str(tmp_path / "prepared")
    simulate_dataset(raw, config.simulation, config.data, show_progress=False)
    prepare_dataset(raw, prepared, config, show_progress=False)
    train, test = os.path.join(prepared, "train.h5"), os.path.join(prepared, "test.h5")
    recon = {}
    for name, control in (("model", "none"), ("control", "time_shuffled")):
        run = str(tmp_path / name)
        cfg = apply_overrides(config, [f"train.input_control={control}"])
        Trainer(cfg, train, run, test, show_progress=False).fit()
        recon[name] = reconstruct(run, prepared, os.path.join(run, "recon"),
                                  show_progress=False)["h5"]
    # the control's reconstructions say what they are (marks go into files via provenance)
    from brain2pix_gluon.io.reconstructions import read_reconstructions
    from brain2pix_gluon.provenance import TIME_SHUFFLED_CONTROL

    assert TIME_SHUFFLED_CONTROL in read_reconstructions(recon["control"]).marks
    assert TIME_SHUFFLED_CONTROL not in read_reconstructions(recon["model"]).marks
    alexnet, c3d, _ = build_feature_nets("random", mx.cpu(), 0)
    extractor = FeatureExtractor(alexnet, c3d)
    mean = mean_training_frame(RFSImageDataset(train, config.data.rois))
    verdict = learning_check(recon["model"], recon["control"], mean, extractor,
                             n_permutations=200)
    assert verdict["input_control"] == {"model": "none", "control": "time_shuffled"}
    assert verdict["passed"] is True, [c["statement"] for c in verdict["criteria"]]
    swapped = learning_check(recon["control"], recon["model"], mean, extractor,
                             n_permutations=200)
    assert swapped["input_control"] == {"model": "time_shuffled", "control": "none"}
    assert swapped["passed"] is False
    itself = learning_check(recon["model"], recon["model"], mean, extractor, n_permutations=200)
    assert itself["passed"] is False
    assert itself["n_frames"] == len(RFSImageDataset(test, config.data.rois))


@pytest.mark.parametrize("model, ridge, expected", [
    # learns (beats chance and the control) but stays below a perfect ridge floor: exit 0
    ("informative", "exact", 0),
    # learns and clears the floors: exit 0
    ("informative", "control_like", 0),
    # informative about the wrong frames: it did not learn from the brain signal: exit 3
    ("control_like", "control_like", 3),
])
def test_demo_exit_status_follows_the_learning_verdict_alone(case, monkeypatch, tmp_path, model,
                                                             ridge, expected):
    """`brain2pix demo` exits 3 only when the model did not learn; floors never fail it. The
    command is run through `main` with the demo's work replaced by a real check of these files."""
    from brain2pix_gluon import cli
    from brain2pix_gluon.experiments import demo

    if ridge == "exact":
        ridge_path = write_reconstructions(str(tmp_path / "exact.h5"), case["targets"],
                                           case["targets"], case["samples"], ["clip_01"],
                                           {"model": "ridge"})
    else:
        ridge_path = case["files"][ridge]
    check = _check(case, model, ridge_path=ridge_path)
    # the case is what its name says: a learning verdict and a floors verdict of its own
    assert check["passed"] is (model == "informative")
    assert check["floors_passed"] is (model == "informative" and ridge != "exact")
    monkeypatch.setattr(demo, "run_demo", lambda *a, **k: {"learning_check": check})
    monkeypatch.setattr(demo, "format_summary", lambda summary: "summary")
    assert cli.main(["demo", "--out", str(tmp_path / "out")]) == expected
    assert cli.demo_exit_status(check) == expected


def test_help_prints_the_one_exit_status_table(capsys):
    from brain2pix_gluon import cli

    with pytest.raises(SystemExit):
        cli.main(["--help"])
    text = capsys.readouterr().out
    for code, meaning in cli.EXIT_STATUSES:
        assert f"{code:>3}  {meaning.split()[0]}" in text
    assert [c for c, _ in cli.EXIT_STATUSES] == [0, 1, 2, 3, 130, 143]
