"""One writer per output folder: an exclusive lock held while a command writes there.

``train`` (its run folder), ``reconstruct`` and ``evaluate`` (their output folders) hold
:class:`FolderLock` for as long as they write. The lock is ``fcntl.flock`` on ``FOLDER/.lock``,
which holds the holder's PID and command; the operating system releases it when the process ends,
however it ends, so a lock left by a killed process never blocks the next run (the file stays,
the lock does not). A second process is refused with :class:`FolderInUseError` naming the folder
and the holder's PID. Within one process the lock is re-entrant (an experiment that trains,
reconstructs and evaluates in one process takes each folder as often as it needs).
"""

import errno
import os
import threading
import time

from .errors import FolderInUseError
from .utils import get_logger

__all__ = ["FolderLock", "LOCK_NAME"]

LOCK_NAME = ".lock"

_held = {}              # real path of a folder -> [fd, count] (locks this process holds)
_guard = threading.Lock()


def _holder(path):
    """What the lock file says about its holder, e.g. ``"PID 1234 (brain2pix train, since
    2026-11-30 19:20:01)"``."""
    try:
        with open(path) as handle:
            pid, _, rest = handle.read().strip().partition(" ")
        what, _, since = rest.partition("|")
        return f"PID {pid} ({what.strip() or 'brain2pix'}{', since ' + since if since else ''})"
    except (OSError, ValueError):
        return "PID unknown"


class FolderLock:
    """Exclusive use of an output folder by this process (see the module docstring).

    Parameters
    ----------
    folder : str
        Created when missing (and removed again on release when it is still empty).
    command : str
        Written into the lock file, e.g. ``"brain2pix train"``.
    option : str
        How the user named the folder, for the message (``"--out"``).
    """

    def __init__(self, folder, command, option="--out"):
        self.folder = os.fspath(folder)
        self.command, self.option = command, option
        self._key = None
        self._created = False

    @property
    def held(self):
        return self._key is not None

    def acquire(self):
        """Take the lock (a no-op when this object holds it already).

        Raises
        ------
        FolderInUseError
            When another process holds it.
        """
        if self._key is not None:
            return self
        import fcntl

        self._created = not os.path.isdir(self.folder)
        os.makedirs(self.folder, exist_ok=True)
        key = os.path.realpath(self.folder)
        with _guard:
            if key in _held:
                _held[key][1] += 1
                self._key = key
                return self
            path = os.path.join(key, LOCK_NAME)
            while True:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as exc:
                    os.close(fd)
                    if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                        raise FolderInUseError(
                            f"{self.option} {self.folder} is in use by another brain2pix process, "
                            f"{_holder(path)}; wait until it ends or choose another folder (the "
                            f"lock {path} is released when that process ends)") from None
                    # a file system without locks (some network mounts): go on, unprotected
                    get_logger().warning("%s: cannot lock (%s); make sure no other process "
                                         "writes there", self.folder, exc)
                    self._key = key
                    _held[key] = [None, 1]
                    return self
                # its last holder may have removed the file between our open and our lock
                try:
                    if os.fstat(fd).st_ino == os.stat(path).st_ino:
                        break
                except FileNotFoundError:
                    pass
                os.close(fd)
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()} {self.command}|"
                         f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
            _held[key] = [fd, 1]
            self._key = key
        return self

    def release(self):
        """Give the lock up (the last release of this process removes the lock file)."""
        if self._key is None:
            return
        key, self._key = self._key, None
        with _guard:
            entry = _held.get(key)
            if entry is None:
                return
            entry[1] -= 1
            if entry[1] > 0:
                return
            del _held[key]
            fd = entry[0]
            if fd is not None:
                try:
                    os.remove(os.path.join(key, LOCK_NAME))     # while still holding it
                except OSError:
                    pass
                os.close(fd)
        if self._created:
            try:
                os.rmdir(self.folder)       # only when nothing was written there
            except OSError:
                pass

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
        return False
