"""History ("image pool") buffer of the discriminator (paper section 3.2.1; docs/method.md section 5)."""

import numpy as np
import mxnet as mx

__all__ = ["HistoryBuffer"]


class HistoryBuffer:
    """Keeps past concat(input, fake) samples and sometimes shows them to the discriminator.

    Per sample: while fewer than ``capacity`` are stored, the sample is stored and passed through;
    once full, with probability ``swap_prob`` a uniformly chosen stored sample is returned in its
    place and the new one is stored in that slot; otherwise the new sample passes through.

    Parameters
    ----------
    capacity : int
        50 in the paper; 0 disables the buffer (every sample passes through).
    swap_prob : float
        0.5 in the paper.
    seed : int
        Seed of the buffer's own generator (its state is saved in checkpoints).
    """

    def __init__(self, capacity=50, swap_prob=0.5, seed=0):
        self.capacity, self.swap_prob = int(capacity), float(swap_prob)
        self.rng = np.random.RandomState(seed)
        self.samples = []

    def __len__(self):
        return len(self.samples)

    def query(self, batch):
        """Pass a batch through the buffer.

        Parameters
        ----------
        batch : NDArray, shape (N, C, H, W)

        Returns
        -------
        NDArray, shape (N, C, H, W), on the batch's context
        """
        if self.capacity <= 0:
            return batch
        out = []
        for k in range(batch.shape[0]):
            sample = batch[k].copy()
            if len(self.samples) < self.capacity:
                self.samples.append(sample)
                out.append(sample)
            elif self.rng.uniform() < self.swap_prob:
                slot = self.rng.randint(0, self.capacity)
                out.append(self.samples[slot].as_in_context(batch.context))
                self.samples[slot] = sample
            else:
                out.append(sample)
        return mx.nd.stack(*out, axis=0)

    def state_dict(self):
        """Arrays and generator state, for checkpoints."""
        stored = np.stack([s.asnumpy() for s in self.samples]) if self.samples else np.zeros((0,))
        kind, keys, pos, has_gauss, cached = self.rng.get_state()
        return {"samples": stored, "rng_keys": keys, "rng_pos": np.array(pos),
                "rng_has_gauss": np.array(has_gauss), "rng_cached": np.array(cached),
                "capacity": np.array(self.capacity), "swap_prob": np.array(self.swap_prob)}

    def load_state_dict(self, state, ctx=None):
        """Restore what :meth:`state_dict` returned."""
        ctx = ctx or mx.cpu()
        self.capacity = int(state["capacity"])
        self.swap_prob = float(state["swap_prob"])
        stored = state["samples"]
        self.samples = [mx.nd.array(s, ctx=ctx) for s in stored] if stored.ndim > 1 else []
        self.rng.set_state(("MT19937", state["rng_keys"], int(state["rng_pos"]),
                            int(state["rng_has_gauss"]), float(state["rng_cached"])))
