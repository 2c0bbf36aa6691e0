"""``brain2pix launch`` without MXNet: the plan of processes (one machine, a SLURM task), and the
supervision (prefixed output, the stop when one dies, SIGINT passed on, nothing left behind).

The supervised processes are small Python programs; each test runs the launcher in a child of its
own process group under a time limit (``process_tools``) and looks at the process list after.
"""

import json
import os
import re
import signal
import socket
import sys
import time

import pytest

from brain2pix_gluon.cli import main
from brain2pix_gluon.errors import ConfigError
from brain2pix_gluon.launch import exit_status, first_host, plan_processes

from process_tools import Child, ROOT, child_env, python, wait_until_gone

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="process groups and /proc")

CHILD = os.path.join(ROOT, "tests", "launch_child.py")


@pytest.mark.parametrize("nodelist, first", [
    ("node01", "node01"), ("a,b", "a"), ("x[5]", "x5"), ("gpu[07-09,12],cpu3", "gpu07"),
    ("rack[2-3]-n[010-011]", "rack2-n010"), ("n[1,3],m[2-4]", "n1")])
def test_first_host_of_a_slurm_node_list(nodelist, first):
    assert first_host(nodelist) == first


@pytest.mark.parametrize("nodelist", ["", "n[1-2", ",a"])
def test_a_broken_node_list_is_named(nodelist):
    with pytest.raises(ConfigError, match="SLURM node list"):
        first_host(nodelist)


def test_one_machine_plan_puts_every_role_on_loopback_with_one_port():
    plan = plan_processes(["train"], workers=3, servers=2, environ={})
    assert [(p.label, p.role) for p in plan] == [
        ("scheduler", "scheduler"), ("server 0", "server"), ("server 1", "server"),
        ("worker 0", "worker"), ("worker 1", "worker"), ("worker 2", "worker")]
    assert {p.env["DMLC_PS_ROOT_PORT"] for p in plan} == {plan[0].env["DMLC_PS_ROOT_PORT"]}
    for p in plan:
        assert p.env["DMLC_ROLE"] == p.role
        assert (p.env["DMLC_PS_ROOT_URI"], p.env["DMLC_NODE_HOST"]) == ("127.0.0.1", "127.0.0.1")
        assert (p.env["DMLC_NUM_WORKER"], p.env["DMLC_NUM_SERVER"]) == ("3", "2")
    assert [p.argv for p in plan if p.role == "worker"] == [("train",)] * 3
    with socket.socket() as sock:       # nothing listens there yet: the port is free
        sock.bind(("127.0.0.1", int(plan[0].env["DMLC_PS_ROOT_PORT"])))


def _slurm(procid, ntasks=2, node="localhost", nodelist="localhost,otherhost"):
    return {"SLURM_PROCID": str(procid), "SLURM_NTASKS": str(ntasks), "SLURM_JOB_ID": "123456",
            "SLURM_STEP_NODELIST": nodelist, "SLURMD_NODENAME": node}


def test_a_slurm_task_runs_its_worker_its_server_and_task_0_the_scheduler():
    first = plan_processes(["train"], workers=2, servers=2, environ=_slurm(0))
    second = plan_processes(["train"], workers=2, servers=2, environ=_slurm(1, node="otherhost"))
    assert [p.label for p in first] == ["scheduler", "server 0", "worker 0"]
    assert [p.label for p in second] == ["server 1", "worker 1"]
    for p in first + second:     # scheduler on the first node, port from the job id
        assert (p.env["DMLC_PS_ROOT_URI"], p.env["DMLC_PS_ROOT_PORT"]) == \
            (socket.gethostbyname("localhost"), str(10000 + 123456 % 20000))
        assert "DMLC_NODE_HOST" not in p.env
    one_server = plan_processes(["train"], workers=2, servers=1, environ=_slurm(1))
    assert [p.label for p in one_server] == ["worker 1"]
    # a single task is one machine
    assert plan_processes(["t"], 2, 1, environ=_slurm(0, ntasks=1))[0].env["DMLC_NODE_HOST"]


@pytest.mark.parametrize("workers, servers, environ, message", [
    (3, 1, _slurm(0), "--workers: under SLURM one worker runs in each task.*tasks \\(2"),
    (2, 3, _slurm(0), "--servers: .*at most 2"),
    (2, 1, _slurm(0, node="elsewhere"), "task 0 runs on elsewhere but the node list"),
    (0, 1, {}, "--workers: expected an integer >= 1, got 0")])
def test_plans_that_cannot_work_are_refused_naming_the_option(workers, servers, environ, message):
    with pytest.raises(ConfigError, match=message):
        plan_processes(["train"], workers, servers, environ=environ)


def test_exit_status_of_a_signal_is_the_shells():
    assert (exit_status(0), exit_status(3), exit_status(-9), exit_status(-15)) == (0, 3, 137, 143)


# ------------------------------------------------------------------------------- supervision
def _launch(tmp_path, processes, grace=1.0):
    path = tmp_path / "plan.json"
    path.write_text(json.dumps({"grace": grace, "processes": processes}))
    return Child(python(CHILD, path), child_env())


def _program(text):
    return list(python("-c", text))


# a server that stays (SIGTERM ignored) and starts a grandchild that would stay too
STUBBORN = _program("import signal, subprocess, sys, time; signal.signal(signal.SIGTERM, "
                    "signal.SIG_IGN); subprocess.Popen([sys.executable, '-c', 'import time; "
                    "time.sleep(120)']); print('serving', flush=True); time.sleep(120)")


def test_when_one_process_dies_the_others_are_stopped_and_nothing_is_left(tmp_path):
    processes = [
        ["server 0", "server", STUBBORN],
        ["worker 0", "worker", _program("import sys, time; sys.stdout.write('step 1\\rstep 2\\n');"
                                        " sys.stdout.flush(); time.sleep(120)")],
        # the one that fails leaves a child of its own behind
        ["worker 1", "worker", _program("import subprocess, sys, time; subprocess.Popen(["
                                        "sys.executable, '-c', 'import time; time.sleep(120)']);"
                                        " time.sleep(1.5); sys.exit(3)")]]
    with _launch(tmp_path, processes) as launch:
        launch.wait_for_line("[server 0] serving", 60)
        start = time.monotonic()
        code = launch.wait(timeout=60)
        took = time.monotonic() - start
        left = wait_until_gone(launch.env["B2P_TEST_MARK"])
    assert code == 3, launch.output
    # 1.5 s until the failure, then up to 1 s for the workers and 1 s for the server
    assert took < 15, took
    assert left == [], f"processes left behind: {left}"
    died = launch.wait_for_line("worker 1 (pid", 1)
    assert died.startswith("[launch] worker 1 (pid ") and \
        died.endswith("exited with status 3; stopping the other processes"), died
    assert "[launch] killed with SIGKILL after 1 s: server 0" in launch.lines
    # each line of each process, with its name in front; a carriage return ends a line too
    assert ["[worker 0] step 1", "[worker 0] step 2"] == \
        [line for line in launch.lines if line.startswith("[worker 0]")]


def test_a_worker_killed_by_a_signal_is_reported_with_the_signal(tmp_path):
    processes = [["server 0", "server", _program("import time; time.sleep(120)")],
                 ["worker 0", "worker", _program("import os, time; time.sleep(1); "
                                                 "os.kill(os.getpid(), 9)")]]
    with _launch(tmp_path, processes) as launch:
        code = launch.wait(timeout=60)
    assert code == 137
    assert any(line.startswith("[launch] worker 0 (pid ") and
               line.endswith("was killed by SIGKILL (exit status 137); stopping the other "
                             "processes") for line in launch.lines), launch.output


def test_sigint_reaches_the_workers_as_sigint(tmp_path):
    worker = _program("import signal, sys, time\n"
                      "def stop(signum, frame):\n"
                      "    print('stopping on', signal.Signals(signum).name, flush=True)\n"
                      "    sys.exit(130)\n"
                      "signal.signal(signal.SIGINT, stop)\n"
                      "print('training', flush=True)\n"
                      "time.sleep(120)")
    processes = [["scheduler", "scheduler", _program("import time; time.sleep(120)")],
                 ["worker 0", "worker", worker]]
    with _launch(tmp_path, processes, grace=5) as launch:
        launch.wait_for_line("[worker 0] training", 60)
        launch.proc.send_signal(signal.SIGINT)
        code = launch.wait(timeout=60)
        left = wait_until_gone(launch.env["B2P_TEST_MARK"])
    assert code == 130
    assert "[launch] received SIGINT: stopping every process" in launch.lines
    assert "[worker 0] stopping on SIGINT" in launch.lines
    assert left == []


def test_servers_that_stay_after_the_workers_finished_are_stopped(tmp_path):
    processes = [["server 0", "server", STUBBORN],
                 ["worker 0", "worker", _program("print('done')")]]
    with _launch(tmp_path, processes) as launch:
        code = launch.wait(timeout=60)
        left = wait_until_gone(launch.env["B2P_TEST_MARK"])
    assert code == 0, launch.output
    assert "[launch] the workers finished but server 0 did not leave within 1 s; stopping them" \
        in launch.lines
    assert left == []


def test_the_children_die_with_a_killed_launcher(tmp_path):
    processes = [["server 0", "server", _program("print('up', flush=True); "
                                                 "import time; time.sleep(120)")],
                 ["worker 0", "worker", _program("import time; time.sleep(120)")]]
    with _launch(tmp_path, processes) as launch:
        launch.wait_for_line("[server 0] up", 60)
        os.kill(launch.proc.pid, signal.SIGKILL)      # the launcher alone, not its group
        launch.proc.wait(timeout=30)
        left = wait_until_gone(launch.env["B2P_TEST_MARK"])
    assert left == []


# ------------------------------------------------------------------------ the command line
@pytest.mark.parametrize("settings, message", [
    (["train.kvstore=dist_sync", "train.batch_size=8"],
     "train.batch_size: expected a multiple of the number of workers \\(3\\).*got 8"),
    (["train.batch_size=9"], "train.kvstore: a launched training needs 'dist_sync'.*'device'")])
def test_launch_refuses_a_training_before_starting_anything(settings, message, tmp_path, capsys):
    code = main(["launch", "--workers", "3", "--", "train", "--out", str(tmp_path / "run")]
                + settings)
    out, err = capsys.readouterr()
    assert code == 2
    assert "[launch]" not in out            # no process was started
    assert re.search(message, err), err
    assert not (tmp_path / "run").exists()


def test_launch_needs_a_training_after_its_options(capsys):
    assert main(["launch", "--workers", "2", "--", "evaluate", "x.h5"]) == 2
    assert "launch: expected the training to run after the options" in capsys.readouterr().err
