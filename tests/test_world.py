"""The embedded world: its cast and sets, its labels against the pixels, its test clips (new
scenes of the same world, from their own random stream), and a simulation that is all or nothing."""

import os

import numpy as np
import pytest

from brain2pix_gluon.data.simulation import labels_for, read_labels, simulate_dataset
from brain2pix_gluon.data.world import (CHARACTER_NAMES, SET_NAMES, Layout, _camera_matrix,
                                        _character_matrix, _draw_characters, _paste,
                                        build_world, frame_labels, render_world)
from brain2pix_gluon.errors import DataError
from brain2pix_gluon.io.hdf5 import read_names
from brain2pix_gluon.preprocessing.retina import fisheye_warp

from conftest import tiny_config


def test_the_cast_and_sets_come_from_the_packaged_images():
    world = build_world()
    assert len(world.sets) == len(SET_NAMES) == 6
    assert len(world.characters) == len(CHARACTER_NAMES) == 5
    for image in world.sets:
        assert image.ndim == 3 and image.shape[2] == 3 and 0 <= image.min() and image.max() <= 1
    for cut in world.characters:
        alpha = cut[..., 3]
        # a cut-out: opaque inside, transparent around it, soft at the edge
        assert cut.shape[2] == 4 and alpha.max() > 0.99 and alpha.min() < 0.01
        assert 0.2 < (alpha > 0.5).mean() < 0.95
    # distinct sets: their mean colours differ (a decoder can learn which place it is)
    means = np.array([s.reshape(-1, 3).mean(0) for s in world.sets])
    gaps = np.linalg.norm(means[:, None] - means[None], axis=-1)[np.triu_indices(6, 1)]
    assert gaps.min() > 0.02


def _one_character_frame(world, character, x, y, height, set_index=2, size=(128, 72)):
    """The same camera over a set, without and with one character."""
    import cv2

    width, h = size
    background = world.sets[set_index]
    matrix = _camera_matrix(background.shape, (background.shape[1] / 2, background.shape[0] / 2),
                            background.shape[1] * 0.6, width, h)
    empty = cv2.warpAffine(background, matrix, (width, h), flags=cv2.INTER_AREA,
                           borderMode=cv2.BORDER_REFLECT)
    row = np.zeros((len(world.characters), 4), np.float32)
    row[character] = (x, y, height, 0.0)
    shown = empty.copy()
    _draw_characters(shown, world, row)
    layout = Layout(np.array([set_index]), np.array([0]), np.array([1]), row[None])
    return empty, shown, layout


@pytest.mark.parametrize("character, x, y, height", [(0, 40.0, 40.0, 40.0), (2, 90.0, 45.0, 30.0),
                                                     (4, 64.0, 36.0, 50.0)])
def test_labels_are_where_the_pixels_changed(character, x, y, height):
    """A character's labelled centre in the warped 96x96 target is where pasting it changed the
    pixels (the warped frames with and without it, differenced); its area is the warped sum of
    a white copy of it pasted on black."""
    import cv2

    world = build_world()
    empty, shown, layout = _one_character_frame(world, character, x, y, height)

    def target(frame):
        return fisheye_warp(cv2.resize(frame, (96, 96), interpolation=cv2.INTER_AREA)[None], 10.0)[0]

    changed = np.abs(target(shown) - target(empty)).sum(-1) > 0.05
    rows, cols = np.nonzero(changed)
    _, labels = frame_labels(world, layout, (128, 72), 96, 10.0)
    lx, ly, area, visible = labels[0, character]
    assert visible == pytest.approx(1.0, abs=0.02)
    assert lx == pytest.approx(cols.mean(), abs=1.5) and ly == pytest.approx(rows.mean(), abs=1.5)
    white = world.characters[character].copy()
    white[..., :3] = 1.0
    black = np.zeros_like(empty)
    _paste(black, white, _character_matrix(white.shape, x, y, height, False))
    assert area == pytest.approx(target(black)[..., 0].sum(), rel=0.02)
    others = [c for c in range(len(CHARACTER_NAMES)) if c != character]
    assert np.all(np.isnan(labels[0, others, 0])) and np.all(labels[0, others, 2] == 0)


def test_a_character_half_out_of_the_frame_is_half_visible():
    world = build_world()
    _, _, layout = _one_character_frame(world, 4, 0.0, 36.0, 40.0)   # the creature is a disc
    _, labels = frame_labels(world, layout, (128, 72), 96, 10.0)
    assert labels[0, 4, 3] == pytest.approx(0.5, abs=0.03)


def test_shots_are_scenes_of_the_world_with_cuts_every_few_seconds():
    world = build_world()
    frames, layouts = zip(*render_world(world, 25 * 120, 64, 36, 25.0, np.random.default_rng(3)))
    layout = Layout.concatenate(layouts)
    assert sum(len(f) for f in frames) == 25 * 120 == len(layout.set_index)
    cuts = np.flatnonzero(np.diff(layout.shot)) + 1
    lengths = np.diff(np.concatenate([[0], cuts, [len(layout.shot)]]))[:-1] / 25.0
    assert lengths.min() >= 1.5 - 1e-9 and lengths.max() <= 6.0 + 1e-9
    # the same sets recur across scenes, and characters appear in many shots
    assert len(np.unique(layout.set_index)) >= 4
    on_screen = (layout.characters[..., 2] > 0).any(axis=0)
    assert on_screen.sum() >= 4


def test_test_clips_come_from_their_own_stream(tmp_path):
    """More training runs change nothing in the test clips' films: they are drawn from a
    stream of their own (new scenes of the same world)."""
    labels = []
    for n_runs in (1, 2):
        config = tiny_config(f"simulation.n_train_runs={n_runs}")
        out = str(tmp_path / f"raw{n_runs}")
        simulate_dataset(out, config.simulation, config.data, show_progress=False)
        labels.append(read_labels(out))
    one, two = (lab["runs"]["clip_01"] for lab in labels)
    n = min(len(one["set"]), len(two["set"]))
    assert n > 10
    np.testing.assert_array_equal(one["set"][:n], two["set"][:n])
    np.testing.assert_allclose(one["characters"][:n], two["characters"][:n])
    # ... while the training runs of the two datasets start alike (the same training stream)
    np.testing.assert_array_equal(labels[0]["runs"]["run_001"]["set"][:n],
                                  labels[1]["runs"]["run_001"]["set"][:n])


def test_no_test_frame_occurs_in_a_training_run(prepared_dir, raw_dir):
    """Every held-out target differs from every training target by more than 1/255 per pixel
    on average: the same world, never the same picture."""
    import h5py

    frames = {}
    for split in ("train", "test"):
        with h5py.File(os.path.join(prepared_dir, f"{split}.h5"), "r") as f:
            frames[split] = f["frames"][()].reshape(len(f["frames"]), -1).astype(np.float32)
    nearest = np.array([np.abs(frames["train"] - t).mean(axis=1).min() for t in frames["test"]])
    assert nearest.min() > 1.0 / 255
    # and the test clips show the world's sets (labels read through the prepared samples)
    with h5py.File(os.path.join(prepared_dir, "test.h5"), "r") as f:
        names, samples = read_names(f["runs/names"][()]), f["samples"][()]
    sets, characters = labels_for(read_labels(raw_dir), names, samples)
    assert len(sets) == len(samples) and set(sets) <= set(range(len(SET_NAMES)))
    assert characters.shape == (len(samples), len(CHARACTER_NAMES), 4)


def test_labels_for_refuses_labels_of_another_dataset(raw_dir):
    labels = read_labels(raw_dir)
    with pytest.raises(DataError, match="run 'clip_99'"):
        labels_for(labels, ["clip_99"], np.zeros((1, 5), np.int64))
    with pytest.raises(DataError, match="no per-frame labels"):
        read_labels(os.path.dirname(raw_dir))


def test_a_failed_simulation_leaves_no_dataset_and_a_full_folder_is_refused(tmp_path,
                                                                            monkeypatch):
    from brain2pix_gluon.data import simulation

    config = tiny_config()
    out = str(tmp_path / "raw")
    real, calls = simulation._simulate_run, []

    def fail_on_the_second_run(*args, **kwargs):
        calls.append(args[2])
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(simulation, "_simulate_run", fail_on_the_second_run)
    with pytest.raises(OSError):
        simulate_dataset(out, config.simulation, config.data, show_progress=False)
    assert calls == ["run_001", "run_002"]
    assert not os.path.exists(out) and not os.path.exists(out + ".partial")
    monkeypatch.setattr(simulation, "_simulate_run", real)
    os.makedirs(out)
    open(os.path.join(out, "notes.txt"), "w").close()
    with pytest.raises(DataError, match="not empty"):
        simulate_dataset(out, config.simulation, config.data, show_progress=False)
    assert os.listdir(out) == ["notes.txt"]
