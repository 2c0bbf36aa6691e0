"""One model trained by several worker processes through MXNet's parameter server
(``train.kvstore=dist_sync``, started by ``brain2pix launch``: :mod:`brain2pix_gluon.launch`).

How a step runs on N workers:

* **One store, named keys.** Every worker opens one ``dist_sync`` key-value store, and both
  optimisers (the generator's, with the LearnedRF layers, and the discriminator's) reduce their
  gradients through it under the parameters' own names (``net_g_...``, ``net_d_...``,
  ``learned_rf_...``). Two Gluon trainers handed a distributed store would each use the positional
  keys 0..n, which collide on the servers (MXNet then stops with "The value size cannot be
  changed"); two stores, one per trainer, hang at the first generator step.
* **One initialisation.** Before the first step rank 0's parameters (the resumed ones after
  ``--resume``) become the keys' initial values and every worker pulls them, BatchNorm running
  statistics included.
* **Summed gradients, local optimiser.** After each backward pass every gradient is push-pulled:
  the servers add the workers' gradients and each worker receives the sum. Adam runs inside each
  worker (``update_on_kvstore=False``) on that same sum, so the replicas stay identical, and its
  moments are saved and restored by ``save_states``/``load_states`` exactly as in one process.
* **The batch.** ``train.batch_size`` is the batch of one step over all workers, as it is over
  the GPUs of ``--gpus``: with N workers each takes ``batch_size / N`` samples of every batch, and
  the k-th batch of an epoch holds the same samples as in one process (:class:`ShardSampler`).
  The step divides the summed gradient by N times the number of per-device batch means, so the
  update is one process's on the whole batch wherever no batch statistic couples the samples
  (tested). A batch size that N does not divide is refused (:func:`check_worker_batch`): unequal
  shares stall the synchronous store.

Where N workers differ from one process with the whole batch:

* BatchNorm in training mode normalises each worker's share by its own statistics (as each GPU's
  share under ``--gpus``), and each worker keeps its own running statistics; rank 0's are the ones
  checkpoints, grids and evaluations use.
* The discriminator's history buffer is per worker: each holds up to ``train.history_capacity``
  of its own share's fakes (N times the pool of one process in all), with the same seed on every
  worker; a checkpoint holds rank 0's, and after ``--resume`` every worker starts from that copy.
* The training losses in ``log.jsonl`` are means over rank 0's share of each batch.
* Only rank 0 writes (config, checkpoints, log, grids, weights, evaluations). ``--out`` and
  ``--data`` must be folders every worker sees (a shared file system): on ``--resume`` each worker
  reads rank 0's checkpoint from ``--out``, and before the first step the workers check that they
  agree with rank 0 on the training data, the position in the run and the configuration.
"""

import ctypes
import hashlib
import json
import os

import mxnet as mx
import numpy as np
from mxnet import gluon

from ..config import config_to_dict
from ..errors import ConfigError, TrainingError
from ..utils import get_logger

__all__ = ["NoFolderLock", "WorkerGroup", "ShardSampler", "SummingTrainer", "check_worker_batch",
           "join_workers", "in_launched_worker", "run_facts"]

# keys besides the parameters': rank 0's view of the run at the start (data size, position,
# configuration), and the number of workers asked to stop (SIGINT, SIGTERM) at each iteration
_FACTS_KEY = "run_facts"
_STOP_KEY = "stop_requests"


def check_worker_batch(batch_size, num_workers):
    """Refuse a ``train.batch_size`` that ``num_workers`` do not share evenly.

    Raises
    ------
    ConfigError
        Naming ``train.batch_size``, the number of workers and the value received.
    """
    if num_workers < 1:
        raise ConfigError(f"number of workers: expected at least 1, got {num_workers}")
    if batch_size % num_workers:
        raise ConfigError(
            f"train.batch_size: expected a multiple of the number of workers ({num_workers}) so "
            f"that every worker takes the same share of each batch (unequal shares stall MXNet's "
            f"synchronous parameter server), got {batch_size}; e.g. train.batch_size="
            f"{max(num_workers, batch_size - batch_size % num_workers)}")


def in_launched_worker(environ=None):
    """True when this process was started as a worker by ``brain2pix launch`` (or anything that
    sets MXNet's ``DMLC_*`` variables the same way)."""
    env = os.environ if environ is None else environ
    return env.get("DMLC_ROLE") == "worker" and bool(env.get("DMLC_PS_ROOT_URI"))


class ShardSampler(gluon.data.Sampler):
    """One worker's share of each batch of another sampler.

    The indices of ``sampler`` are cut into batches of ``batch_size``; worker ``rank`` takes
    positions ``rank * s .. (rank + 1) * s - 1`` of each, with ``s = batch_size / num_workers``.
    An incomplete last batch is dropped on every worker, so all take the same number of batches.

    Parameters
    ----------
    sampler : Sampler
        The order of one process (e.g. :class:`~brain2pix_gluon.data.dataset.EpochSampler`).
    batch_size : int
        The batch of one step over all workers; a multiple of ``num_workers``.
    rank, num_workers : int
    """

    def __init__(self, sampler, batch_size, rank, num_workers):
        check_worker_batch(batch_size, num_workers)
        self.sampler, self.batch_size = sampler, batch_size
        self.rank, self.num_workers = rank, num_workers
        self.share = batch_size // num_workers

    def __iter__(self):
        batch = []
        for index in self.sampler:
            batch.append(index)
            if len(batch) == self.batch_size:
                yield from batch[self.rank * self.share:(self.rank + 1) * self.share]
                batch = []

    def __len__(self):
        return len(self.sampler) // self.batch_size * self.share


class SummingTrainer(gluon.Trainer):
    """A Gluon trainer whose gradients are summed over the workers of a :class:`WorkerGroup`.

    The optimiser runs here (no kvstore of its own, ``update_on_kvstore`` off), so its states are
    saved and loaded as in one process. ``step(n)`` takes what a one-process step takes, the
    number of per-device batch means in the gradients, and divides by ``n * num_workers``.

    Parameters
    ----------
    params : ParameterDict
    optimizer : str
    optimizer_params : dict
    group : WorkerGroup
    """

    def __init__(self, params, optimizer, optimizer_params, group):
        super().__init__(params, optimizer, optimizer_params, kvstore=None,
                         update_on_kvstore=False)
        self._group = group

    def _allreduce_grads(self):
        # Gluon calls this from step() and allreduce_grads(); AMP's overflow test runs after it,
        # on the sum, so every worker skips the same steps
        self._group.sum_gradients(self._params)

    def step(self, batch_size, ignore_stale_grad=False):
        super().step(batch_size * self._group.num_workers, ignore_stale_grad)

    def update(self, batch_size, ignore_stale_grad=False):
        super().update(batch_size * self._group.num_workers, ignore_stale_grad)


class NoFolderLock:
    """The run folder's lock (:class:`~brain2pix_gluon.locking.FolderLock`) on a worker that
    never writes there: rank 0 holds the real one."""

    held = False

    def acquire(self):
        return self

    def release(self):
        pass


def _set_exit_barrier(store, enabled):
    """Whether this worker, when its store is freed, waits for every other node first.

    MXNet waits by default, which keeps a failed worker alive for ever (the others never reach
    the barrier), so a worker leaves without it unless it completed the run (:meth:`finished`).
    """
    from mxnet.base import _LIB, check_call

    check_call(_LIB.MXKVStoreSetBarrierBeforeExit(store.handle, ctypes.c_int(int(enabled))))


def _split(value):
    """An integer < 2**40 as two float32-exact parts (the store holds float32)."""
    value = int(value)
    return [value >> 20, value & 0xFFFFF]


class WorkerGroup:
    """This worker's place among the workers of one training, and the store they share.

    Parameters
    ----------
    store : mx.kv.KVStore
        A ``dist_sync`` store (``store.rank``, ``store.num_workers``).
    """

    def __init__(self, store):
        self.store = store
        self.rank, self.num_workers = store.rank, store.num_workers
        self._started = False
        self._stop_votes = None
        _set_exit_barrier(store, False)

    @property
    def writes(self):
        """Only rank 0 writes into the run folder."""
        return self.rank == 0

    def trainer(self, params, optimizer, optimizer_params):
        """A :class:`SummingTrainer` over ``params`` (keys: the parameters' names)."""
        return SummingTrainer(params, optimizer, optimizer_params, self)

    def shard(self, sampler, batch_size):
        """This worker's sampler and per-worker batch for one-process ``sampler``/``batch_size``.

        Returns
        -------
        ShardSampler, int
        """
        shard = ShardSampler(sampler, batch_size, self.rank, self.num_workers)
        return shard, shard.share

    def sum_gradients(self, params):
        """Replace each trainable parameter's gradients (every device's) by their sum over the
        devices and the workers.

        Parameters
        ----------
        params : sequence of gluon.Parameter
        """
        for k, param in enumerate(params):
            if param.grad_req != "null":
                grads = param.list_grad()
                self.store.pushpull(param.name, grads, out=grads, priority=-k)

    def start(self, nets, facts):
        """Before the first step: every worker takes rank 0's parameters and checks that it
        agrees with rank 0 on ``facts``. Later calls do nothing.

        Parameters
        ----------
        nets : dict of str -> gluon.Block or None
        facts : dict of str -> int
            What must be equal on every worker (:func:`run_facts`), each below 2**40.

        Raises
        ------
        TrainingError
            On a worker that disagrees with rank 0, naming each difference.
        """
        if self._started:
            return
        names = list(facts)
        mine = mx.nd.array(np.concatenate([_split(facts[n]) for n in names]), dtype="float32")
        keys, values, outs = [_FACTS_KEY, _STOP_KEY], [mine, mx.nd.zeros(1)], \
            [mx.nd.zeros(mine.shape), mx.nd.zeros(1)]
        for net in nets.values():
            if net is None:
                continue
            for name, param in net.collect_params().items():
                keys.append(name)
                values.append(param.data(param.list_ctx()[0]))
                outs.append(param.list_data())
        # MXNet stores rank 0's values only, then waits for every worker (one barrier)
        self.store.init(keys, values)
        self.store.pull(keys, out=outs)
        theirs = outs[0].asnumpy().astype(np.int64)
        differ = [f"{n}: rank 0 has {int(theirs[2 * k]) << 20 | int(theirs[2 * k + 1])}, this "
                  f"worker {facts[n]}" for k, n in enumerate(names)
                  if _split(facts[n]) != [int(theirs[2 * k]), int(theirs[2 * k + 1])]]
        if differ:
            raise TrainingError(
                f"worker rank {self.rank} of {self.num_workers} does not agree with rank 0: "
                f"{'; '.join(differ)}. Every worker must read the same --data and, on --resume, "
                f"the same checkpoint in --out (a folder all machines see) with the same settings")
        self._started = True

    def agree_to_stop(self, requested):
        """Whether every worker stops after this iteration, given whether this one was asked to.

        Each iteration every worker sends its wish and reads the sum sent one iteration
        earlier (reading it then waits for the slowest worker's previous iteration only, never
        for a device), so all stop after the same iteration, one after the first request: a
        worker that stopped alone would leave the others waiting for ever for its gradients.

        Parameters
        ----------
        requested : bool

        Returns
        -------
        bool
        """
        if self._stop_votes is None:
            self._stop_votes, previous = mx.nd.zeros(1), 0.0
        else:
            previous = self._stop_votes.asscalar()
        # one array for every exchange, so that this worker's exchanges follow one another: two
        # of its pushes in flight at once would be summed by the server as if from two workers
        self._stop_votes[:] = 1.0 if requested else 0.0
        self.store.pushpull(_STOP_KEY, self._stop_votes, out=self._stop_votes)
        return previous > 0

    def finished(self):
        """Every worker completed its steps: wait until this one's last exchanges are done (MXNet
        drops the operations still queued when the interpreter exits, and the others would wait
        for them), then leave through MXNet's exit barrier, after which rank 0 stops the
        servers."""
        mx.nd.waitall()
        _set_exit_barrier(self.store, True)


def join_workers(config, environ=None):
    """Join the other workers of a launched training (blocks until all have connected).

    Parameters
    ----------
    config : Config
        ``train.batch_size`` must be a multiple of the number of workers.
    environ : mapping, optional
        Default ``os.environ``; ``brain2pix launch`` sets ``DMLC_ROLE=worker``,
        ``DMLC_PS_ROOT_URI``, ``DMLC_NUM_WORKER`` ...

    Returns
    -------
    WorkerGroup

    Raises
    ------
    ConfigError
        When this process was not started as a worker, or the batch does not divide.
    """
    env = os.environ if environ is None else environ
    if not in_launched_worker(env):
        raise ConfigError(
            "train.kvstore: 'dist_sync' trains one model across processes started by `brain2pix "
            "launch --workers N --servers S -- train ...`; this process was not (its environment "
            f"has DMLC_ROLE={env.get('DMLC_ROLE')!r}, DMLC_PS_ROOT_URI="
            f"{env.get('DMLC_PS_ROOT_URI')!r}). Use train.kvstore=device for one machine")
    # checked before connecting, so a refused worker does not keep the others waiting
    check_worker_batch(config.train.batch_size, int(env.get("DMLC_NUM_WORKER", "1")))
    group = WorkerGroup(mx.kv.create("dist_sync"))
    get_logger().info("worker rank %d of %d%s", group.rank, group.num_workers,
                      " (writes the run folder)" if group.writes else "")
    return group


def run_facts(config, n_samples, steps_per_epoch, epoch, step, global_step):
    """What every worker must agree on at the start, for :meth:`WorkerGroup.start`: the data's
    size, the position in the run and (40 bits of a hash of) the configuration."""
    digest = hashlib.sha256(json.dumps(config_to_dict(config), sort_keys=True).encode())
    return {"training samples": n_samples, "steps per epoch": steps_per_epoch, "epoch": epoch,
            "step": step, "global step": global_step,
            "configuration (hash)": int(digest.hexdigest()[:10], 16)}
