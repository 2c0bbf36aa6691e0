"""``brain2pix launch``: the processes of MXNet's parameter server for one training.

Training one model across processes (``train.kvstore=dist_sync``, :mod:`.training.distributed`)
takes a scheduler, S servers and N workers, each told its role and the scheduler's address through
MXNet's ``DMLC_*`` environment variables. The launcher in the MXNet wheel (``tools/launch.py``)
fails on Python >= 3.9 and MXNet has no SLURM launcher, so this module starts them itself:

* **One machine**: the scheduler, the servers and the workers on 127.0.0.1, the scheduler on a
  free port.
* **A SLURM job step** (``srun brain2pix launch ...``, recognised by ``SLURM_PROCID`` and
  ``SLURM_NTASKS`` > 1): one task per machine; task i runs worker i, tasks 0..S-1 a server each,
  and task 0 the scheduler, on the first node of the step's node list, at a port derived from
  ``SLURM_JOB_ID`` (or ``--port``). Nothing else has to be set up; ``DMLC_INTERFACE`` or
  ``DMLC_NODE_HOST``, when set, choose the network interface.

Every line a process prints is passed on with its name in front (``[worker 1] ...``). No process
outlives the launch: each runs in its own process group and, on Linux, is killed by the kernel if
the launcher itself dies. When every worker has finished the servers and the scheduler leave on
their own; when any process dies (a non-zero exit status or a signal), or the launcher receives
SIGINT or SIGTERM, the workers get SIGTERM (SIGINT is passed on as SIGINT: a training saves a
checkpoint) and ``grace`` seconds, then the servers and the scheduler the same, then whatever is
left gets SIGKILL. Hangs are this engine's failure mode (a worker waits for ever for a peer that
died), so the launch never waits on a process without a time limit.

The process numbers in the prefixes are the launch's; MXNet numbers the workers (``rank``) in its
own order, and the worker of rank 0, the one that writes the run folder, says so in its log.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from .errors import ConfigError

__all__ = ["Process", "plan_processes", "run_processes", "launch", "check_launch", "first_host",
           "free_port", "slurm_task", "exit_status"]

# `import mxnet` in a process whose DMLC_ROLE is scheduler or server runs that role until the
# training ends (MXNet's kvstore_server module); brain2pix_gluon first loads a CUDA build's
# libraries (cuda_libraries.py)
_SERVE = ("-c", "import brain2pix_gluon, mxnet")
# variables of ours that a child must not inherit from whoever started the launch; PORT is read by
# MXNet's ps-lite as the port of the node itself, which would collide with the scheduler's
_OWN = ("DMLC_ROLE", "DMLC_PS_ROOT_URI", "DMLC_PS_ROOT_PORT", "DMLC_NUM_SERVER", "DMLC_NUM_WORKER",
        "PORT")


@dataclass(frozen=True)
class Process:
    """One process of the launch.

    Attributes
    ----------
    label : str
        ``"scheduler"``, ``"server 0"``, ``"worker 1"``: the prefix of its output.
    role : str
        ``DMLC_ROLE``: scheduler, server or worker.
    argv : tuple of str
    env : dict of str -> str
        Variables set on top of the launcher's environment.
    """

    label: str
    role: str
    argv: tuple
    env: dict = field(default_factory=dict)


def free_port(host="127.0.0.1"):
    """A TCP port of ``host`` that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def first_host(nodelist):
    """The first host of a SLURM node list, e.g. ``"gpu[07-09,12],cpu3"`` -> ``"gpu07"``.

    Raises
    ------
    ConfigError
        When the list is empty or its brackets do not close.
    """
    text = (nodelist or "").strip()
    depth, end = 0, len(text)
    for k, char in enumerate(text):          # the first item ends at a comma outside brackets
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            end = k
            break
    item = text[:end]
    if not item or item.count("[") != item.count("]"):
        raise ConfigError(f"SLURM node list: expected e.g. 'node[01-04]' or 'a,b', got "
                          f"{nodelist!r}")
    # each bracket stands for its first entry: "[07-09,12]" -> "07"
    return re.sub(r"\[([^\]\-,]+)[^\]]*\]", r"\1", item)


def slurm_task(environ=None):
    """This process's place in a SLURM job step of several tasks, or None outside one.

    Returns
    -------
    dict or None
        ``procid``, ``ntasks``, ``nodelist`` (the step's, else the job's), ``job_id``, ``node``
        (this task's node name).
    """
    env = os.environ if environ is None else environ
    try:
        procid, ntasks = int(env["SLURM_PROCID"]), int(env["SLURM_NTASKS"])
    except (KeyError, ValueError):
        return None
    if ntasks < 2:
        return None
    nodelist = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST") or \
        env.get("SLURM_NODELIST", "")
    return {"procid": procid, "ntasks": ntasks, "nodelist": nodelist,
            "job_id": int(env.get("SLURM_JOB_ID", "0") or 0),
            "node": env.get("SLURMD_NODENAME") or socket.gethostname()}


def _check_counts(workers, servers):
    for option, value in (("--workers", workers), ("--servers", servers)):
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"{option}: expected an integer >= 1, got {value!r}")


def plan_processes(worker_argv, workers, servers=1, port=None, environ=None):
    """The processes this launch starts: all of them on one machine, this task's under SLURM.

    Parameters
    ----------
    worker_argv : sequence of str
        The command every worker runs (e.g. ``python -m brain2pix_gluon.cli train ...``).
    workers, servers : int
    port : int, optional
        The scheduler's port (default: a free one; under SLURM ``10000 + SLURM_JOB_ID % 20000``).
    environ : mapping, optional
        Where SLURM's variables are read (default ``os.environ``).

    Returns
    -------
    list of Process

    Raises
    ------
    ConfigError
        For counts below 1, and under SLURM for ``--workers`` other than the number of tasks,
        more servers than tasks, or task 0 not on the first node of the node list.
    """
    _check_counts(workers, servers)
    task = slurm_task(environ)
    common = {"DMLC_NUM_WORKER": str(workers), "DMLC_NUM_SERVER": str(servers)}
    if task is None:
        common.update(DMLC_PS_ROOT_URI="127.0.0.1", DMLC_NODE_HOST="127.0.0.1",
                      DMLC_PS_ROOT_PORT=str(port or free_port()))
        ranks = range(workers)
        server_ranks = range(servers)
        scheduler = True
    else:
        if workers != task["ntasks"]:
            raise ConfigError(f"--workers: under SLURM one worker runs in each task, so expected "
                              f"the step's number of tasks ({task['ntasks']}, SLURM_NTASKS), got "
                              f"{workers}")
        if servers > task["ntasks"]:
            raise ConfigError(f"--servers: under SLURM at most one server runs in each task, so "
                              f"expected at most {task['ntasks']} (SLURM_NTASKS), got {servers}")
        host = first_host(task["nodelist"])
        if task["procid"] == 0 and task["node"].split(".")[0] != host.split(".")[0]:
            raise ConfigError(f"SLURM: task 0 runs on {task['node']} but the node list "
                              f"{task['nodelist']!r} starts with {host}, where the other tasks "
                              f"look for the scheduler; keep srun's default block distribution")
        try:
            address = socket.gethostbyname(host)
        except OSError as exc:
            raise ConfigError(f"SLURM: the scheduler's node {host} (first of "
                              f"{task['nodelist']!r}) has no address here: {exc}") from None
        common.update(DMLC_PS_ROOT_URI=address,
                      DMLC_PS_ROOT_PORT=str(port or 10000 + task["job_id"] % 20000))
        ranks = [task["procid"]]
        server_ranks = [task["procid"]] if task["procid"] < servers else []
        scheduler = task["procid"] == 0
    serve = (sys.executable,) + _SERVE
    plan = [Process("scheduler", "scheduler", serve, {**common, "DMLC_ROLE": "scheduler"})] \
        if scheduler else []
    plan += [Process(f"server {k}", "server", serve, {**common, "DMLC_ROLE": "server"})
             for k in server_ranks]
    plan += [Process(f"worker {k}", "worker", tuple(worker_argv),
                     {**common, "DMLC_ROLE": "worker"}) for k in ranks]
    return plan


def check_launch(config, workers):
    """Refuse a training configuration that cannot run on ``workers`` workers, before any process
    starts.

    Raises
    ------
    ConfigError
        Naming ``train.kvstore`` (not ``dist_sync``) or ``train.batch_size`` (not a multiple of
        ``workers``).
    """
    from .training.distributed import check_worker_batch

    if config.train.kvstore != "dist_sync":
        raise ConfigError(f"train.kvstore: a launched training needs 'dist_sync' (one model over "
                          f"all workers; add train.kvstore=dist_sync to the train command), got "
                          f"{config.train.kvstore!r}")
    check_worker_batch(config.train.batch_size, workers)


def exit_status(returncode):
    """A shell's exit status for a process's ``returncode`` (128 + N when killed by signal N)."""
    return 128 - returncode if returncode < 0 else returncode


def _describe(returncode):
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"was killed by {name} (exit status {exit_status(returncode)})"
    return f"exited with status {returncode}"


def _die_with_parent():
    """Linux: have the kernel SIGKILL this child when the launcher dies, however it dies."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class _Output:
    """Writes prefixed lines of several processes to one stream, whole lines at a time."""

    def __init__(self, stream):
        self.stream, self.lock = stream, threading.Lock()

    def say(self, prefix, text):
        with self.lock:
            self.stream.write(f"[{prefix}] {text}\n")
            self.stream.flush()

    def pump(self, prefix, pipe):
        """Pass on the lines of ``pipe`` until it closes (``\\r`` ends a line too: progress bars)."""
        pending = b""
        fd = pipe.fileno()
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            *lines, pending = re.split(rb"[\r\n]", pending + chunk)
            for line in lines:
                if line.strip():
                    self.say(prefix, line.decode("utf-8", "replace"))
        if pending.strip():
            self.say(prefix, pending.decode("utf-8", "replace"))
        pipe.close()


def _signal_groups(running, signum):
    for popen in running:
        try:
            os.killpg(popen.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass


def _stop(started, grace, first_signal=signal.SIGTERM):
    """Stop every process: workers first (``first_signal``, then ``grace`` seconds), then the
    servers and the scheduler (SIGTERM, ``grace`` seconds), then SIGKILL to every process group.

    Returns
    -------
    list of str
        Labels of the processes that had to be killed with SIGKILL.
    """
    killed = []
    for roles, signum in ((("worker",), first_signal), (("server", "scheduler"), signal.SIGTERM)):
        running = [popen for p, popen in started if p.role in roles and popen.poll() is None]
        _signal_groups(running, signum)
        deadline = time.monotonic() + grace
        while any(popen.poll() is None for popen in running) and time.monotonic() < deadline:
            time.sleep(0.05)
    for p, popen in started:
        if popen.poll() is None:
            killed.append(p.label)
    # every group, finished leaders included: a child of theirs may still run
    _signal_groups([popen for _, popen in started], signal.SIGKILL)
    for _, popen in started:
        popen.wait()
    return killed


def run_processes(processes, grace=30.0, stream=None, poll=0.1, environ=None):
    """Start ``processes``, pass on their output, and stop them all as the module says.

    Parameters
    ----------
    processes : sequence of Process
    grace : float
        Seconds each group (workers, then servers and scheduler) gets between the request to stop
        and SIGKILL.
    stream : text file, optional
        Where the prefixed output goes (default ``sys.stdout``).
    poll : float
        Seconds between two looks at the processes.
    environ : mapping, optional
        The environment the processes start from (default ``os.environ``).

    Returns
    -------
    int
        0 when every worker exited with status 0; else the exit status of the first process that
        died (128 + N for signal N), or 128 + N when the launch itself got signal N.
    """
    out = _Output(stream or sys.stdout)
    base = {k: v for k, v in (os.environ if environ is None else environ).items()
            if k not in _OWN}
    base["PYTHONUNBUFFERED"] = "1"      # lines as they are printed, not when a buffer fills
    received = []
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, lambda s, f: received.append(s))
    started, pumps = [], []
    try:
        for p in processes:
            popen = subprocess.Popen(
                list(p.argv), env={**base, **p.env}, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
            started.append((p, popen))
            out.say("launch", f"{p.label}: pid {popen.pid}")
        # the readers start after the last fork: a fork while other threads run may deadlock
        for p, popen in started:
            pump = threading.Thread(target=out.pump, args=(p.label, popen.stdout), daemon=True)
            pump.start()
            pumps.append(pump)
        return _watch(started, grace, poll, received, out)
    finally:
        # after the end of the run, a failure, a signal, or an error of the launch itself
        killed = _stop(started, grace, received[0] if received else signal.SIGTERM)
        if killed:
            out.say("launch", f"killed with SIGKILL after {grace:g} s: {', '.join(killed)}")
        for pump in pumps:
            pump.join(timeout=5)
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _watch(started, grace, poll, received, out):
    """Wait for the end of the run, the first failure or a signal; returns the launch's exit
    status (the caller stops what is left)."""
    workers = [popen for p, popen in started if p.role == "worker"]
    finished_at = None
    while True:
        if received:
            signum = received[0]
            out.say("launch", f"received {signal.Signals(signum).name}: stopping every process")
            return 128 + signum
        for p, popen in started:
            code = popen.poll()
            if code not in (None, 0):
                out.say("launch", f"{p.label} (pid {popen.pid}) {_describe(code)}; stopping the "
                                  f"other processes")
                return exit_status(code)
        if all(popen.poll() == 0 for popen in workers):
            # the servers and the scheduler leave once every worker is done
            finished_at = finished_at or time.monotonic()
            left = [p.label for p, popen in started if popen.poll() is None]
            if not left:
                out.say("launch", "every process finished")
                return 0
            if time.monotonic() - finished_at > grace:
                out.say("launch", f"the workers finished but {', '.join(left)} did not leave "
                                  f"within {grace:g} s; stopping them")
                return 0
        time.sleep(poll)


def launch(worker_argv, workers, servers=1, grace=30.0, port=None, stream=None, environ=None):
    """Plan and run the processes of one launched training (see the module docstring).

    Returns
    -------
    int
        The exit status for the command line (:func:`run_processes`).
    """
    return run_processes(plan_processes(worker_argv, workers, servers, port, environ), grace,
                         stream, environ=environ)
