"""``Trainer.fit``: epochs of D and G steps with logs, grids, checkpoints and resume.

What a run directory holds stays consistent at every instant: ``config.yaml`` (the run's
configuration; a folder holding another run's is refused), ``checkpoints/`` (crash-safe, see
:mod:`.checkpoint`), and ``log.jsonl``, one record per epoch, appended only after the epoch's
checkpoint is written and cut back to the checkpoint's epoch on resume (the checkpoint carries its
epoch's record, so a record lost in a crash is written again). A non-finite loss stops training
with :class:`TrainingError` before anything is saved, so the last checkpoint stays the last good one.
"""

import json
import math
import os
import signal
import time

import mxnet as mx
import numpy as np
from mxnet import gluon

from .. import __version__
from ..config import config_to_dict
from ..data.controls import apply_input_control
from ..data.dataset import EpochSampler, RFSImageDataset
from ..errors import CheckpointError, ConfigError, TrainingError
from ..locking import FolderLock
from ..model_zoo.vgg_features import vgg_features
from ..plotting import save_grid
from ..provenance import is_random, run_marks
from ..utils import get_logger, progress, replacing, write_json_atomic, write_text_atomic
from .amp import loss_scaling
from .builder import build_networks, dataset_mode, learned_rf_mask, uses_rf_images
from .checkpoint import (epoch_weights_path, find_checkpoint, load_checkpoint_state,
                         restore_checkpoint, save_checkpoint, state_for)
from .distributed import NoFolderLock, join_workers, run_facts
from .history import HistoryBuffer
from .inference import generate
from .losses import feature_distance, l1_loss
from .steps import update_discriminator, update_generator
from .tensorboard import tensorboard_log

__all__ = ["Trainer", "epoch_learning_rate"]

# Iterations between two reads of the loss values (each read waits for the device).
_READ_EVERY = 10
# Keys that may differ between a checkpoint and the config of the run resuming it.
# (train.kvstore: the batch means the same over GPUs, processes or machines; train.tensorboard:
# event files beside the run)
_RESUMABLE_CHANGES = {("train", "epochs"), ("train", "num_workers"), ("train", "max_steps_per_epoch"),
                      ("train", "kvstore"), ("train", "tensorboard")}


def config_differences(mine, theirs):
    """Differences between two config dicts that forbid continuing one run with the other.

    Returns
    -------
    list of str
        ``"section.key: theirs X vs now Y"`` items (``name`` included); empty when compatible.
    """
    diffs = [f"{s}.{k}: checkpoint {theirs.get(s, {}).get(k)!r} vs now {mine[s][k]!r}"
             for s in mine if isinstance(mine[s], dict) for k in mine[s]
             if mine[s][k] != (theirs.get(s) or {}).get(k) and (s, k) not in _RESUMABLE_CHANGES]
    if mine.get("name") != theirs.get("name"):
        diffs.insert(0, f"name: checkpoint {theirs.get('name')!r} vs now {mine.get('name')!r}")
    return diffs


class _StopRequest:
    """Turns SIGINT/SIGTERM into a flag checked between iterations."""

    def __init__(self):
        self.requested = False
        self.signum = None
        self._old = {}

    def __enter__(self):
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        self.requested = True
        self.signum = signum

    def __exit__(self, *exc):
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
        return False


def epoch_learning_rate(train, epoch):
    """Learning rate of a 0-based ``epoch``: ``train.lr``, except in the last
    ``train.lr_decay_epochs`` epochs, where it falls linearly (pix2pix's schedule): the k-th of
    N decaying epochs (k = 1..N) uses ``lr * (N + 1 - k) / (N + 1)``.

    Parameters
    ----------
    train : TrainConfig
    epoch : int
    """
    n = min(train.lr_decay_epochs, train.epochs)
    k = epoch - (train.epochs - n) + 1          # 1..n inside the decay, <= 0 before it
    if n == 0 or k <= 0:
        return train.lr
    return train.lr * (n + 1 - min(k, n)) / (n + 1)


class Trainer:
    """Train Brain2Pix (FixedRF, LearnedRF, Shen-like, synthetic input) on prepared data.

    Parameters
    ----------
    config : Config
    train_path, test_path : str
        Prepared ``train.h5`` and (optional) ``test.h5``.
    run_dir : str
        Where config, logs, grids, checkpoints and weights are written.
    ctx : list of mx.Context, optional
    feature_net : VGGFeatures, optional
        Injected feature network (default: built from ``config.loss``).
    show_progress : bool
    """

    def __init__(self, config, train_path, run_dir, test_path=None, ctx=None, feature_net=None,
                 show_progress=True):
        self.config = config
        self.run_dir = os.fspath(run_dir)
        self.ctx = ctx or [mx.cpu()]
        self.show_progress = show_progress
        self.log = get_logger()
        if config.train.amp:
            if self.ctx[0].device_type != "gpu":
                raise ConfigError("train.amp: mixed precision needs a GPU context (--gpus)")
            from mxnet.contrib import amp

            amp.init()
        mode = dataset_mode(config)
        rois = config.data.rois
        self.train_set = RFSImageDataset(train_path, rois, config.train.train_fraction, mode)
        # train.input_control: "time_shuffled" re-pairs inputs with other targets (the control of
        # the learning check); the test set is never shuffled
        self.train_set = apply_input_control(self.train_set, config.train.input_control,
                                             config.train.seed)
        self.test_set = RFSImageDataset(test_path, rois, 1.0, mode) if test_path else None
        ds = self.train_set
        if config.train.batch_size > len(ds):
            raise ConfigError(f"train.batch_size: expected at most the number of training samples "
                              f"({len(ds)} in {ds.path} with train.train_fraction "
                              f"{config.train.train_fraction}), got {config.train.batch_size}; an "
                              f"epoch would have no step")
        self.nets = build_networks(config, ds.in_channels, ds.n_voxels, ds.n_trs, ds.size, self.ctx)
        self.include_rf = uses_rf_images(config)
        self.rf_mask = learned_rf_mask(config, ds, self.ctx[0])
        self.feature_net = feature_net
        if self.feature_net is None and config.loss.feature_weight != 0:
            self.feature_net = vgg_features(config.loss.feature_weights, config.loss.feature_layers,
                                            config.loss.feature_resize,
                                            config.loss.imagenet_normalize, ctx=self.ctx,
                                            seed=config.train.seed)
            if config.train.hybridize:
                self.feature_net.hybridize(static_alloc=True)
        self.weights_source = getattr(self.feature_net, "weights_source", "not used (feature weight 0)")
        # train.kvstore=dist_sync: one model over the workers of `brain2pix launch`
        # (distributed.py); only rank 0 writes into the run folder or draws progress
        self.dist = join_workers(config) if config.train.kvstore == "dist_sync" else None
        self.writes = self.dist is None or self.dist.writes
        self.show_progress = show_progress and self.writes
        opt = {"learning_rate": config.train.lr, "beta1": config.train.beta1}
        g_params = self.nets["net_g"].collect_params()
        opt_g = dict(opt)
        if self.nets["learned_rf"] is not None:
            rf_params = self.nets["learned_rf"].collect_params()
            decay = config.model.learned_rf_weight_decay
            if decay > 0:
                # Adam's L2 term (decay * w added to the gradient) on the dense voxel -> image
                # maps only: they hold most of the generator's parameters and overfit first
                opt_g["wd"] = decay
                for param in g_params.values():
                    param.wd_mult = 0.0
                for param in rf_params.values():
                    param.wd_mult = 1.0
            g_params.update(rf_params)
        # AMP unscales the gradients in the update, so they must not be applied on the kvstore
        kv = {"kvstore": config.train.kvstore,
              "update_on_kvstore": False if config.train.amp else None}
        make = self.dist.trainer if self.dist else lambda *a: gluon.Trainer(*a, **kv)
        self.trainers = {"trainer_g": make(g_params, "adam", opt_g),
                         "trainer_d": make(self.nets["net_d"].collect_params(), "adam", dict(opt))}
        # AMP's dynamic loss scaling (one scaler per trainer) or plain fp32 backward and step
        self.scalers = {name: loss_scaling(trainer, config.train.amp)
                        for name, trainer in self.trainers.items()}
        self.history = HistoryBuffer(config.train.history_capacity, config.train.history_swap_prob,
                                     seed=config.train.seed)
        self.epoch, self.step, self.global_step = 0, 0, 0
        # loss sums, step count and seconds of the current epoch so far (part of checkpoints)
        self.epoch_sums, self.epoch_steps, self.epoch_seconds = {}, 0, 0.0
        self.last_record = None
        # Named extra training state saved in checkpoints: name -> (get, set); ``get()`` returns
        # a dict of arrays, ``set(arrays)`` restores it on resume (e.g. an AMP loss scaler).
        self.extra_states = {}
        # one writer per run folder: taken by resume() or fit(), given back when fit() ends
        self.folder_lock = FolderLock(self.run_dir, "brain2pix train") if self.writes else \
            NoFolderLock()
        self._fresh = True          # neither resumed nor trained yet
        self.stop_signal = None     # the signal that interrupted the last fit(), if any
        self.tensorboard = None     # the run's TensorBoard log while fit() runs (tensorboard.py)

    # ------------------------------------------------------------------ bookkeeping
    @property
    def is_random_features(self):
        return is_random(self.weights_source)

    def provenance(self):
        """What every output of this run records about itself."""
        return {"package_version": __version__, "feature_weights": self.weights_source,
                "profile": self.config.train.profile, "name": self.config.name,
                "variant": self.config.model.variant, "train_file": self.train_set.path,
                "test_file": self.test_set.path if self.test_set else None,
                "n_train_samples": len(self.train_set), "contexts": [str(c) for c in self.ctx]}

    def marks(self):
        """Marks every output of this run carries (random feature-loss weights, quick run,
        time-shuffled control), in the words of :mod:`brain2pix_gluon.provenance`."""
        marks = run_marks({"feature_loss": self.weights_source}, self.config.train.profile,
                          self.config.train.input_control)
        return marks

    def steps_per_epoch(self):
        n = len(self.train_set) // self.config.train.batch_size
        cap = self.config.train.max_steps_per_epoch
        return min(n, cap) if cap > 0 else n

    def save(self):
        """Write a checkpoint of the current (epoch, step), with the epoch's loss sums so far
        (on a worker other than rank 0: nothing, and None is returned)."""
        if not self.writes:     # rank 0 writes; this worker's last exchanges must still go out
            mx.nd.waitall()
            return None
        state = state_for(self.config, epoch=self.epoch, step=self.step,
                          global_step=self.global_step, provenance=self.provenance(),
                          epoch_sums=self.epoch_sums, epoch_steps=self.epoch_steps,
                          epoch_seconds=self.epoch_seconds, log_record=self.last_record,
                          loss_scaling={k: s.state() for k, s in self.scalers.items()})
        extra = {name: get() for name, (get, _) in self.extra_states.items()}
        return save_checkpoint(self.run_dir, self.nets, self.trainers, self.history, state, extra)

    def resume(self):
        """Load the newest complete checkpoint of the run directory, if there is one.

        Returns
        -------
        bool
            True when a checkpoint was loaded; False when the run has none (a fresh start).
        """
        self.folder_lock.acquire()
        directory, how = find_checkpoint(self.run_dir)
        if directory is None:
            return False
        directory, state, saved = load_checkpoint_state(directory)
        diffs = config_differences(config_to_dict(self.config), config_to_dict(saved))
        if diffs:
            raise CheckpointError(f"checkpoint {directory} was made with another configuration; "
                                  f"differences: {diffs}. Use a new --out directory "
                                  f"or the same config.")
        extra = restore_checkpoint(directory, self.nets, self.trainers, self.history, self.ctx)
        for name, (_, set_state) in self.extra_states.items():
            if name in extra:
                set_state(extra[name])
        self.epoch, self.step, self.global_step = state["epoch"], state["step"], state["global_step"]
        self.epoch_sums = dict(state.get("epoch_sums", {}))
        self.epoch_steps = int(state.get("epoch_steps", 0))
        self.epoch_seconds = float(state.get("epoch_seconds", 0.0))
        self.last_record = state.get("log_record")
        for name, scaler in self.scalers.items():
            scaler.load_state(state.get("loss_scaling", {}).get(name, {}))
        if self.writes:
            self._sync_log()
        self._fresh = False
        self.log.info("resumed from %s (%s) at epoch %d, step %d", directory, how, self.epoch,
                      self.step)
        return True

    @property
    def log_path(self):
        return os.path.join(self.run_dir, "log.jsonl")

    def _sync_log(self):
        """Cut ``log.jsonl`` back to the epochs the current state has completed.

        Records of later epochs (written before a crash that the checkpoint did not survive) and
        a torn last line are dropped; the checkpoint's own epoch record is written if it is
        missing (a crash between the checkpoint and the log).
        """
        kept = []
        if os.path.exists(self.log_path):
            with open(self.log_path) as handle:
                for line in handle:
                    try:
                        record = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(record, dict) and isinstance(record.get("epoch"), int) \
                            and record["epoch"] <= self.epoch:
                        kept.append(record)
        if self.last_record and self.last_record.get("epoch") == self.epoch and \
                not any(r["epoch"] == self.epoch for r in kept):
            kept.append(self.last_record)
        text = "".join(json.dumps(r) + "\n" for r in kept)
        current = open(self.log_path).read() if os.path.exists(self.log_path) else None
        if current is None and not text:
            return
        if text != current:
            write_text_atomic(self.log_path, text)

    def _check_run_dir(self):
        """Refuse an output folder that holds another run (config.yaml or log.jsonl not ours)."""
        import yaml

        if os.path.exists(self.run_dir) and not os.path.isdir(self.run_dir):
            raise TrainingError(f"output folder {self.run_dir}: a file is in the way; expected a "
                                f"folder (choose another --out)")
        config_path = os.path.join(self.run_dir, "config.yaml")
        if os.path.exists(config_path):
            try:
                with open(config_path) as handle:
                    theirs = yaml.safe_load(handle)
            except (yaml.YAMLError, UnicodeDecodeError) as exc:
                raise TrainingError(f"output folder {self.run_dir}: its config.yaml is not ours "
                                    f"and not valid YAML ({exc}); choose another --out") from None
            diffs = config_differences(config_to_dict(self.config),
                                       theirs if isinstance(theirs, dict) else {})
            if diffs:
                raise TrainingError(
                    f"output folder {self.run_dir} holds another run (its config.yaml differs: "
                    f"{diffs[:5]}{' ...' if len(diffs) > 5 else ''}); it is left untouched. "
                    f"Choose another --out, or remove the folder to start over")
        elif os.path.exists(self.log_path):
            raise TrainingError(f"output folder {self.run_dir} holds a log.jsonl but no "
                                f"config.yaml (not a run of this package?); it is left "
                                f"untouched. Choose another --out")

    def _write_run_files(self):
        import yaml

        self._check_run_dir()
        os.makedirs(self.run_dir, exist_ok=True)
        config_path = os.path.join(self.run_dir, "config.yaml")
        write_text_atomic(config_path, yaml.safe_dump(config_to_dict(self.config),
                                                      sort_keys=False))
        write_json_atomic(os.path.join(self.run_dir, "run.json"),
                          {**self.provenance(), "marks": self.marks()})
        self._sync_log()

    # ------------------------------------------------------------------ data
    def _split(self, batch):
        return [gluon.utils.split_and_load(part, self.ctx, even_split=False) for part in batch]

    def _unpack(self, parts):
        if len(parts) == 3:
            return parts[0], parts[1], parts[2]
        return parts[0], None, parts[1]

    def _loader(self, dataset, sampler, batch_size, last_batch):
        batches = gluon.data.BatchSampler(sampler, batch_size, last_batch)
        return gluon.data.DataLoader(dataset, batch_sampler=batches,
                                     num_workers=self.config.train.num_workers)

    # ------------------------------------------------------------------ training
    def fit(self, epochs=None, stop_after_steps=None):
        """Train until ``epochs`` (default ``config.train.epochs``) are complete.

        Parameters
        ----------
        epochs : int, optional
        stop_after_steps : int, optional
            Stop (with a checkpoint) after this many iterations of this call, as if interrupted;
            used by tests of resume.

        Returns
        -------
        str
            ``"complete"`` or ``"interrupted"`` (a checkpoint was saved either way).
        """
        self.folder_lock.acquire()
        try:
            return self._fit(epochs, stop_after_steps)
        finally:
            if self.tensorboard is not None:
                self.tensorboard.close()
                self.tensorboard = None
            self.folder_lock.release()

    def _fit(self, epochs, stop_after_steps):
        cfg = self.config.train
        epochs = cfg.epochs if epochs is None else epochs
        if self._fresh:
            # checked under the lock: another process may have trained here since ours started
            existing, _ = find_checkpoint(self.run_dir)
            if existing is not None:
                raise TrainingError(f"{self.run_dir} already holds a checkpoint ({existing}): "
                                    f"pass --resume to continue it, or choose another --out")
        self._fresh = False
        if self.writes:
            self._write_run_files()
        self.tensorboard = tensorboard_log(self)       # writes nothing where self.writes is false
        if self.dist is not None:
            self.dist.start(self.nets, run_facts(self.config, len(self.train_set),
                                                 self.steps_per_epoch(), self.epoch, self.step,
                                                 self.global_step))
        done_here = 0
        self.stop_signal = None
        with _StopRequest() as stop:
            while self.epoch < epochs:
                n_steps = self.steps_per_epoch()
                for trainer in self.trainers.values():
                    trainer.set_learning_rate(epoch_learning_rate(cfg, self.epoch))
                sampler = EpochSampler(len(self.train_set), cfg.seed, self.epoch,
                                       skip=self.step * cfg.batch_size)
                batch_size = cfg.batch_size
                if self.dist is not None:       # this worker's share of each batch
                    sampler, batch_size = self.dist.shard(sampler, batch_size)
                loader = self._loader(self.train_set, sampler, batch_size, "discard")
                if self.step == 0:
                    self.epoch_sums, self.epoch_steps, self.epoch_seconds = {}, 0, 0.0
                start = time.time() - self.epoch_seconds
                bar = progress(total=n_steps, initial=self.step, enabled=self.show_progress,
                               desc=f"epoch {self.epoch + 1}/{epochs}", unit="it")
                pending, first = {}, self.step     # loss sums of steps not yet read back
                for batch in loader:
                    if self.step >= n_steps:
                        break
                    losses = self.train_step(batch, sync=False)     # NDArrays, not waited for
                    for k, v in losses.items():
                        pending[k] = pending[k] + v if k in pending else v
                    self.epoch_steps += 1
                    self.epoch_seconds = time.time() - start
                    self.step += 1
                    self.global_step += 1
                    self.tensorboard.add_step(self.global_step, losses)
                    done_here += 1
                    bar.update(1)
                    if self.step % _READ_EVERY == 0:   # reading a loss waits for its step
                        pending, first = self._add_losses(pending, first, bar), self.step
                    requested = stop.requested if self.dist is None else \
                        self.dist.agree_to_stop(stop.requested)     # all workers stop together
                    if requested or (stop_after_steps is not None and done_here >= stop_after_steps):
                        self._add_losses(pending, first, bar)
                        bar.close()
                        self.tensorboard.flush()
                        path = self.save()
                        self.stop_signal = stop.signum
                        self.log.info("interrupted at epoch %d step %d; checkpoint %s; rerun with "
                                      "--resume to continue", self.epoch + 1, self.step, path)
                        return "interrupted"
                self._add_losses(pending, first, bar)
                bar.close()
                self._end_epoch({k: v / max(self.epoch_steps, 1) for k, v in self.epoch_sums.items()},
                                time.time() - start)
        if self.dist is not None:
            self.dist.finished()
        return "complete"

    def _add_losses(self, pending, first, bar=None):
        """Read back the summed losses of steps ``first+1 .. self.step`` (one host
        synchronisation), stop on a non-finite one, add them to the epoch's sums.

        Returns an empty dict (the next interval's sums). Nothing is saved before this check, so
        a non-finite loss never reaches a checkpoint.

        Raises
        ------
        TrainingError
            When a loss is NaN or infinite; the last good checkpoint is kept.
        """
        if not pending:
            return {}
        values = {k: float(v.asscalar()) if hasattr(v, "asscalar") else float(v)
                  for k, v in pending.items()}
        if not all(math.isfinite(v) for v in values.values()):
            if bar is not None:
                bar.close()
            last, _ = find_checkpoint(self.run_dir)
            raise TrainingError(
                f"non-finite loss at epoch {self.epoch + 1}, steps {first + 1}-{self.step}: "
                f"{values} (sums over those steps); training stopped. The last good checkpoint "
                f"{last or '(none yet)'} is kept (nothing was saved after it). Check the data "
                f"(`brain2pix inspect`) or lower train.lr (now {self.config.train.lr:g}), then "
                f"--resume")
        for k, v in values.items():
            self.epoch_sums[k] = self.epoch_sums.get(k, 0.0) + v
        if self.tensorboard is not None:
            self.tensorboard.write_steps()
        if bar is not None:
            n = max(self.step - first, 1)
            bar.set_postfix({k: f"{v / n:.3f}" for k, v in values.items()}, refresh=False)
        return {}

    def train_step(self, batch, sync=True):
        """One D step (skipped when the adversarial weight is 0) and one G step.

        Returns the losses as floats, or as NDArrays of shape (1,) when ``sync`` is false (the
        host then need not wait for the step to finish).
        """
        rf, voxels, target = self._unpack(self._split(batch))
        nets, lc = self.nets, self.config.loss
        out = {}
        if lc.adversarial_weight != 0:
            out["d"] = update_discriminator(nets["net_g"], nets["net_d"], self.trainers["trainer_d"],
                                            self.history, rf, target, voxels, nets["learned_rf"],
                                            rf_mask=self.rf_mask, include_rf=self.include_rf,
                                            scaler=self.scalers["trainer_d"], sync=sync)
        g = update_generator(nets["net_g"], nets["net_d"], self.trainers["trainer_g"],
                             self.feature_net, rf, target, lc, voxels, nets["learned_rf"],
                             rf_mask=self.rf_mask, include_rf=self.include_rf,
                             scaler=self.scalers["trainer_g"],
                             sync=sync)
        out.update({("g" if k == "total" else k): v for k, v in g.items()})
        return out

    def predict(self, batch):
        """Reconstructions of a batch (inference mode), as an NDArray on the first context."""
        rf, voxels, _ = self._unpack(self._split(batch))
        outs = []
        for k, x in enumerate(rf):
            fake = generate(self.nets, x, voxels[k] if voxels else None, self.include_rf,
                            self.rf_mask)
            outs.append(fake.as_in_context(self.ctx[0]))
        return mx.nd.concat(*outs, dim=0)

    def evaluate(self, dataset=None, batch_size=None):
        """Mean pixel L1 (and feature distance) of the generator on a dataset."""
        dataset = dataset or self.test_set
        if dataset is None:
            return {}
        batch_size = batch_size or self.config.train.batch_size
        loader = self._loader(dataset, EpochSampler(len(dataset), shuffle=False), batch_size, "keep")
        totals, n = {"pixel": 0.0}, 0
        for batch in loader:
            fake = self.predict(batch)
            target = batch[-1].as_in_context(self.ctx[0])
            m = fake.shape[0]
            totals["pixel"] += l1_loss(fake, target).asscalar() * m
            if self.feature_net is not None:
                dist = feature_distance(self.feature_net(fake), self.feature_net(target),
                                        self.config.loss.feature_distance).asscalar()
                totals["feature"] = totals.get("feature", 0.0) + dist * m
            n += m
        return {k: v / max(n, 1) for k, v in totals.items()}

    def _end_epoch(self, train_losses, seconds):
        self.epoch += 1
        self.step = 0
        if not self.writes:
            self.epoch_sums, self.epoch_steps, self.epoch_seconds = {}, 0, 0.0
            return
        test_losses = self.evaluate()
        record = {"epoch": self.epoch, "global_step": self.global_step, "seconds": round(seconds, 3),
                  "train": train_losses, "test": test_losses, "marks": self.marks(),
                  "feature_weights": self.weights_source, "steps": self.epoch_steps,
                  "lr": self.trainers["trainer_g"].learning_rate}
        self.epoch_sums, self.epoch_steps, self.epoch_seconds = {}, 0, 0.0
        self.last_record = record
        self._save_grid()
        every = self.config.train.save_weights_every
        keep = every and (self.epoch % every == 0 or self.epoch == self.config.train.epochs)
        for name in ("net_g", "learned_rf"):
            if keep and self.nets[name] is not None:
                # through a temporary name: a kill or a full disk never leaves a truncated file
                path = epoch_weights_path(self.run_dir, name, self.epoch)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with replacing(path) as tmp:
                    self.nets[name].save_parameters(tmp)
        if self.tensorboard is not None:    # before the checkpoint: a resume purges what follows it
            self.tensorboard.end_epoch(self, train_losses, test_losses)
            self.tensorboard.flush()
        self.save()
        # after the checkpoint: a crash before this line loses no record (the checkpoint holds it)
        with open(self.log_path, "a") as handle:
            handle.write(json.dumps(record) + "\n")
        self.log.info("epoch %d: train %s test %s (%.1f s)%s", self.epoch,
                      {k: round(v, 4) for k, v in train_losses.items()},
                      {k: round(v, 4) for k, v in test_losses.items()}, seconds,
                      " [" + ", ".join(self.marks()) + "]" if self.marks() else "")

    def _save_grid(self):
        dataset = self.test_set or self.train_set
        n = min(self.config.train.grid_samples, len(dataset))
        if n == 0:
            return
        items = [dataset[int(i)] for i in np.linspace(0, len(dataset) - 1, n)]
        batch = [mx.nd.array(np.stack([it[k] for it in items])) for k in range(len(items[0]))]
        fake = self.predict(batch).asnumpy()
        grids = os.path.join(self.run_dir, "grids")
        os.makedirs(grids, exist_ok=True)
        title = f"{self.config.name} epoch {self.epoch}: input | reconstruction | ground truth"
        if self.marks():
            title += " [" + ", ".join(self.marks()) + "]"
        save_grid(os.path.join(grids, f"epoch_{self.epoch:03d}.png"), batch[0].asnumpy(), fake,
                  batch[-1].asnumpy(), len(dataset.rois), title)
