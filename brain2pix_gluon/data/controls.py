"""Input controls: training data whose fMRI input keeps its statistics but loses its frames.

``train.input_control = "time_shuffled"`` pairs every training target with the whole input of
another training sample (all ROIs and all TRs of its window moved together), chosen by a fixed
permutation. Every input the network sees is a real, unaltered input of the training set, and
each is seen exactly as often as without the control, so all input statistics are unchanged; only
the link between input and frame is broken. A model trained this way shows what the decoder can
reach without information about the frames (e.g. by learning the average frame).

The permutation has no fixed point and never pairs two samples of the same run closer than
``min_separation`` samples: overlapping windows of neighbouring samples share most of their
volumes, and neighbouring video frames look alike, so a shift of a few samples would keep much of
the link.
"""

import numpy as np
from mxnet import gluon

from ..config import INPUT_CONTROLS
from ..errors import ConfigError, DataError, check_choice

__all__ = ["INPUT_CONTROLS", "shuffled_pairing", "TimeShuffledDataset", "apply_input_control"]



def shuffled_pairing(runs, seed=0, min_separation=16):
    """A permutation without fixed points pairing samples far apart in time.

    Parameters
    ----------
    runs : ndarray of int, shape (n,)
        Run of each sample; samples of a run are consecutive in time, in order.
    seed : int
        Seed of the permutation (same seed, same pairing).
    min_separation : int
        Within a run, ``abs(partner[i] - i) >= min_separation``; samples of different runs
        always qualify.

    Returns
    -------
    partner : ndarray of int, shape (n,)
        Sample ``i``'s target is paired with the input of sample ``partner[i]``.

    Notes
    -----
    A random permutation is repaired by swaps until every pair satisfies the constraint. When
    the constraint is too tight for that (e.g. one run of fewer than about 3 ``min_separation``
    samples), a random cyclic shift by ``s`` in ``[min_separation, n - min_separation]`` is used.
    """
    runs = np.asarray(runs)
    n = len(runs)
    if n < 2:
        raise DataError(f"time-shuffled control: expected at least 2 training samples, got {n}")
    if min_separation < 1:
        raise ConfigError(f"min_separation: expected >= 1, got {min_separation}")
    position = np.arange(n)

    def allowed(i, j):
        return (runs[i] != runs[j]) | (np.abs(i - j) >= min_separation)

    if n < 2 * min_separation and len(np.unique(runs)) == 1:
        raise DataError(f"time-shuffled control: {n} samples in one run cannot be paired "
                        f"{min_separation} samples apart; expected at least {2 * min_separation}")
    rng = np.random.RandomState(seed)
    partner = rng.permutation(n)
    for _ in range(100):
        bad = np.flatnonzero(~allowed(position, partner))
        if not bad.size:
            return partner
        for i in bad:
            if allowed(i, partner[i]):          # fixed by an earlier swap of this round
                continue
            # swap with a random sample whose partner suits i and who is not made worse
            for j in rng.permutation(n):
                if allowed(i, partner[j]) and (allowed(j, partner[i])
                                               or not allowed(j, partner[j])):
                    partner[i], partner[j] = partner[j], partner[i]
                    break
    if n >= 2 * min_separation:
        # a random cyclic shift by s in [d, n - d] keeps every pair >= d apart
        return (position + rng.randint(min_separation, n - min_separation + 1)) % n
    raise DataError(f"time-shuffled control: no pairing found with min_separation "
                    f"{min_separation} for {n} samples; lower min_separation")


class TimeShuffledDataset(gluon.data.Dataset):
    """A dataset whose items pair the input of sample ``partner[i]`` with the target of ``i``.

    Parameters
    ----------
    dataset : RFSImageDataset
        Items are tuples whose last element is the target and the others the inputs.
    seed : int
    min_separation : int
        See :func:`shuffled_pairing`.
    """

    def __init__(self, dataset, seed=0, min_separation=16):
        self.dataset = dataset
        if hasattr(dataset, "sample_index"):
            runs = dataset.sample_index()["run"]
        else:
            runs = np.zeros(len(dataset), np.int64)
        self.partner = shuffled_pairing(runs, seed, min_separation)
        self.seed, self.min_separation = seed, min_separation

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, idx):
        inputs = self.dataset[int(self.partner[idx])][:-1]
        target = self.dataset[idx][-1]
        return (*inputs, target)

    def __getattr__(self, name):
        # rois, n_trs, in_channels, samples, ... of the wrapped dataset
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)


def apply_input_control(dataset, control="none", seed=0, min_separation=16):
    """The training dataset under ``train.input_control``.

    Parameters
    ----------
    dataset : RFSImageDataset
    control : {"none", "time_shuffled"}
    seed : int
        Seed of the pairing (use the run's ``train.seed``).

    Returns
    -------
    Dataset
        ``dataset`` itself for ``"none"``, else a :class:`TimeShuffledDataset`.
    """
    check_choice(control, "train.input_control", INPUT_CONTROLS)
    if control == "none":
        return dataset
    if getattr(dataset, "mode", None) == "synthetic":
        raise ConfigError("train.input_control: time_shuffled applies to fMRI inputs; the "
                          "synthetic experiment (model.input=synthetic) has none")
    return TimeShuffledDataset(dataset, seed, min_separation)
