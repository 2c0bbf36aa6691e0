"""Reading stimulus videos at one frame per TR, and writing frames as MP4 and GIF."""

import os
import shutil
import subprocess

import numpy as np

from ..errors import DataError

__all__ = ["read_video", "write_video", "write_gif"]


def _read_ffmpeg(path, size, fps):
    command = ["ffmpeg", "-v", "error", "-i", path, "-an", "-vf",
               f"scale={size}:{size},fps={fps:.11f}", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    result = subprocess.run(command, capture_output=True, check=False)
    if result.returncode != 0:
        raise DataError(f"video {path!s}: ffmpeg failed: {result.stderr.decode(errors='replace')[-500:]}")
    return np.frombuffer(result.stdout, np.uint8).reshape(-1, size, size, 3)


def _read_opencv(path, size, tr):
    import cv2

    capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        raise DataError(f"video {path!s}: OpenCV could not open it")
    native_fps = capture.get(cv2.CAP_PROP_FPS) or (1.0 / tr)
    frames, index, wanted = [], 0, 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        # ffmpeg's fps filter keeps, for output time k*tr, the input frame nearest to it.
        while int(np.floor(wanted * tr * native_fps + 0.5)) == index:
            resized = cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA)
            frames.append(cv2.cvtColor(resized, cv2.COLOR_BGR2RGB))
            wanted += 1
        index += 1
    capture.release()
    if not frames:
        raise DataError(f"video {path!s}: no frames could be decoded")
    return np.stack(frames)


def read_video(path, size=96, tr=0.7, backend="auto"):
    """Decode a video at one frame per TR, resized to size x size, RGB.

    The paper used ``ffmpeg -an -vf scale=96:96,fps=1.42857142857``; that command is used when
    ffmpeg is on PATH. Otherwise OpenCV decodes every frame and keeps the one nearest to each
    TR onset (INTER_AREA resizing), which matches ffmpeg exactly when the video's frame rate is
    already 1/TR and closely otherwise.

    Parameters
    ----------
    path : str
    size : int
    tr : float
        Seconds per output frame.
    backend : {"auto", "ffmpeg", "opencv"}

    Returns
    -------
    ndarray of uint8, shape (n_frames, size, size, 3)
    """
    if not os.path.exists(path):
        raise DataError(f"video {path!s} does not exist")
    if backend == "ffmpeg" or (backend == "auto" and shutil.which("ffmpeg")):
        return _read_ffmpeg(path, size, 1.0 / tr)
    return _read_opencv(path, size, tr)


def write_video(path, frames, fps=1.0 / 0.7):
    """Write RGB frames (N, H, W, 3) uint8 or float in [0, 1] as an MP4 (mp4v) with OpenCV."""
    import cv2

    frames = _to_uint8(frames)
    height, width = frames.shape[1:3]
    tmp = path + ".partial" + os.path.splitext(path)[1]
    writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise DataError(f"video {path!s}: OpenCV could not open a writer")
    try:
        for frame in frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    os.replace(tmp, path)
    return path


def write_gif(path, frames, fps=1.0 / 0.7):
    """Write RGB frames (N, H, W, 3) as an animated GIF."""
    from PIL import Image

    frames = _to_uint8(frames)
    images = [Image.fromarray(f) for f in frames]
    tmp = path + ".partial.gif"
    images[0].save(tmp, save_all=True, append_images=images[1:], loop=0,
                   duration=int(round(1000.0 / fps)))
    os.replace(tmp, path)
    return path


def _to_uint8(frames):
    arr = np.asarray(frames)
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise DataError(f"frames: expected shape (N, H, W, 3), got {arr.shape}")
    if arr.dtype != np.uint8:
        arr = (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return arr
