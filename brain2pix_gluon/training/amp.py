"""Loss scaling: how a step's losses are back-propagated and its gradients applied.

Mixed precision (``train.amp``) follows MXNet AMP's documented recipe for Gluon::

    amp.init()                      # before the networks are built
    amp.init_trainer(trainer)       # once per trainer
    with autograd.record():         # the loss was computed under record() too
        with amp.scale_loss(loss, trainer) as scaled:
            autograd.backward(scaled)   # gradients of loss * S
    trainer.step(n)                 # unscales by 1/S, skips the update when a gradient overflowed

where S is AMP's dynamic loss scale (2**16 at the start, halved after an overflow, doubled after
2,000 clean steps). Both GAN updates, the discriminator's and the generator's (with the LearnedRF
layers), go through one :class:`DynamicLossScaling` per trainer; fp32 training uses
:class:`FullPrecision`, which does exactly ``autograd.backward`` and ``trainer.step``.

The AMP module is injected, so the scaling can be driven on CPU by tests.
"""

from mxnet import autograd

from ..errors import CheckpointError

__all__ = ["FullPrecision", "DynamicLossScaling", "loss_scaling"]


class FullPrecision:
    """fp32: the losses are back-propagated as they are.

    Parameters
    ----------
    trainer : gluon.Trainer
    """

    loss_scale = 1.0

    def __init__(self, trainer):
        self.trainer = trainer

    def backward(self, losses):
        """``autograd.backward`` on a list of per-device losses."""
        autograd.backward(losses)

    def step(self, n_devices):
        """``trainer.step(n_devices)``: the per-device batch-mean gradients are averaged."""
        self.trainer.step(n_devices)

    def state(self):
        """Nothing to save."""
        return {}

    def load_state(self, state):
        """Accepts the (empty) state of :meth:`state`."""
        if state:
            raise CheckpointError(f"loss scaling: an fp32 run has no loss-scale state, got "
                                  f"{state!r} (was the checkpoint made with train.amp=true?)")


class DynamicLossScaling:
    """MXNet AMP's dynamic loss scaling for one Gluon trainer.

    Parameters
    ----------
    trainer : gluon.Trainer
    amp : module, optional
        ``mxnet.contrib.amp`` (default) or a stand-in offering ``init_trainer`` and
        ``scale_loss``; ``amp.init()`` must have been called before the networks were built.
    """

    _STATE = ("_loss_scale", "_next_loss_scale", "_max_loss_scale", "_scale_seq_len",
              "_unskipped")

    def __init__(self, trainer, amp=None):
        if amp is None:
            from mxnet.contrib import amp
        self.trainer, self.amp = trainer, amp
        amp.init_trainer(trainer)

    @property
    def loss_scale(self):
        """The scale S the next backward pass multiplies the losses by."""
        return float(self.trainer._amp_loss_scaler.loss_scale)

    def backward(self, losses):
        """Back-propagate ``S * loss`` for every per-device loss."""
        # as in MXNet's AMP tutorial: the multiplication by S is recorded, then back-propagated.
        # Every loss term ends in a mean, which AMP computes in float32 (its FP32 list), so S * loss
        # cannot overflow float16.
        with autograd.record():
            with self.amp.scale_loss(list(losses), self.trainer) as scaled:
                autograd.backward(scaled)

    def step(self, n_devices):
        """Update with the gradients divided by ``S * n_devices`` (skipped after an overflow)."""
        self.trainer.step(n_devices)

    def state(self):
        """The loss scaler's counters, JSON-serialisable."""
        scaler = self.trainer._amp_loss_scaler
        return {name.lstrip("_"): getattr(scaler, name) for name in self._STATE}

    def load_state(self, state):
        """Restore what :meth:`state` returned."""
        scaler = self.trainer._amp_loss_scaler
        missing = [n.lstrip("_") for n in self._STATE if n.lstrip("_") not in state]
        if missing:
            raise CheckpointError(f"loss scaling: state lacks {missing}; expected the keys "
                                  f"{[n.lstrip('_') for n in self._STATE]}, got {sorted(state)}")
        for name in self._STATE:
            value = state[name.lstrip("_")]
            setattr(scaler, name, int(value) if name in ("_scale_seq_len", "_unskipped")
                    else float(value))


def loss_scaling(trainer, amp=False):
    """:class:`DynamicLossScaling` when ``amp`` is true, else :class:`FullPrecision`."""
    return DynamicLossScaling(trainer) if amp else FullPrecision(trainer)
