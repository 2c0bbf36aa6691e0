"""Does a model learn from the brain signal? Held-out reconstructions against chance, a control and
the mean training frame.

The control is the same model trained on time-shuffled fMRI (``train.input_control =
time_shuffled``, :mod:`brain2pix_gluon.data.controls`): every training input is a real input, seen
as often as without the control, but paired with another sample's frame. Whatever the control
reaches (typically the average frame, sharpened by the adversarial and feature losses) needs no
information about the frames; a model that learned from fMRI must do better.

:func:`learning_check` scores the held-out test clips of both, on identical frames:

1. two-way identification (AlexNet pool2 and pool5, chance 50 %) of the model and the control,
   with a permutation p-value and the (optimistic) binomial p-value
   (:func:`~.stats.identification_test`);
2. the model against the control, frame by frame, on two-way identification (both layers) and on
   PixCorr inside the fisheye frame's valid field (``pixcorr_disc``), with a one-sided paired
   Student's t-test and a one-sided sign test (:func:`~.stats.paired_comparison`);
3. the floors a decoder must clear: the model against the mean training frame (shown for every
   test frame) on PixCorr inside the valid field and, when given, against a linear ridge decoder
   of the same RFSimages (:mod:`brain2pix_gluon.baselines.ridge`) on that PixCorr and on
   pixel-space two-way identification (correlation of the valid field's RGB pixels), frame by
   frame, with the same paired tests;
4. PixCorr and SSIM, over the whole frame and inside the valid field, of every one of them;
5. on data with per-frame labels (the embedded world), what a viewer recognises
   (:mod:`.recognition`): which set each reconstruction shows and where its characters are, for
   every one of them and for the ground truth, with per-frame tests of the model against the
   control and the ridge decoder.

The verdict that the model learns from the brain signal (``passed``) needs all of:

* the model's identification accuracy on pool2 is above 50 % with permutation p < ``alpha``;
* the same on pool5;
* on per-frame two-way identification (pool2), the model's mean is strictly above the control's
  and both paired tests give p < ``alpha``;
* the same on pool5;
* the same on per-frame PixCorr inside the valid field;

A second verdict (``floors_passed``) says whether the model is worth more than trivial decoders:

* the model's PixCorr inside the valid field strictly above the mean frame's, both paired tests
  p < ``alpha``;
* with a ridge decoder: the same against the ridge decoder's PixCorr inside the valid field and
  its pixel-space two-way identification.

Nothing in (4) and (5) beyond these enters either verdict.
Consecutive test frames are alike, so the per-frame values are not independent and the paired
tests' p-values are optimistic; the permutation test of identification does not assume
independent comparisons but does treat frames as exchangeable.

:func:`learning_curve` scores the generator saved after every epoch
(``RUN_DIR/weights/net_g_epochNNN.params``) on the same test set;
:func:`brain2pix_gluon.plotting.learning_curves` draws model and control together.
"""

import numpy as np

from ..errors import ConfigError, DataError
from ..io.reconstructions import read_reconstructions
from .evaluate import FIELD_METRICS, TWOWAY, TWOWAY_LAYERS
from .metrics import masked_pixels, pixcorr, pixel_metrics, two_way_identification
from .stats import identification_test, paired_comparison, summarize

__all__ = ["CHECK_LAYERS", "alexnet_layers", "learning_check", "learning_curve",
           "format_learning_check"]

# the evaluation's two-way identification layers (AlexNet pool2 and pool5)
CHECK_LAYERS = tuple(TWOWAY_LAYERS)
_LABELS = {"twoway_alexnet2": "two-way identification (alexnet_pool2)",
           "twoway_alexnet5": "two-way identification (alexnet_pool5)",
           "pixcorr_disc": "PixCorr inside the valid field",
           "twoway_pixels": "pixel two-way identification (valid field)"}


def alexnet_layers(extractor, frames, batch_size=16):
    """AlexNet pool2 and pool5 of frames, batch by batch.

    Parameters
    ----------
    extractor : FeatureExtractor
    frames : ndarray, shape (n, 3, H, W)
    batch_size : int

    Returns
    -------
    dict of str -> ndarray, shape (n, d_layer), float32
        ``alexnet_pool2`` and ``alexnet_pool5``.
    """
    frames = np.asarray(frames, np.float32)
    parts = {layer: [] for layer in CHECK_LAYERS}
    for start in range(0, len(frames), batch_size):
        feats = extractor.alexnet_features(frames[start:start + batch_size])
        for layer in CHECK_LAYERS:
            parts[layer].append(np.asarray(feats[layer], np.float32))
    return {layer: np.concatenate(parts[layer]) for layer in CHECK_LAYERS}


def _field_metrics(images, targets, mask):
    """The evaluation's pixel metrics, and pixel two-way identification in the valid field."""
    return dict(pixel_metrics(images, targets, mask),
                twoway_pixels=two_way_identification(masked_pixels(images, mask),
                                                     masked_pixels(targets, mask)))


def _input_control(attrs):
    config = attrs.get("config")
    if isinstance(config, dict) and isinstance(config.get("train"), dict):
        return config["train"].get("input_control", "none")
    return "unknown (the file records no config)"


def _beats(comparison, alpha):
    return bool(comparison["difference"] > 0 and comparison["t_p"] < alpha
                and comparison["binomial_p"] < alpha)


def learning_check(model_path, control_path, mean_frame, extractor, alpha=0.05,
                   n_permutations=1000, seed=0, max_frames=0, batch_size=16, mask=None,
                   ridge_path=None, extra_paths=None, labels=None, gt_features=None):
    """Score a model's held-out reconstructions against chance, a control and the mean frame.

    Parameters
    ----------
    model_path, control_path : str
        Reconstruction files (``brain2pix reconstruct``) of the model and of the same model
        trained on time-shuffled fMRI, of the same test frames in the same order.
    mean_frame : ndarray, shape (3, H, W)
        Mean training frame (:func:`~.metrics.mean_training_frame`).
    extractor : FeatureExtractor
        Its AlexNet gives pool2 and pool5 (only those are used).
    alpha : float
        Significance level of every test of the verdict.
    n_permutations : int
        Shuffles of the identification permutation test.
    seed : int
        Seed of those shuffles.
    max_frames : int
        0 = every frame of the files, else the first ``max_frames``.
    batch_size : int
        Frames per AlexNet batch.
    mask : ndarray of bool, shape (H, W), optional
        Valid field for the ``*_disc`` metrics; default: from the model file's warp settings
        (:func:`~.evaluate.field_mask`).
    ridge_path : str, optional
        Reconstruction file of the ridge decoder (``brain2pix baseline ridge``) of the same test
        frames: its PixCorr and pixel two-way identification become floors of the verdict.
    extra_paths : dict of str -> str, optional
        Row label -> reconstruction file of the same test frames, scored like the others and
        shown in the table (``field``, ``twoway``, ``identification``) but not part of any
        verdict (e.g. the same model trained with the paper's losses).
    labels : dict, optional
        ``sets`` (n,), ``characters`` (n, n_characters, 4) of the test frames in the files'
        order and ``classifier`` (:class:`~.recognition.SetClassifier`): adds what a viewer
        recognises (information, in no verdict).
    gt_features : dict, optional
        :func:`alexnet_layers` of the test frames (computed here when not given; a caller that
        also draws learning curves computes them once for both).

    Returns
    -------
    dict
        ``passed`` (bool), ``criteria`` (list of ``{"name", "passed", "statement"}``),
        ``reasons`` (the statements of the failed criteria, or of all when passed),
        ``identification`` (``model``/``control`` -> layer -> :func:`identification_test`),
        ``model_vs_control`` (``twoway_alexnet2``, ``twoway_alexnet5``, ``pixcorr_disc``,
        ``pixcorr``, ``ssim_disc``, ``ssim`` -> :func:`paired_comparison`),
        ``model_vs_mean_frame`` (the four field metrics -> :func:`paired_comparison`),
        ``field`` (``model``/``control``/``mean_frame`` -> metric -> :func:`summarize`),
        ``twoway`` (``model``/``control`` -> ``twoway_alexnet2``/``5`` -> summarize),
        ``per_frame`` (arrays of shape (n,) behind all of these), ``alpha``, ``n_frames``,
        ``chance`` (0.5), ``field_mask``, ``input_control`` (as each file's config records it),
        ``tests`` (which test each verdict uses); with ``labels`` also ``recognition`` (name
        -> :func:`~.recognition.recognition_summary`, the ground truth included) and
        ``recognition_tests`` (``vs_control``, ``vs_ridge`` ->
        :func:`~.recognition.compare_recognition`).

    Raises
    ------
    DataError
        When the two files do not hold the same test frames, or ``mean_frame`` has another shape.
    """
    from .evaluate import field_mask

    if not 0 < alpha < 1:
        raise ConfigError(f"learning_check: alpha expected in (0, 1), got {alpha}")
    model = read_reconstructions(model_path, max_frames)
    others = {"control": (control_path, read_reconstructions(control_path, max_frames))}
    if ridge_path is not None:
        others["ridge"] = (ridge_path, read_reconstructions(ridge_path, max_frames))
    for label, path in (extra_paths or {}).items():
        if label in ("model", "control", "ridge", "mean_frame"):
            raise ConfigError(f"learning_check: extra_paths label {label!r} is taken; choose "
                              f"another")
        others[label] = (path, read_reconstructions(path, max_frames))
    targets = np.asarray(model["targets"], np.float32)
    for other_path, other in others.values():
        if (not np.array_equal(model["samples"], other["samples"])
                or not np.array_equal(targets, other["targets"])):
            raise DataError(f"learning_check: {model_path} and {other_path} must reconstruct the "
                            f"same test frames (samples and targets) in the same order; they "
                            f"differ")
    mean_frame = np.asarray(mean_frame, np.float32)
    if mean_frame.shape != targets.shape[1:]:
        raise DataError(f"learning_check: mean_frame expected shape {targets.shape[1:]} (the test "
                        f"frames'), got {mean_frame.shape}")
    n = len(targets)
    if mask is None:
        mask, mask_info = field_mask(model["attrs"], targets.shape[-1])
    else:
        mask = np.asarray(mask, bool)
        mask_info = {"settings_from": "given", "n_pixels": int(mask.sum()),
                     "fraction": float(mask.mean())}
    images = {"model": np.asarray(model["reconstructions"], np.float32)}
    images.update({name: np.asarray(other["reconstructions"], np.float32)
                   for name, (_, other) in others.items()})
    gt = gt_features if gt_features is not None else alexnet_layers(extractor, targets,
                                                                     batch_size)
    per_frame, identification = {}, {}
    for name, recon in images.items():
        feats = alexnet_layers(extractor, recon, batch_size)
        identification[name] = {layer: identification_test(feats[layer], gt[layer],
                                                            n_permutations, seed)
                                for layer in CHECK_LAYERS}
        per_frame[name] = {TWOWAY_LAYERS[layer]: two_way_identification(feats[layer], gt[layer])
                           for layer in CHECK_LAYERS}
        per_frame[name].update(_field_metrics(recon, targets, mask))
    per_frame["mean_frame"] = pixel_metrics(np.broadcast_to(mean_frame, targets.shape), targets,
                                            mask)

    def paired(key, other):
        # a flat image has no Pearson correlation (NaN): it counts as r = 0, never as a dropped
        # frame, so a model cannot leave out the frames it gets wrong by outputting flat grey
        return paired_comparison(np.nan_to_num(per_frame["model"][key], nan=0.0),
                                 np.nan_to_num(per_frame[other][key], nan=0.0))

    versus_control = {key: paired(key, "control")
                      for key in TWOWAY + FIELD_METRICS}
    versus_mean = {key: paired(key, "mean_frame") for key in FIELD_METRICS}
    versus_ridge = ({key: paired(key, "ridge") for key in ("pixcorr_disc", "twoway_pixels")}
                    if "ridge" in images else {})

    criteria = []
    for layer in CHECK_LAYERS:
        ident = identification["model"][layer]
        ok = bool(ident["accuracy"] > 0.5 and ident["permutation_p"] < alpha)
        criteria.append({
            "name": f"identification_{layer}_vs_chance", "passed": ok,
            "statement": f"two-way identification ({layer}): model {100 * ident['accuracy']:.1f} % "
                         f"{'>' if ok else 'NOT >'} chance 50 % (permutation p = "
                         f"{ident['permutation_p']:.2g}, {ident['n_permutations']} shuffles; "
                         f"needs p < {alpha})"})
    for key in TWOWAY + ("pixcorr_disc",):
        c, label = versus_control[key], _LABELS[key]
        ok = _beats(c, alpha)
        criteria.append({
            "name": f"{key}_vs_control", "passed": ok,
            "statement": f"{label} per frame: model {c['model_mean']:.3f} "
                         f"{'>' if ok else 'NOT >'} time-shuffled control {c['other_mean']:.3f} "
                         f"(difference {c['difference']:+.3f}; paired t-test p = {c['t_p']:.2g}, "
                         f"sign test {c['wins']}/{c['n']} frames p = {c['binomial_p']:.2g}; "
                         f"needs a positive difference and both p < {alpha})"})
    floors = [("mean_frame", "mean training frame", "pixcorr_disc", versus_mean)]
    floors += [("ridge", "ridge decoder", key, versus_ridge) for key in versus_ridge]
    for other, other_label, key, table in floors:
        c = table[key]
        ok = _beats(c, alpha)
        criteria.append({
            "name": f"{key}_vs_{other}", "passed": ok, "floor": True,
            "statement": f"{_LABELS[key]} per frame: model {c['model_mean']:.3f} "
                         f"{'>' if ok else 'NOT >'} {other_label} {c['other_mean']:.3f} "
                         f"(difference {c['difference']:+.3f}; paired t-test p = {c['t_p']:.2g}, "
                         f"sign test {c['wins']}/{c['n']} frames p = {c['binomial_p']:.2g}; "
                         f"needs a positive difference and both p < {alpha})"})
    recognition = {}
    if labels is not None:
        from .recognition import compare_recognition, recognition_per_frame, recognition_summary

        seen = dict(images, mean_frame=np.broadcast_to(mean_frame, targets.shape),
                    ground_truth=targets)
        scored = {name: recognition_per_frame(img, labels["sets"], labels["characters"],
                                              labels["classifier"])
                  for name, img in seen.items()}
        recognition = {
            "recognition": {name: recognition_summary(v) for name, v in scored.items()},
            "recognition_tests": {f"vs_{other}": compare_recognition(scored["model"],
                                                                     scored[other])
                                  for other in ("control", "ridge") if other in scored}}
        for name, values in scored.items():
            per_frame.setdefault(name, {}).update(
                {f"recognition_{k}": v for k, v in values.items()})
    learns = [c for c in criteria if not c.get("floor")]
    passed = all(c["passed"] for c in learns)
    floors_passed = all(c["passed"] for c in criteria if c.get("floor"))
    reasons = [c["statement"] for c in learns if passed or not c["passed"]]
    return {
        "passed": passed,
        "floors_passed": floors_passed,
        "criteria": criteria,
        "reasons": reasons,
        "alpha": alpha,
        "chance": 0.5,
        "n_frames": int(n),
        "tests": {"vs_chance": "identification permutation test (ground truths shuffled "
                               "against reconstructions), one-sided",
                  "vs_control": "one-sided paired Student's t-test and one-sided sign test "
                                "(ties count against the model) over frames; both must pass",
                  "flat_output": "a frame whose PixCorr is undefined (a flat image) counts "
                                 "as r = 0 in the paired comparisons",
                  "caveat": "consecutive frames are alike, so per-frame tests are optimistic"},
        "field_mask": mask_info,
        "input_control": {"model": _input_control(model["attrs"]),
                          "control": _input_control(others["control"][1]["attrs"])},
        "identification": identification,
        "model_vs_control": versus_control,
        "model_vs_mean_frame": versus_mean,
        "model_vs_ridge": versus_ridge,
        "field": {name: {k: summarize(per_frame[name][k]) for k in FIELD_METRICS}
                  for name in per_frame if "pixcorr" in per_frame[name]},
        "twoway": {name: {k: summarize(per_frame[name][k])
                          for k in TWOWAY + ("twoway_pixels",)
                          if k in per_frame[name]}
                   for name in per_frame},
        "per_frame": per_frame,
        **recognition,
    }


def learning_curve(run_dir, test_path, extractor, mask, gt_features=None, max_frames=0,
                   batch_size=16, ctx=None, show_progress=False):
    """Held-out two-way identification and PixCorr of the generator kept after every epoch.

    Parameters
    ----------
    run_dir : str
        A training run's folder (:func:`~brain2pix_gluon.training.inference.reconstruct_saved_epochs`
        sweeps the generators it kept).
    test_path : str
        Prepared ``test.h5``.
    extractor : FeatureExtractor
    mask : ndarray of bool, shape (H, W)
        Valid field for ``pixcorr_disc``.
    gt_features : dict, optional
        :func:`alexnet_layers` of the test targets (computed when not given).
    max_frames : int
        0 = every test frame, else the first ``max_frames``.

    Returns
    -------
    list of dict
        One per kept epoch, in order: ``epoch``, ``twoway_alexnet2``, ``twoway_alexnet5``
        (mean accuracy), ``pixcorr``, ``pixcorr_disc`` (mean over frames).
    """
    from ..data.dataset import RFSImageDataset, Subset
    from ..training.builder import dataset_mode
    from ..training.checkpoint import load_checkpoint_state
    from ..training.inference import reconstruct_saved_epochs

    _, _, config = load_checkpoint_state(run_dir)
    dataset = RFSImageDataset(test_path, config.data.rois, 1.0, dataset_mode(config))
    if max_frames:
        dataset = Subset(dataset, max_frames)
    curve = []
    for epoch, recon, targets in reconstruct_saved_epochs(run_dir, dataset, batch_size, ctx,
                                                          show_progress):
        if gt_features is None:
            gt_features = alexnet_layers(extractor, targets, batch_size)
        feats = alexnet_layers(extractor, recon, batch_size)
        point = {"epoch": epoch}
        for layer in CHECK_LAYERS:
            point[TWOWAY_LAYERS[layer]] = float(np.mean(two_way_identification(feats[layer],
                                                                         gt_features[layer])))
        point["pixcorr"] = float(np.nanmean(pixcorr(recon, targets)))
        point["pixcorr_disc"] = float(np.nanmean(pixcorr(recon, targets, mask)))
        curve.append(point)
    return curve


_ROWS = (("model", "model"), ("control", "time-shuffled control"), ("ridge", "ridge floor"),
         ("mean_frame", "mean training frame"))


def format_learning_check(check):
    """The comparisons of :func:`learning_check` as printable lines: one table (model, control,
    ridge floor, mean frame), then the tests behind the verdict.

    Returns
    -------
    str
    """
    field, twoway = check["field"], check["twoway"]

    def cell(table, name, key, scale=1.0, fmt="{:9.3f}"):
        if name in table and key in table[name]:
            return fmt.format(scale * table[name][key]["mean"])
        return f"{'-':>9}"

    lines = [f"learning check on {check['n_frames']} held-out test frames "
             f"(alpha = {check['alpha']}; valid field = "
             f"{100 * check['field_mask'].get('fraction', float('nan')):.0f} % of pixels):",
             f"  {'':<24}{'PixCorr':>9}{'pixel':>9}{'pool2':>9}{'pool5':>9}{'SSIM':>9}"
             f"{'PixCorr':>9}",
             f"  {'':<24}{'(field)':>9}{'2-way':>9}{'2-way':>9}{'2-way':>9}{'(field)':>9}"
             f"{'(whole)':>9}"]
    rows = list(_ROWS[:1]) + [(name, name) for name in field if name not in dict(_ROWS)]
    rows += list(_ROWS[1:])
    for name, label in rows:
        if name not in field:
            continue
        lines.append(f"  {label:<24}" + cell(field, name, "pixcorr_disc")
                     + cell(twoway, name, "twoway_pixels", 100, "{:8.1f}%")
                     + cell(twoway, name, "twoway_alexnet2", 100, "{:8.1f}%")
                     + cell(twoway, name, "twoway_alexnet5", 100, "{:8.1f}%")
                     + cell(field, name, "ssim_disc") + cell(field, name, "pixcorr"))
    lines.append(f"  {'chance':<24}{'':>9}{50.0:8.1f}%{50.0:8.1f}%{50.0:8.1f}%")
    lines.append("  identification vs chance (permutation test):")
    for name, label in rows:
        if name not in check["identification"]:
            continue
        row = f"     {label:<24}"
        for layer in CHECK_LAYERS:
            t = check["identification"][name][layer]
            row += (f"  {layer.split('_')[1]} {100 * t['accuracy']:.1f}% p {t['permutation_p']:.3g}"
                    f" (binom. {t['binomial_p']:.2g})")
        lines.append(row)
    if check.get("recognition"):
        lines += _format_recognition(check, rows)
    lines.append("  learns from the brain signal (vs chance and the time-shuffled control): "
                 + ("PASSED" if check["passed"] else "FAILED"))
    for c in check["criteria"]:
        if not c.get("floor"):
            lines.append(("   + " if c["passed"] else "   x ") + c["statement"])
    floors = [c for c in check["criteria"] if c.get("floor")]
    if floors:
        lines.append("  above the floors (mean training frame, ridge decoder): "
                     + ("YES" if check.get("floors_passed") else "NO"))
        for c in floors:
            lines.append(("   + " if c["passed"] else "   x ") + c["statement"])
    lines.append("  (each comparison: model minus the other per frame, one-sided paired t-test "
                 "and sign test)")
    return "\n".join(lines)


def _format_recognition(check, rows):
    """The learning check's block on what a viewer recognises (embedded world)."""
    rec, tests = check["recognition"], check.get("recognition_tests", {})
    first = next(iter(rec.values()))
    lines = [f"  what a viewer recognises (information, in no verdict; {first['n_frames']} "
             f"frames, {first['n_located']} with a character in view):",
             f"  {'':<24}{'set':>9}{'location':>10}{'hit':>9}",
             f"  {'':<24}{'correct':>9}{'error px':>10}{'rate':>9}"]
    for name, label in list(rows) + [("ground_truth", "ground truth (ceiling)")]:
        if name in rec:
            r = rec[name]
            lines.append(f"  {label:<24}{100 * r['set_accuracy']:8.1f}%{r['location_error']:10.1f}"
                         f"{100 * r['location_hit_rate']:8.1f}%")
    for key, test in tests.items():
        other = key[3:].replace("_", " ")
        err = test["error"]
        lines.append(f"   model vs {other}: set McNemar p = {test['set']['p']:.2g} "
                     f"({test['set']['model_only']} vs {test['set']['other_only']} frames only "
                     f"one gets right); location error "
                     + (f"{err['difference']:+.1f} px, t-test p = {err['t_p']:.2g}"
                        if err else "not comparable"))
    return lines
