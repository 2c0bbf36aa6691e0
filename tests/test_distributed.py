"""One model over several workers (``train.kvstore=dist_sync``) through MXNet's parameter server.

The sharding and the step's scale are checked in this process; the rest runs real scheduler,
server and worker processes on 127.0.0.1 through ``brain2pix launch``, each test in a child
process group under a time limit that kills the group (``process_tools``):

* two workers, each with half of every batch, against one process with the whole batch, from one
  initialisation (worker 1 starts from other random weights: only the initial pull of rank 0's
  makes them agree);
* a worker killed mid-run: the launch exits non-zero within a bounded time, no process is left,
  and the run resumes from rank 0's last checkpoint;
* SIGTERM to one worker: every worker stops after the same iteration and rank 0 saves a
  checkpoint; the same launch, run as the two tasks of a SLURM step, resumes it.
"""

import json
import os
import re
import signal
import sys
import time

import mxnet as mx
import numpy as np
import pytest
from mxnet import gluon

from brain2pix_gluon.data.dataset import EpochSampler
from brain2pix_gluon.errors import ConfigError
from brain2pix_gluon.launch import free_port
from brain2pix_gluon.training.checkpoint import find_checkpoint, load_checkpoint_state
from brain2pix_gluon.training.distributed import (ShardSampler, SummingTrainer,
                                                   check_worker_batch, join_workers)

from conftest import TINY, layered, tiny_config
from process_tools import Child, ROOT, child_env, python, run, wait_until_gone

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="process groups and /proc")

CHILD = os.path.join(ROOT, "tests", "dist_child.py")
# the tiny FixedRF, a few steps
STEPS = [o for o in TINY if o != "train.epochs=1"] + ["train.max_steps_per_epoch=3",
                                                      "train.grid_samples=2"]


# ------------------------------------------------------------------------------ in process
def test_each_worker_takes_its_share_of_the_batches_one_process_would_take():
    order = list(EpochSampler(23, seed=5, epoch=2, skip=8))     # what one process reads
    shards = [list(ShardSampler(EpochSampler(23, seed=5, epoch=2, skip=8), 6, rank, 3))
              for rank in range(3)]
    # by hand: batches of 6 of the remaining 15 indices, the last 3 dropped; 2 each per batch
    expected = [[order[b * 6 + 2 * r + k] for b in range(2) for k in range(2)] for r in range(3)]
    assert shards == expected
    assert [len(ShardSampler(order, 6, r, 3)) for r in range(3)] == [4, 4, 4]
    assert sorted(sum(shards, [])) == sorted(order[:12])


class _TwoIdenticalWorkers:
    """What the servers return when two workers computed the same gradients: their sum."""

    num_workers = 2

    def sum_gradients(self, params):
        for param in params:
            if param.grad_req != "null":
                for grad in param.list_grad():
                    grad[:] = grad * 2


def test_a_step_over_workers_divides_the_sum_by_every_batch_mean_in_it():
    dense = gluon.nn.Dense(1, in_units=2, use_bias=False)
    dense.initialize(mx.init.Constant(1.0))
    trainer = SummingTrainer(dense.collect_params(), "sgd", {"learning_rate": 0.5},
                             _TwoIdenticalWorkers())
    x = mx.nd.array([[1.0, 3.0]])
    with mx.autograd.record():
        loss = dense(x).sum()       # gradient of one worker's batch mean: x = (1, 3)
    loss.backward()
    trainer.step(1)                 # one device per worker
    # SGD on the mean over both workers' (identical) gradients: 1 - 0.5 * (1, 3)
    np.testing.assert_allclose(dense.weight.data().asnumpy(), [[0.5, -0.5]])


def test_a_batch_the_workers_cannot_share_evenly_is_refused_naming_the_setting():
    with pytest.raises(ConfigError, match=r"train.batch_size: expected a multiple of the number "
                                          r"of workers \(4\).*got 6; e.g. train.batch_size=4"):
        check_worker_batch(6, 4)
    check_worker_batch(8, 4)


def test_dist_sync_outside_a_launch_is_refused_with_what_to_do():
    with pytest.raises(ConfigError, match="train.kvstore: 'dist_sync' trains one model across "
                                          "processes started by `brain2pix launch"):
        join_workers(tiny_config("train.kvstore=dist_sync"), environ={})


def test_a_run_may_change_between_one_machine_and_several_when_it_resumes():
    from brain2pix_gluon.config import config_to_dict
    from brain2pix_gluon.training.trainer import config_differences

    launched, alone = tiny_config("train.kvstore=dist_sync"), tiny_config("train.kvstore=local")
    assert config_differences(config_to_dict(alone), config_to_dict(launched)) == []
    assert config_differences(config_to_dict(tiny_config("train.kvstore=local", "train.lr=1e-3")),
                              config_to_dict(launched)) == \
        ["train.lr: checkpoint 0.0002 vs now 0.001"]


# ------------------------------------------------------------------------ launched workers
def _launched(argv, workers=2, servers=1, grace=5, port=None):
    """``python -c`` running the library's launch of ``argv`` (any worker command)."""
    return python("-c", "import sys; from brain2pix_gluon.launch import launch; sys.exit(launch("
                        f"sys.argv[1:], {workers}, {servers}, grace={grace}, port={port}))",
                  *argv)


def _weights(path, trainable=True):
    with np.load(path) as data:
        return {k: data[k] for k in data.files
                if not (trainable and k.endswith(("running_mean", "running_var")))}


@linux_only
def test_two_workers_train_the_model_of_one_process_with_the_whole_batch(prepared_dir, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    code, out = run(python(CHILD, prepared_dir, one, "running", *STEPS), 120, child_env())
    assert code == 0, out
    code, out = run(_launched(python(CHILD, prepared_dir, two, "running", *STEPS)), 120,
                    child_env())
    assert code == 0, out
    single, ranks = _weights(one / "single.npz", False), \
        [_weights(two / f"rank{r}.npz", False) for r in (0, 1)]
    assert set(single) == set(ranks[0]) == set(ranks[1])
    moved = 0
    for name, expected in single.items():
        np.testing.assert_array_equal(ranks[1][name], ranks[0][name], err_msg=name)
        np.testing.assert_allclose(ranks[0][name], expected, rtol=1e-4, atol=1e-6, err_msg=name)
        moved += not name.endswith(("running_mean", "running_var"))
    assert moved > 40
    # only rank 0 wrote the run folder: one epoch record, one checkpoint
    log = (two / "run" / "log.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in log] == [1]
    assert sorted(os.listdir(two / "run" / "checkpoints")) == ["LATEST", "ckpt-000001"]


@linux_only
def test_with_batch_statistics_both_workers_still_hold_one_model(prepared_dir, tmp_path):
    # MXNet's parameter server binds each of its nodes to $PORT when set: a PORT that the launch
    # passed on would put the server on the scheduler's port here
    port = free_port()
    code, out = run(_launched(python(CHILD, prepared_dir, tmp_path, "batch", *STEPS), port=port),
                    120, child_env(PORT=port))
    assert code == 0, out
    ranks = [_weights(tmp_path / f"rank{r}.npz") for r in (0, 1)]
    for name, weights in ranks[0].items():
        np.testing.assert_array_equal(ranks[1][name], weights, err_msg=name)
    # each worker normalised its own half: their running statistics differ
    stats = [_weights(tmp_path / f"rank{r}.npz", False) for r in (0, 1)]
    assert any(not np.array_equal(stats[0][k], stats[1][k]) for k in stats[0]
               if k.endswith("running_mean"))


@linux_only
def test_a_worker_that_disagrees_with_rank_0_stops_the_launch(prepared_dir, tmp_path):
    start = time.monotonic()
    code, out = run(_launched(python(CHILD, prepared_dir, tmp_path, "running", *STEPS)), 120,
                    child_env(B2P_DISAGREE=tmp_path / "first"))
    # it leaves at once (without MXNet's exit barrier, where it would wait for ever), and the
    # launch stops the other
    assert code == 1, out
    assert time.monotonic() - start < 60
    # (MXNet, not the order of arrival, decides which worker is rank 0)
    from brain2pix_gluon.data.dataset import RFSImageDataset

    train = os.path.join(prepared_dir, "train.h5")
    whole, part = len(RFSImageDataset(train)), len(RFSImageDataset(train, fraction=0.9))
    assert part < whole
    assert re.search(rf"does not agree with rank 0: training samples: rank 0 has ({whole}, this "
                     rf"worker {part}|{part}, this worker {whole}); configuration \(hash\): rank "
                     rf"0 has", out), out
    assert "exited with status 1; stopping the other processes" in out


def _train_command(prepared_dir, run_dir, *settings, resume=False, grace=3):
    """``brain2pix launch`` of two workers and one server training the tiny FixedRF."""
    return python("-m", "brain2pix_gluon.cli", "launch", "--workers", "2", "--servers", "1",
                  "--grace", grace, "--", "train", "--data", prepared_dir, "--out", run_dir,
                  "--no-progress", *(["--resume"] if resume else []),
                  *layered(STEPS, ["train.kvstore=dist_sync", "train.grid_samples=0",
                                   "train.save_weights_every=0", "train.max_steps_per_epoch=2"],
                           settings))


def _checkpoint_position(run_dir):
    directory, _ = find_checkpoint(run_dir)
    _, state, _ = load_checkpoint_state(directory)
    return state["epoch"], state["step"], state["global_step"]


@linux_only
def test_a_killed_worker_stops_the_launch_and_the_run_resumes(prepared_dir, tmp_path):
    run_dir = tmp_path / "run"
    with Child(_train_command(prepared_dir, run_dir, "train.epochs=1000"), child_env()) as launch:
        victim = int(launch.wait_for_line("[launch] worker 1: pid ", 60).rsplit(" ", 1)[1])
        deadline = time.monotonic() + 120
        while not (run_dir / "checkpoints" / "LATEST").exists():
            assert launch.proc.poll() is None, launch.output
            assert time.monotonic() < deadline, launch.output
            time.sleep(0.1)
        os.kill(victim, signal.SIGKILL)
        start = time.monotonic()
        code = launch.wait(timeout=60)
        took = time.monotonic() - start
        left = wait_until_gone(launch.env["B2P_TEST_MARK"])
    assert code == 137, launch.output
    # the poll, 3 s for the workers (blocked for ever on the dead one's gradients), 3 s for
    # the server and the scheduler, then SIGKILL
    assert took < 20, took
    assert left == [], f"processes left behind: {left}"
    assert f"[launch] worker 1 (pid {victim}) was killed by SIGKILL (exit status 137); " \
           f"stopping the other processes" in launch.lines
    epoch, step, global_step = _checkpoint_position(run_dir)
    assert epoch >= 1 and step == 0 and global_step == 2 * epoch
    code, out = run(_train_command(prepared_dir, run_dir, f"train.epochs={epoch + 1}",
                                   resume=True), 120, child_env())
    assert code == 0, out
    assert f"at epoch {epoch}, step 0" in out
    assert _checkpoint_position(run_dir) == (epoch + 1, 0, 2 * epoch + 2)
    records = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == list(range(1, epoch + 2))


@linux_only
def test_sigterm_to_one_worker_stops_all_after_one_iteration_and_slurm_tasks_resume(
        prepared_dir, tmp_path):
    run_dir, steps = tmp_path / "run", 15
    # the grace leaves rank 0 time to catch up with the stopped worker (it may be evaluating)
    with Child(_train_command(prepared_dir, run_dir, "train.epochs=1000",
                              f"train.max_steps_per_epoch={steps}", grace=60),
               child_env()) as launch:
        writer = launch.wait_for_line("[brain2pix] worker rank 0 of 2 (writes the run folder)",
                                      120).split("]")[0].lstrip("[")
        other = "worker 1" if writer == "worker 0" else "worker 0"
        pid = int(launch.wait_for_line(f"[launch] {other}: pid ", 1).rsplit(" ", 1)[1])
        time.sleep(3)       # some iterations
        os.kill(pid, signal.SIGTERM)     # as a SLURM time limit would, but to one worker only
        code = launch.wait(timeout=120)
    # it stops after the next iteration, and so does rank 0, which saves a checkpoint there;
    # the first to exit gives the launch its status: 143 (SIGTERM) or 130 (stopped by the vote)
    assert code in (130, 143), launch.output
    assert "killed with SIGKILL" not in launch.output, launch.output   # nobody waited for ever
    assert launch.output.count("interrupted at epoch") == 2, launch.output
    epoch, step, global_step = _checkpoint_position(run_dir)
    assert global_step == epoch * steps + step and global_step > 0
    # the run resumed as a SLURM step of two tasks on this machine (both "nodes" localhost):
    # each task starts its share of the processes
    command = _train_command(prepared_dir, run_dir, f"train.epochs={epoch + 1}",
                             f"train.max_steps_per_epoch={steps}", resume=True)
    command[command.index("--grace"):command.index("--grace")] = ["--port", str(free_port())]
    tasks = [Child(command, child_env(SLURM_PROCID=k, SLURM_NTASKS=2, SLURM_JOB_ID=7,
                                      SLURM_STEP_NODELIST="localhost,localhost",
                                      SLURMD_NODENAME="localhost")) for k in (0, 1)]
    with tasks[0], tasks[1]:
        codes = [task.wait(timeout=120) for task in tasks]
    assert codes == [0, 0], tasks[0].output + "\n" + tasks[1].output
    started = [[line.split(":")[0] for line in task.lines if ": pid " in line] for task in tasks]
    assert started == [["[launch] scheduler", "[launch] server 0", "[launch] worker 0"],
                       ["[launch] worker 1"]]
    assert _checkpoint_position(run_dir) == (epoch + 1, 0, (epoch + 1) * steps)
