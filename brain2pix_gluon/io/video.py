"""Reading stimulus videos at one frame per TR, and writing frames as video files and GIFs.

The authors resampled every video with ``ffmpeg -an -vf scale=96:96,fps=1.42857142857`` (paper
§2.1): whatever the source's frame rate, size and aspect ratio, each output frame is the
96x96 picture shown at one TR onset, the aspect ratio squashed to a square. :func:`read_video`
runs that command with the ffmpeg binary that the ``imageio-ffmpeg`` wheel ships (or one on
``PATH``); without ffmpeg it falls back on OpenCV and reproduces the fps filter's choice of source
frames exactly (:func:`fps_filter_selection`), with OpenCV's own resizing.

The fps filter's rule (``round=near``, ``eof_action=round``): each source frame's timestamp is
expressed in output frames and rounded to the nearest integer, halves away from zero; output
frame ``k`` is the last source frame whose rounded timestamp is ``<= k``; output frames are made
while ``k`` is below the rounded end time of the stream (last timestamp + one frame duration).
"""

import errno
import os
import shutil
import subprocess
import tempfile
from fractions import Fraction

import numpy as np

from ..config import ASPECT_MODES, REENCODE_MODES, VIDEO_BACKENDS, DataConfig
from ..errors import DataError
from ..utils import disk_nearly_full, replacing

__all__ = ["read_video", "write_video", "VideoWriter", "write_gif", "encode_browser_video", "ffmpeg_executable", "fps_filter_selection",
           "ASPECT_MODES", "REENCODE_MODES", "VIDEO_BACKENDS"]



def ffmpeg_executable():
    """Path of an ffmpeg binary: the ``imageio-ffmpeg`` wheel's, else one on PATH, else None."""
    try:
        import imageio_ffmpeg

        path = imageio_ffmpeg.get_ffmpeg_exe()
        if path and os.path.exists(path):
            return path
    except Exception:  # the wheel is missing or ships no binary for this platform
        pass
    return shutil.which("ffmpeg")


def _rate(tr):
    """The output rate as ffmpeg parses ``1/tr`` written with 11 decimals (10/7 for TR 0.7 s)."""
    return Fraction(f"{1.0 / tr:.11f}").limit_denominator(1001000)


def _filter_chain(size, tr, aspect):
    crop = "crop=min(iw\\,ih):min(iw\\,ih)," if aspect == "crop" else ""
    return f"{crop}scale={size}:{size},fps={1.0 / tr:.11f}"


def _run_ffmpeg(exe, args, path):
    result = subprocess.run([exe, "-nostdin", "-v", "error", *args], capture_output=True, check=False)
    # at "-v error" ffmpeg prints only errors; some (a file that ends early, a damaged packet)
    # leave the exit code at 0, but the frames after them are missing or wrong
    errors = result.stderr.decode(errors="replace").strip()
    if result.returncode != 0 or errors:
        raise DataError(f"video {path!s}: ffmpeg reported errors (exit {result.returncode}), the "
                        f"file is damaged or incomplete: {errors[-500:]}")
    return result.stdout


def _read_ffmpeg(exe, path, size, tr, aspect):
    out = _run_ffmpeg(exe, ["-xerror", "-i", path, "-an", "-vf", _filter_chain(size, tr, aspect),
                            "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], path)
    if len(out) % (size * size * 3):
        raise DataError(f"video {path!s}: ffmpeg returned {len(out)} bytes, not a whole number "
                        f"of {size}x{size} RGB frames")
    return np.frombuffer(out, np.uint8).reshape(-1, size, size, 3)


def fps_filter_selection(timestamps, end_time, tr):
    """Source frame shown at each TR onset, as ffmpeg's fps filter chooses it.

    Parameters
    ----------
    timestamps : sequence of float
        Presentation time of every source frame in seconds, increasing.
    end_time : float
        End of the stream: last timestamp plus one frame duration (seconds).
    tr : float
        Seconds per output frame.

    Returns
    -------
    ndarray of int64, shape (n_output_frames,)
        Index of the source frame of each output frame.
    """
    rate = _rate(tr)

    def rounded(seconds):
        # half away from zero; timestamps come from millisecond or finer time bases, so a
        # value within 1e-6 of a half is a half that float arithmetic put on the wrong side
        value = float(Fraction(seconds).limit_denominator(10 ** 7) * rate)
        return int(np.floor(value + 0.5 + 1e-6))

    out_pts = np.array([rounded(t) for t in timestamps], np.int64)
    if out_pts.size == 0:
        return np.zeros(0, np.int64)
    first, end = out_pts[0], rounded(end_time)
    wanted = np.arange(first, max(end, first), dtype=np.int64)
    # last source frame whose rounded timestamp is <= k
    return np.searchsorted(out_pts, wanted, side="right").astype(np.int64) - 1


def _read_opencv(path, size, tr, aspect):
    import cv2

    capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        raise DataError(f"video {path!s}: OpenCV could not open it")
    native_fps = capture.get(cv2.CAP_PROP_FPS)
    frames, stamps = [], []
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            stamps.append(capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0)
            if aspect == "crop":
                h, w = frame.shape[:2]
                side = min(h, w)
                frame = frame[(h - side) // 2:(h - side) // 2 + side,
                              (w - side) // 2:(w - side) // 2 + side]
            resized = cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA)
            frames.append(cv2.cvtColor(resized, cv2.COLOR_BGR2RGB))
    finally:
        capture.release()
    if not frames:
        raise DataError(f"video {path!s}: no frames could be decoded")
    if not native_fps or native_fps <= 0:
        raise DataError(f"video {path!s}: OpenCV reports no frame rate; install imageio-ffmpeg")
    if len(stamps) > 1 and not np.all(np.diff(stamps) > 0):
        stamps = [k / native_fps for k in range(len(frames))]  # no usable timestamps
    # the last frame lasts as long as the others (OpenCV's frame rate is a guess from the time
    # base for some containers, e.g. 10 fps for any WebM with millisecond timestamps)
    duration = float(np.median(np.diff(stamps))) if len(stamps) > 1 else 1.0 / native_fps
    selection = fps_filter_selection(stamps, stamps[-1] + duration, tr)
    return np.stack(frames)[selection]


def _reencode_webm(exe, path, size, tr, aspect, folder):
    """The authors' intermediate file: the resampled 96x96 video written as WebM."""
    out = os.path.join(folder, "resampled.webm")
    _run_ffmpeg(exe, ["-xerror", "-i", path, "-an", "-vf", _filter_chain(size, tr, aspect), out], path)
    return out


def read_video(path, size=DataConfig.image_size, tr=DataConfig.tr, backend=DataConfig.video_backend,
               aspect=DataConfig.video_aspect, reencode=DataConfig.reencode):
    """Decode a video at one frame per TR, resized to size x size, RGB.

    Parameters
    ----------
    path : str
        Any container/codec ffmpeg (or OpenCV) reads, at any frame rate, size and aspect ratio.
    size : int
        Output side (96 in the paper).
    tr : float
        Seconds per output frame.
    backend : {"auto", "ffmpeg", "opencv"}
        "auto": ffmpeg when available (see :func:`ffmpeg_executable`), else OpenCV.
    aspect : {"squash", "crop"}
        "squash": scale the whole picture to a square as the authors did; "crop": cut the
        centred square first.
    reencode : {"none", "webm"}
        "webm": write the resampled frames to an intermediate 96x96 WebM with ffmpeg and decode
        that with OpenCV, as the authors did (their targets carry this compression).

    Returns
    -------
    ndarray of uint8, shape (n_frames, size, size, 3)
    """
    if not os.path.exists(path):
        raise DataError(f"video {path!s} does not exist")
    for name, value, allowed in (("backend", backend, VIDEO_BACKENDS), ("aspect", aspect, ASPECT_MODES),
                                 ("reencode", reencode, REENCODE_MODES)):
        if value not in allowed:
            raise DataError(f"read_video {name}: expected one of {list(allowed)}, got {value!r}")
    exe = ffmpeg_executable() if backend in ("auto", "ffmpeg") or reencode != "none" else None
    if exe is None and (backend == "ffmpeg" or reencode != "none"):
        raise DataError(f"video {path!s}: ffmpeg is needed (backend={backend!r}, "
                        f"reencode={reencode!r}) but neither imageio-ffmpeg nor PATH provides it")
    if reencode == "webm":
        with tempfile.TemporaryDirectory(prefix="brain2pix-webm-") as folder:
            webm = _reencode_webm(exe, path, size, tr, aspect, folder)
            # already one frame per TR and square: OpenCV decodes it (BGR -> RGB)
            return _read_opencv(webm, size, tr, "squash")
    if exe is not None:
        return _read_ffmpeg(exe, path, size, tr, aspect)
    return _read_opencv(path, size, tr, aspect)


class VideoWriter:
    """Write RGB uint8 frames of one size to a video file, a chunk at a time.

    ``.webm`` goes through ffmpeg (VP9; needs :func:`ffmpeg_executable`), anything else is MP4
    (mp4v) through OpenCV. The file appears under its name only when :meth:`close` succeeds.

    Parameters
    ----------
    path : str
    width, height : int
    fps : float
        Any positive frame rate.
    """

    def __init__(self, path, width, height, fps=1.0 / 0.7):
        self.path, self.size = os.fspath(path), (int(width), int(height))
        self.ext = os.path.splitext(self.path)[1]
        self.tmp = self.path + ".partial" + self.ext
        self._proc = self._cv = None
        self._written = 0
        if self.ext == ".webm":
            exe = ffmpeg_executable()
            if exe is None:
                raise DataError(f"video {path!s}: writing WebM needs ffmpeg "
                                f"(pip install imageio-ffmpeg)")
            command = [exe, "-nostdin", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
                       "-s", f"{width}x{height}", "-r", str(Fraction(fps).limit_denominator(1001000)),
                       "-i", "-", "-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8",
                       "-crf", "12", "-b:v", "0", "-pix_fmt", "yuv420p", self.tmp]
            self._proc = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        else:
            import cv2

            self._cv = cv2.VideoWriter(self.tmp, cv2.VideoWriter_fourcc(*"mp4v"), fps, self.size)
            if not self._cv.isOpened():
                if os.path.exists(self.tmp):
                    os.remove(self.tmp)
                if disk_nearly_full(self.tmp):      # OpenCV says no more than that
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self.path)
                raise DataError(f"video {path!s}: OpenCV could not open a writer")

    def write(self, frames):
        """Append frames, shape (N, height, width, 3), uint8 or float in [0, 1]."""
        frames = _to_uint8(frames)
        if frames.shape[1:3] != self.size[::-1]:
            raise DataError(f"video {self.path!s}: expected frames of {self.size[1]}x{self.size[0]} "
                            f"(height x width), got {frames.shape[1:3]}")
        if self._proc is not None:
            try:
                self._proc.stdin.write(np.ascontiguousarray(frames).tobytes())
            except BrokenPipeError:
                self._fail()
        else:
            import cv2

            for frame in frames:
                self._cv.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            self._written += len(frames)

    def _fail(self):
        err = self._proc.stderr.read().decode(errors="replace")[-500:] if self._proc.stderr else ""
        self._proc.kill()
        self._proc.wait()
        self.abort()
        if "No space left on device" in err:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self.path)
        raise DataError(f"video {self.path!s}: ffmpeg could not write it: {err}")

    def close(self):
        if self._proc is not None:
            self._proc.stdin.close()
            if self._proc.wait() != 0:
                self._fail()
            self._proc.stderr.close()
        else:
            self._cv.release()
            self._check_written()
        os.replace(self.tmp, self.path)
        return self.path

    def _check_written(self):
        """OpenCV reports no failed write (a full disk): count the frames the file holds."""
        import cv2

        capture = cv2.VideoCapture(self.tmp)
        found = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
        capture.release()
        if found == self._written:
            return
        full = disk_nearly_full(self.tmp)
        self.abort()
        if full:
            raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} (the video holds {found} "
                                        f"of its {self._written} frames)", self.path)
        raise DataError(f"video {self.path!s}: OpenCV wrote {found} of {self._written} frames")

    def abort(self):
        if self._cv is not None:
            self._cv.release()
        if os.path.exists(self.tmp):
            os.remove(self.tmp)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            if self._proc is not None and self._proc.poll() is None:
                self._proc.kill()
                self._proc.wait()
            self.abort()
        return False


def write_video(path, frames, fps=1.0 / DataConfig.tr):
    """Write RGB frames (N, H, W, 3), uint8 or float in [0, 1], as WebM (ffmpeg) or MP4 (OpenCV)."""
    frames = _to_uint8(frames)
    with VideoWriter(path, frames.shape[2], frames.shape[1], fps) as writer:
        writer.write(frames)
    return path


def write_gif(path, frames, fps=1.0 / DataConfig.tr):
    """Write RGB frames (N, H, W, 3) as an animated GIF."""
    from PIL import Image

    frames = _to_uint8(frames)
    images = [Image.fromarray(f) for f in frames]
    with replacing(path) as tmp:        # reconstructions.partial.gif, removed on failure
        images[0].save(tmp, save_all=True, append_images=images[1:], loop=0,
                       duration=int(round(1000.0 / fps)))
    return path


def encode_browser_video(frames, fps=1.0 / DataConfig.tr, crf=26):
    """RGB frames as the bytes of a video every browser plays inline.

    H.264 in MP4 (yuv420p, the index at the front) with the ffmpeg binary of ``imageio-ffmpeg``
    (or on PATH); without ffmpeg an animated GIF (Pillow).

    Parameters
    ----------
    frames : ndarray, shape (N, H, W, 3)
        uint8, or float in [0, 1]; odd sizes are padded by one black row or column (H.264's
        4:2:0 needs even ones).
    fps : float
    crf : int
        H.264 quality (0 lossless .. 51; 23 is ffmpeg's default).

    Returns
    -------
    bytes, str
        The file's bytes and its MIME type (``video/mp4`` or ``image/gif``).
    """
    import io

    frames = _to_uint8(frames)
    n, h, w, _ = frames.shape
    if n == 0:
        raise DataError("encode_browser_video: expected at least one frame, got none")
    exe = ffmpeg_executable()
    if exe is None:
        from PIL import Image

        buffer = io.BytesIO()
        images = [Image.fromarray(f) for f in frames]
        images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], loop=0,
                       duration=int(round(1000.0 / fps)))
        return buffer.getvalue(), "image/gif"
    frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)))
    with tempfile.TemporaryDirectory(prefix="brain2pix-video-") as folder:
        path = os.path.join(folder, "video.mp4")
        command = [exe, "-nostdin", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
                   "-s", f"{frames.shape[2]}x{frames.shape[1]}",
                   "-r", str(Fraction(fps).limit_denominator(1001000)), "-i", "-",
                   "-c:v", "libx264", "-crf", str(int(crf)), "-preset", "medium",
                   "-pix_fmt", "yuv420p", "-movflags", "+faststart", path]
        result = subprocess.run(command, input=np.ascontiguousarray(frames).tobytes(),
                                capture_output=True, check=False)
        if result.returncode != 0 or not os.path.exists(path):
            raise DataError(f"encode_browser_video: ffmpeg ({exe}) could not write H.264: "
                            f"{result.stderr.decode(errors='replace')[-500:]}")
        with open(path, "rb") as handle:
            return handle.read(), "video/mp4"


def _to_uint8(frames):
    arr = np.asarray(frames)
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise DataError(f"frames: expected shape (N, H, W, 3), got {arr.shape}")
    if arr.dtype != np.uint8:
        arr = (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return arr
