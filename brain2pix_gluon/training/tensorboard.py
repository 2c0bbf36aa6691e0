"""TensorBoard event files of a training run: ``RUN/tensorboard/<run name>/``.

While :class:`~.trainer.Trainer` trains, :class:`TensorBoardLog` writes with ``tensorboardX``
(no TensorFlow or PyTorch needed; the ``tensorboard`` server that shows them is the optional extra
``pip install -e ".[tensorboard]"``, then ``tensorboard --logdir RUN/tensorboard``):

* every loss term of every iteration (``loss/d``, ``loss/g``, ``loss/pixel``,
  ``loss/adversarial``, ``loss/feature``), at the iteration's global step (1-based);
* after every epoch, at the epoch's last global step: the held-out losses (``test/pixel``,
  ``test/feature``), the held-out metrics of the paper's evaluation that need no feature network
  (``heldout/pixcorr_valid_field``: PixCorr inside the fisheye frame's valid field;
  ``heldout/twoway_identification_pixels``: two-way identification on the valid field's pixels,
  chance 0.5) on up to :data:`HELDOUT_FRAMES` evenly spaced test frames, the learning rate, and
  an image grid of the same few held-out frames each epoch (``heldout/frames``: RFSImage input |
  reconstruction | ground truth per row, as ``grids/``; the run's text says so).

The run's name (the folder under ``tensorboard/``) carries the run's marks
(:mod:`brain2pix_gluon.provenance`), so a random-weight, quick, demo, science or control run says
so in TensorBoard's run list.

**Resume.** A resumed run appends to the same folder. Events of steps after the checkpoint it
resumes from (written before a crash the checkpoint did not survive) are purged: the new writer
starts with TensorBoard's purge marker at the first step it will write again, so no step appears
twice. Events are flushed before every checkpoint, so no step up to a checkpoint is lost.
``train.tensorboard=false`` writes nothing.
"""

import os
import re
import time

import numpy as np

from ..errors import ConfigError

__all__ = ["TensorBoardLog", "tensorboard_log", "run_name", "HELDOUT_FRAMES", "FOLDER"]

# the folder of the event files under a run folder
FOLDER = "tensorboard"
# held-out frames scored after every epoch (evenly spaced over the test set)
HELDOUT_FRAMES = 256
# characters kept in a run name (a folder name); others become "_"
_UNSAFE = re.compile(r"[^A-Za-z0-9 ,;()+._\-]")


def run_name(name, marks):
    """The TensorBoard run name: the run's ``name`` and its marks, as a folder name.

    Parameters
    ----------
    name : str
        ``config.name``.
    marks : sequence of str
        The run's marks.

    Returns
    -------
    str
        E.g. ``fixed_rf -- QUICK RUN; RANDOM FEATURE-LOSS WEIGHTS (VGG-19)`` (characters a file
        name or a glob pattern should not hold become ``_``; at most 200 characters).
    """
    text = name + (f" -- {'; '.join(sorted(set(marks)))}" if marks else "")
    return _UNSAFE.sub("_", text.replace("'", "").replace(":", " -"))[:200].strip()


class _NoLog:
    """What the trainer calls when ``train.tensorboard`` is false: nothing is written."""

    enabled = False
    folder = None

    def add_step(self, global_step, losses):
        pass

    def write_steps(self):
        pass

    def end_epoch(self, trainer, train_losses, test_losses):
        pass

    def flush(self):
        pass

    def close(self):
        pass


class TensorBoardLog(_NoLog):
    """Event files of one training run (see the module docstring).

    Parameters
    ----------
    folder : str
        ``RUN/tensorboard/<run name>``.
    resume_step : int
        The global step of the checkpoint the run continues from (0 for a fresh run): events
        after it are purged.
    text : str, optional
        Written once (tag ``run``) at ``resume_step``: the run's name, marks and settings.
    """

    enabled = True

    def __init__(self, folder, resume_step=0, text=None):
        try:
            from tensorboardX import SummaryWriter
        except ImportError as exc:
            raise ConfigError(f"train.tensorboard: true needs tensorboardX ({exc}); install it "
                              f"with pip install -e . (it is pinned in setup.py), or set "
                              f"train.tensorboard=false") from None
        self.folder = os.fspath(folder)
        os.makedirs(self.folder, exist_ok=True)
        # purge_step: TensorBoard hides every event of this step and later written before
        kwargs = {"purge_step": resume_step + 1} if resume_step > 0 else {}
        # tensorboardX names an event file by the second it was opened and opens it with "wb":
        # a run resumed within the same second would wipe the file before it. A suffix of the
        # nanosecond keeps every writer's file its own and in the order TensorBoard reads them
        self.writer = SummaryWriter(self.folder, flush_secs=30,
                                    filename_suffix=f".{time.time_ns():020d}", **kwargs)
        self._steps = []            # (global step, {term: loss}) not written yet
        if text:
            self.writer.add_text("run", text, resume_step)

    def add_step(self, global_step, losses):
        """Keep one iteration's losses (floats or NDArrays of shape (1,), not waited for);
        :meth:`write_steps` writes them once they have been read back."""
        self._steps.append((int(global_step), dict(losses)))

    def write_steps(self):
        """Write the kept iterations' losses (after the trainer checked they are finite)."""
        for step, losses in self._steps:
            for term, value in losses.items():
                value = float(value.asscalar()) if hasattr(value, "asscalar") else float(value)
                self.writer.add_scalar(f"loss/{term}", value, step)
        self._steps = []

    def end_epoch(self, trainer, train_losses, test_losses):
        """Held-out losses, metrics and image grid after an epoch, at its last global step.

        Parameters
        ----------
        trainer : Trainer
            Its ``test_set`` (else ``train_set``), ``predict``, ``config`` and ``global_step``.
        train_losses, test_losses : dict of str -> float
        """
        import mxnet as mx

        from ..plotting import side_by_side
        from ..preprocessing.retina import fisheye_valid_mask
        from ..similarity import masked_pixels, pixcorr, two_way_identification

        step = trainer.global_step
        self.write_steps()
        for term, value in test_losses.items():
            self.writer.add_scalar(f"test/{term}", float(value), step)
        self.writer.add_scalar("train/lr", float(trainer.trainers["trainer_g"].learning_rate),
                               step)
        dataset = trainer.test_set or trainer.train_set
        n = min(HELDOUT_FRAMES, len(dataset))
        if n == 0:
            return
        chosen = np.unique(np.linspace(0, len(dataset) - 1, n).astype(int))
        batch_size = trainer.config.train.batch_size
        inputs, fakes, targets = [], [], []
        for start in range(0, len(chosen), batch_size):
            items = [dataset[int(i)] for i in chosen[start:start + batch_size]]
            batch = [mx.nd.array(np.stack([it[k] for it in items])) for k in range(len(items[0]))]
            fakes.append(trainer.predict(batch).asnumpy())
            inputs.append(batch[0].asnumpy())
            targets.append(batch[-1].asnumpy())
        fakes, targets, inputs = (np.concatenate(a) for a in (fakes, targets, inputs))
        data = trainer.config.data
        mask = fisheye_valid_mask(targets.shape[-1], data.max_ratio, data.fisheye)
        self.writer.add_scalar("heldout/pixcorr_valid_field",
                               float(np.nanmean(pixcorr(fakes, targets, mask))), step)
        if len(targets) >= 2:
            self.writer.add_scalar("heldout/twoway_identification_pixels", float(np.mean(
                two_way_identification(masked_pixels(fakes, mask), masked_pixels(targets, mask)))),
                step)
        # the same few frames every epoch: evenly spaced over the scored ones
        rows = np.linspace(0, len(targets) - 1, min(max(trainer.config.train.grid_samples, 1),
                                                    len(targets))).astype(int)
        grid = side_by_side(inputs[rows], np.clip(fakes[rows], 0, 1), targets[rows],
                            len(dataset.rois))
        gap = np.full((len(rows), 2) + grid.shape[2:], 255, np.uint8)
        image = np.concatenate([np.concatenate([g, s]) for g, s in zip(grid, gap)])
        self.writer.add_image("heldout/frames", image, step, dataformats="HWC")

    def flush(self):
        """Write everything to disk (before every checkpoint)."""
        self.write_steps()
        self.writer.flush()

    def close(self):
        self.flush()
        self.writer.close()


def tensorboard_log(trainer):
    """The TensorBoard log of a trainer's run (a no-op one when ``train.tensorboard`` is
    false, or in a worker of a distributed run that does not write), continuing from the
    trainer's current global step.

    Parameters
    ----------
    trainer : Trainer

    Returns
    -------
    TensorBoardLog or an object with the same methods that writes nothing
    """
    # train.tensorboard=false; or a worker of `brain2pix launch` other than rank 0 (it writes
    # nothing into the run folder)
    if not trainer.config.train.tensorboard or not getattr(trainer, "writes", True):
        return _NoLog()
    marks = trainer.marks()
    name = run_name(trainer.config.name, marks)
    text = (f"**{trainer.config.name}** (profile {trainer.config.train.profile}, "
            f"variant {trainer.config.model.variant})" +
            ("  \nMarks: " + "; ".join(marks) if marks else "") +
            f"  \nFolder: {trainer.run_dir}"
            "  \nImages (heldout/frames): one held-out frame per row, RFSImage input | "
            "reconstruction | ground truth.")
    return TensorBoardLog(os.path.join(trainer.run_dir, FOLDER, name), trainer.global_step, text)
