"""The embedded world: a fixed cast of characters and sets, filmed in shots like a TV series.

The Doctor Who stimulus is one series: the same characters return in the same sets, shot after
shot, in scenes cut every few seconds, and the test clips are new scenes of that series. A
decoder trained on it can learn what a blob of contrast at a place usually is. This module builds
such a world from the images that scikit-image and scikit-learn ship, so that it needs no
download:

* **Sets** (backgrounds the camera pans and zooms over): a temple under a blue sky, a star
  field, a garden with an orange flower, a launch pad at night, a pink-and-brown laboratory
  slide, a grey brick wall.
* **Characters** (cut-outs with an alpha mask, pasted over the set): the astronaut (head and
  orange suit), the cat's head, a dark horse, the cameraman in his black coat, and a round
  green-and-orange creature (the scikit-image logo's disc).

A **scene** is one set with a cast of zero to three characters, filmed in two to four shots of
1.5-6 s: wide shots (the characters small), medium shots and close-ups (one character filling the
frame). The camera pans and zooms linearly during a shot; characters walk across it. Every
draw comes from the generator it is given, so training runs and test clips use streams of their
own: a test clip shows the same cast and sets in new positions, trajectories and combinations.

Alongside the pixels the renderer returns each frame's layout (:class:`Layout`): which set, and
where each character stands. :func:`frame_labels` turns it into what a viewer of the *warped*
96x96 target can check: the set, and each character's centre, area and visible fraction.
"""

import dataclasses
import functools

import numpy as np

from ..errors import DataError

__all__ = ["SET_NAMES", "CHARACTER_NAMES", "SHOT_KINDS", "World", "Layout", "build_world",
           "render_world", "render_layout", "frame_labels", "LABEL_FIELDS"]

SET_NAMES = ("temple", "space", "garden", "launch pad", "laboratory", "brick wall")
CHARACTER_NAMES = ("astronaut", "cat", "horse", "cameraman", "creature")
SHOT_KINDS = ("wide", "medium", "close-up")

# per character in a label array: centre x (column) and y (row) in pixels of the warped target,
# area in warped pixels, and the fraction of the character that is visible (in the video frame,
# not hidden by another character)
LABEL_FIELDS = ("x", "y", "area", "visible")

# cut-out outlines, in pixels of the packaged images: (x, y) vertices
_ASTRONAUT = ((225, 12), (265, 25), (295, 50), (300, 110), (292, 150), (306, 190), (312, 250),
              (352, 290), (365, 340), (330, 380), (300, 440), (285, 511), (20, 511), (25, 330),
              (60, 280), (108, 232), (114, 178), (150, 150), (150, 95), (165, 45), (190, 20))
_CAMERAMAN = ((0, 200), (60, 140), (150, 110), (165, 90), (200, 65), (245, 72), (265, 105),
              (262, 140), (325, 140), (330, 185), (305, 250), (255, 250), (200, 300), (155, 330),
              (150, 511), (0, 511))


@dataclasses.dataclass(frozen=True)
class World:
    """The sets and the cast.

    Attributes
    ----------
    sets : tuple of ndarray, each shape (H, W, 3), float32 in [0, 1]
        In the order of :data:`SET_NAMES`.
    characters : tuple of ndarray, each shape (h, w, 4), float32 in [0, 1]
        RGB and alpha (the cut-out's mask), in the order of :data:`CHARACTER_NAMES`.
    """

    sets: tuple
    characters: tuple


def _rgb(image):
    image = np.asarray(image)
    if image.dtype == bool:
        image = image.astype(np.float32) * 255.0
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return image[..., :3].astype(np.float32) / 255.0


def _polygon_alpha(shape, vertices, blur=1.5):
    import cv2

    mask = np.zeros(shape[:2], np.float32)
    cv2.fillPoly(mask, [np.array(vertices, np.int32)], 1.0)
    return cv2.GaussianBlur(mask, (0, 0), blur)     # soft edges, as a matte would have


def _ellipse_alpha(shape, centre, axes, blur=1.5):
    import cv2

    mask = np.zeros(shape[:2], np.float32)
    cv2.ellipse(mask, centre, axes, 0, 0, 360, 1.0, -1)
    return cv2.GaussianBlur(mask, (0, 0), blur)


def _cut(rgb, alpha):
    """Crop an RGBA cut-out to its mask's bounding box."""
    rows = np.flatnonzero(alpha.max(axis=1) > 0.01)
    cols = np.flatnonzero(alpha.max(axis=0) > 0.01)
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    return np.concatenate([rgb[box], alpha[box][..., None]], axis=-1).astype(np.float32)


@functools.lru_cache(maxsize=1)
def build_world():
    """The world's sets and characters, from images shipped with scikit-image and scikit-learn.

    Returns
    -------
    World

    Raises
    ------
    DataError
        When a packaged image cannot be loaded (the message names it).
    """
    import cv2
    import skimage.data

    def load(name):
        try:
            return np.asarray(getattr(skimage.data, name)())
        except Exception as exc:     # a damaged install: say which image, and how to fix it
            raise DataError(f"simulation: the scikit-image image {name!r} of the embedded world "
                            f"could not be loaded ({exc}); reinstall scikit-image with its data "
                            f"files (pip install --force-reinstall scikit-image)") from None

    try:
        from sklearn.datasets import load_sample_images

        china, flower = load_sample_images().images
    except Exception as exc:
        raise DataError(f"simulation: scikit-learn's sample images (china.jpg, flower.jpg) of the "
                        f"embedded world could not be loaded ({exc}); reinstall scikit-learn") \
            from None
    sets = (_rgb(china), _rgb(load("hubble_deep_field")), _rgb(flower), _rgb(load("rocket")),
            _rgb(load("immunohistochemistry")), _rgb(load("brick")))

    astronaut = _rgb(load("astronaut"))
    cat = _rgb(load("chelsea"))
    horse_mask = ~np.asarray(load("horse"), bool)            # the silhouette is black on white
    horse_alpha = cv2.GaussianBlur(horse_mask.astype(np.float32), (0, 0), 1.0)
    # a dark brown coat, lit from above: a little lighter towards the top
    shade = np.linspace(1.15, 0.75, horse_mask.shape[0], dtype=np.float32)[:, None, None]
    horse_rgb = np.clip(np.array([0.36, 0.22, 0.13], np.float32) * shade
                        * np.ones(horse_mask.shape + (3,), np.float32), 0, 1)
    camera = _rgb(load("camera"))
    logo = np.asarray(load("logo")).astype(np.float32) / 255.0
    characters = (
        _cut(astronaut, _polygon_alpha(astronaut.shape, _ASTRONAUT)),
        _cut(cat, _ellipse_alpha(cat.shape, (245, 165), (190, 150))),
        _cut(horse_rgb, horse_alpha),
        _cut(camera, _polygon_alpha(camera.shape, _CAMERAMAN)),
        _cut(logo[..., :3], _ellipse_alpha(logo.shape, (250, 250), (236, 236))),
    )
    return World(sets=sets, characters=characters)


@dataclasses.dataclass
class Layout:
    """What every frame of a rendered stretch of video shows.

    Attributes
    ----------
    set_index : ndarray of int, shape (n_frames,)
        Index into :data:`SET_NAMES`.
    shot : ndarray of int, shape (n_frames,)
        Number of the shot (0, 1, ... within the stretch); a cut is where it changes.
    kind : ndarray of int, shape (n_frames,)
        Index into :data:`SHOT_KINDS`.
    characters : ndarray, shape (n_frames, n_characters, 4), float32
        Per character of :data:`CHARACTER_NAMES`: centre x, centre y and height, in pixels of
        the video frame, and 1.0 when mirrored; the height is 0 when it is not in the shot.
    """

    set_index: np.ndarray
    shot: np.ndarray
    kind: np.ndarray
    characters: np.ndarray

    @staticmethod
    def concatenate(parts):
        """One layout from consecutive stretches (shot numbers continue across them)."""
        shots, offset = [], 0
        for part in parts:
            shots.append(part.shot + offset)
            offset += int(part.shot.max()) + 1 if len(part.shot) else 0
        return Layout(np.concatenate([p.set_index for p in parts]), np.concatenate(shots),
                      np.concatenate([p.kind for p in parts]),
                      np.concatenate([p.characters for p in parts]))

    def take(self, index):
        """The layout of the frames at ``index`` (an integer array)."""
        return Layout(self.set_index[index], self.shot[index], self.kind[index],
                      self.characters[index])


def _camera_matrix(set_shape, centre, side, width, height):
    """Affine map from set pixels to frame pixels for a window of ``side`` set pixels wide."""
    scale = width / side
    return np.array([[scale, 0.0, width / 2 - scale * centre[0]],
                     [0.0, scale, height / 2 - scale * centre[1]]], np.float64)


def _character_matrix(cutout_shape, x, y, height, mirrored):
    """Affine map from cut-out pixels to frame pixels: centred at (x, y), ``height`` tall."""
    h, w = cutout_shape[:2]
    scale = height / h
    sx = -scale if mirrored else scale
    return np.array([[sx, 0.0, x - sx * (w - 1) / 2],
                     [0.0, scale, y - scale * (h - 1) / 2]], np.float64)


def _paste(frame, cutout, matrix):
    """Alpha-blend a cut-out into ``frame`` (H, W, 3) in place."""
    import cv2

    height, width = frame.shape[:2]
    warped = cv2.warpAffine(cutout, matrix, (width, height), flags=cv2.INTER_AREA,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    alpha = warped[..., 3:4]
    frame *= 1.0 - alpha
    frame += warped[..., :3] * alpha


def _draw_scene_plan(world, rng, width, height, fps, n_shots):
    """The shots of one scene: set, cast, and per shot its kind, length, camera and characters."""
    n_sets, n_chars = len(world.sets), len(world.characters)
    set_index = int(rng.integers(n_sets))
    n_cast = int(rng.choice(4, p=(0.1, 0.4, 0.35, 0.15)))
    cast = rng.choice(n_chars, size=n_cast, replace=False)
    shots = []
    for _ in range(n_shots):
        kinds = (0, 1, 2) if n_cast else (0, 1)
        kind = int(rng.choice(kinds, p=(0.4, 0.35, 0.25) if n_cast else (0.55, 0.45)))
        n = int(round(rng.uniform(1.5, 6.0) * fps))
        if kind == 2:
            on_screen = cast[rng.integers(n_cast):][:1]
        else:
            on_screen = cast
        # the camera: a window of the frame's aspect ratio over the set, panning and zooming
        set_h, set_w = world.sets[set_index].shape[:2]
        max_side = min(set_w, set_h * width / height)
        side0 = max_side * rng.uniform(*((0.7, 1.0), (0.45, 0.75), (0.35, 0.6))[kind])
        side1 = float(np.clip(side0 * rng.uniform(0.85, 1.15), 0.3 * max_side, max_side))
        cams = []
        for side in (side0, side1):
            half_w, half_h = side / 2, side * height / width / 2
            cams.append((rng.uniform(half_w, set_w - half_w), rng.uniform(half_h, set_h - half_h),
                         side))
        actors = []
        for c in on_screen:
            if kind == 2:
                size = rng.uniform(0.9, 1.3) * height
                x0, y0 = rng.uniform(0.35, 0.65) * width, rng.uniform(0.45, 0.65) * height
                speed = rng.normal(0, 0.03, 2) * width
            else:
                size = rng.uniform(*((0.3, 0.5), (0.5, 0.8))[kind]) * height
                x0, y0 = rng.uniform(0.12, 0.88) * width, rng.uniform(0.45, 0.75) * height
                speed = np.array([rng.normal(0, 0.12), rng.normal(0, 0.02)]) * width
            actors.append((int(c), x0, y0, size, speed, bool(rng.random() < 0.5)))
        shots.append((kind, n, cams, actors))
    return set_index, shots


def render_world(world, n_frames, width, height, fps, rng):
    """Film ``n_frames`` of video in the world: scenes of shots, yielded shot by shot.

    Parameters
    ----------
    world : World
    n_frames : int
        Frames to render at the video's native rate.
    width, height : int
        Frame size in pixels.
    fps : float
        Native frame rate (shot lengths and speeds are in seconds).
    rng : numpy.random.Generator
        Every random choice (scenes, shots, camera, characters) is drawn from it.

    Yields
    ------
    frames : ndarray of uint8, shape (n_shot_frames, height, width, 3)
    layout : Layout
        The same frames' layout (shot numbers start at 0 in every yield).
    """
    import cv2

    t = 0
    while t < n_frames:
        set_index, shots = _draw_scene_plan(world, rng, width, height, fps,
                                            int(rng.integers(2, 5)))
        for kind, n, cams, actors in shots:
            n = min(n, n_frames - t)
            if n <= 0:
                return
            layout = _shot_layout(set_index, kind, n, actors, len(world.characters), fps)
            frames = np.empty((n, height, width, 3), np.uint8)
            background = world.sets[set_index]
            for k in range(n):
                a = k / max(n - 1, 1)
                cx, cy, side = ((1 - a) * np.array(cams[0]) + a * np.array(cams[1])).tolist()
                frame = cv2.warpAffine(background, _camera_matrix(background.shape, (cx, cy),
                                                                  side, width, height),
                                       (width, height), flags=cv2.INTER_AREA,
                                       borderMode=cv2.BORDER_REFLECT)
                _draw_characters(frame, world, layout.characters[k])
                frames[k] = np.clip(frame * 255.0 + 0.5, 0, 255).astype(np.uint8)
            yield frames, layout
            t += n


def _shot_layout(set_index, kind, n, actors, n_chars, fps):
    chars = np.zeros((n, n_chars, 4), np.float32)
    seconds = np.arange(n) / fps
    for c, x0, y0, size, speed, mirrored in actors:
        chars[:, c, 0] = x0 + speed[0] * seconds
        chars[:, c, 1] = y0 + speed[1] * seconds
        chars[:, c, 2] = size
        chars[:, c, 3] = float(mirrored)
    return Layout(np.full(n, set_index, np.int64), np.zeros(n, np.int64),
                  np.full(n, kind, np.int64), chars)


def _draw_characters(frame, world, characters):
    """Paste the characters present in one frame's layout row, the smallest (farthest) first."""
    present = [c for c in range(len(world.characters)) if characters[c, 2] > 0]
    for c in sorted(present, key=lambda c: characters[c, 2]):
        x, y, size, mirrored = characters[c]
        _paste(frame, world.characters[c],
               _character_matrix(world.characters[c].shape, x, y, size, mirrored > 0.5))


def render_layout(world, layout, width, height):
    """Each character's alpha mask in every frame of a layout, as the video shows it.

    Parameters
    ----------
    world : World
    layout : Layout
        ``n`` frames.
    width, height : int
        Size of the frames to draw into (the layout's pixel units are scaled from the video
        frame's size, ``layout_size``, when they differ: see :func:`frame_labels`).

    Returns
    -------
    ndarray, shape (n, n_characters, height, width), float32
        Alpha of each character where it is visible: a character in front hides those behind.
    """
    import cv2

    n, n_chars = len(layout.set_index), len(world.characters)
    out = np.zeros((n, n_chars, height, width), np.float32)
    for k in range(n):
        cover = np.zeros((height, width), np.float32)     # what lies in front so far, from the front
        row = layout.characters[k]
        present = [c for c in range(n_chars) if row[c, 2] > 0]
        for c in sorted(present, key=lambda c: -row[c, 2]):          # front to back
            x, y, size, mirrored = row[c]
            cut = world.characters[c]
            alpha = cv2.warpAffine(np.ascontiguousarray(cut[..., 3]),
                                   _character_matrix(cut.shape, x, y, size, mirrored > 0.5),
                                   (width, height), flags=cv2.INTER_AREA,
                                   borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            out[k, c] = alpha * (1.0 - cover)
            cover = cover + out[k, c]
    return out


def frame_labels(world, layout, video_size, image_size, max_ratio, fisheye=True):
    """What a viewer of the warped target can check, per frame: the set and each character.

    The characters' masks are drawn at the video's size, resized to ``image_size`` squared (the
    aspect ratio squashed, as the frames are), fisheye-warped like the targets, and measured.

    Parameters
    ----------
    world : World
    layout : Layout
        ``n`` frames (e.g. those shown at the TR onsets).
    video_size : tuple of int
        (width, height) of the video frames the layout's pixels refer to.
    image_size : int
        Side of the prepared targets.
    max_ratio : float
        The fisheye warp's strength (``data.max_ratio``).
    fisheye : bool
        False when the targets are not warped (``data.fisheye=false``).

    Returns
    -------
    set_index : ndarray of int, shape (n,)
    characters : ndarray, shape (n, n_characters, 4), float32
        :data:`LABEL_FIELDS` per character: centre x (column) and y (row) in pixels of the
        target (pixel centres at integers), area in target pixels (after the warp), and the
        fraction of the character that is visible (inside the video frame and not hidden by a
        character in front). x and y are NaN, area and visible 0, when the character is not in
        the frame.
    """
    import cv2

    from ..preprocessing.retina import fisheye_warp

    width, height = video_size
    masks = render_layout(world, layout, width, height)          # (n, C, h, w)
    n, n_chars = masks.shape[:2]
    small = np.stack([cv2.resize(m, (image_size, image_size), interpolation=cv2.INTER_AREA)
                      for m in masks.reshape(n * n_chars, height, width)])
    small = small.reshape(n, n_chars, image_size, image_size)
    if fisheye:
        warped = fisheye_warp(small.transpose(0, 2, 3, 1).reshape(n, image_size, image_size,
                                                                  n_chars), max_ratio)
        small = warped.transpose(0, 3, 1, 2)
    labels = np.zeros((n, n_chars, 4), np.float32)
    labels[..., :2] = np.nan
    rows, cols = np.mgrid[0:image_size, 0:image_size].astype(np.float32)
    area = small.sum(axis=(2, 3))                                  # (n, C)
    for k in range(n):
        for c in range(n_chars):
            size = layout.characters[k, c, 2]
            if size <= 0:
                continue
            cut = world.characters[c]
            full = cut[..., 3].sum() * (size / cut.shape[0]) ** 2    # unclipped area, video px
            labels[k, c, 3] = min(masks[k, c].sum() / max(full, 1e-6), 1.0)
            if area[k, c] > 1e-3:
                labels[k, c, 0] = (small[k, c] * cols).sum() / area[k, c]
                labels[k, c, 1] = (small[k, c] * rows).sum() / area[k, c]
                labels[k, c, 2] = area[k, c]
    return layout.set_index.copy(), labels
