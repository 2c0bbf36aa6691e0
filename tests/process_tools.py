"""Child processes for the tests of launched trainings.

Every child runs in its own process group under a time limit; when the limit passes, or the test
fails, the whole group gets SIGKILL, so no test can hang or leave processes behind. Each child's
environment carries a marker, and :func:`marked_processes` finds every process, grandchildren
included, that still carries it (Linux ``/proc``).
"""

import os
import signal
import subprocess
import sys
import threading
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MARK = "B2P_TEST_MARK"


def child_env(marker=None, **extra):
    """The test's environment with this checkout first on PYTHONPATH and a marker."""
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env[MARK] = marker or uuid.uuid4().hex
    env.update({k: str(v) for k, v in extra.items()})
    return env


def marked_processes(marker):
    """PIDs of the live processes whose environment holds ``B2P_TEST_MARK=marker``."""
    needle = f"{MARK}={marker}".encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as handle:
                environ = handle.read()
            with open(f"/proc/{name}/stat") as handle:
                state = handle.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and needle in environ.split(b"\0"):
            found.append(int(name))
    return found


def wait_until_gone(marker, timeout=10.0):
    """The marked processes still alive after up to ``timeout`` seconds (SIGKILL is not
    instantaneous)."""
    deadline = time.monotonic() + timeout
    while True:
        left = marked_processes(marker)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


class Child:
    """``argv`` in its own process group, its output (stdout and stderr) gathered line by line.

    Use as a context manager: leaving it kills the group, whatever happened.
    """

    def __init__(self, argv, env):
        self.env = env
        self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True, text=True)
        self.lines = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self):
        return "\n".join(self.lines)

    def wait(self, timeout):
        """The exit status; on timeout the group is killed and the test fails."""
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"no exit within {timeout} s; output:\n{self.output}") from None
        self._reader.join(timeout=10)
        return code

    def wait_for_line(self, text, timeout):
        """The first output line containing ``text`` (fails after ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if text in line:
                    return line
            if self.proc.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"no line with {text!r} within {timeout} s; output:\n{self.output}")

    def kill(self):
        """SIGKILL to the group, then to every process carrying this child's marker (a launch's
        processes run in groups of their own)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()
        for pid in marked_processes(self.env[MARK]):
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()
        return False


def run(argv, timeout, env):
    """Run ``argv`` to its end in its own process group: (exit status, output)."""
    with Child(argv, env) as child:
        code = child.wait(timeout)
        return code, child.output


def python(*args):
    """``[sys.executable, *args]``."""
    return [sys.executable, *map(str, args)]
