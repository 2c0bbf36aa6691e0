"""A linear pixel decoder from the RFSimages: the floor a deep decoder must clear (not in the paper).

Each sample's 15-channel RFSimage stack (3 ROIs x 5 TRs, 96 x 96) is average-pooled to
``pool`` x ``pool`` pixels per channel and standardised with the training set's mean and SD; the
RGB target frame is predicted by ridge regression,

    W = argmin ||X W - Y||^2 + lambda ||W||^2,

solved in its dual form ``W = X^T (X X^T + lambda I)^-1 Y`` (there are fewer samples than
features). The penalty ``lambda`` is chosen from a log grid on the last ``validation_fraction``
of the training samples (a contiguous block, so that autocorrelated neighbours do not leak into
it; :func:`~.penalty.choose_penalty`), then the decoder is refitted on every training sample. Predictions are clipped to [0, 1] and written in
the reconstruction schema, so ``evaluate``, the learning check and the tables treat the ridge
decoder like any other model.
"""

import os
import time

import numpy as np

from ..errors import ConfigError
from ..evaluation.metrics import pearson_rows
from ..utils import get_logger, progress
from .penalty import check_penalties, choose_penalty

__all__ = ["RidgeDecoder", "pooled_inputs", "run_ridge_baseline", "RIDGE_MODEL",
           "DEFAULT_PENALTIES"]

RIDGE_MODEL = "ridge"
DEFAULT_PENALTIES = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0)


def pooled_inputs(dataset, pool=None, batch=64, show_progress=False):
    """The dataset's inputs average-pooled, flattened, and its targets.

    Parameters
    ----------
    dataset : RFSImageDataset
        Mode ``"rf"``: items ``(rf_images [C, S, S], target [3, S, S])``.
    pool : int, optional
        Output side; ``S`` must be a multiple of it. Default ``S // 4`` (24 for 96-px images).

    Returns
    -------
    inputs : ndarray, shape (n, C * pool * pool), float64
    targets : ndarray, shape (n, 3, S, S), float32
    """
    size = dataset.size
    pool = size // 4 if pool is None else pool
    if pool < 1 or size % pool:
        raise ConfigError(f"pool: expected a divisor of the image size {size}, got {pool}")
    f = size // pool
    xs, ys = [], []
    for start in progress(range(0, len(dataset), batch), desc="ridge inputs",
                          enabled=show_progress, unit="batch"):
        items = [dataset[i] for i in range(start, min(start + batch, len(dataset)))]
        rf = np.stack([it[0] for it in items])
        n, c = rf.shape[:2]
        xs.append(rf.reshape(n, c, pool, f, pool, f).mean(axis=(3, 5)).reshape(n, -1))
        ys.append(np.stack([it[-1] for it in items]))
    return np.concatenate(xs).astype(np.float64), np.concatenate(ys).astype(np.float32)


class RidgeDecoder:
    """Ridge regression from pooled RFSimages to RGB frames (dual solution).

    Parameters
    ----------
    penalties : sequence of float
        Candidate penalties ``lambda`` (in units of the standardised inputs' squared norm per
        feature).
    validation_fraction : float
        Trailing share of the training samples used to choose the penalty.

    Attributes
    ----------
    penalty : float
        The chosen ``lambda``.
    validation : dict of float -> float
        Mean validation Pearson r (over frames) of every penalty tried.
    """

    def __init__(self, penalties=DEFAULT_PENALTIES, validation_fraction=0.15):
        if not 0 < validation_fraction < 1:
            raise ConfigError(f"validation_fraction: expected 0 < x < 1, got {validation_fraction}")
        self.penalties = check_penalties(penalties)
        self.validation_fraction = validation_fraction
        self.validation = {}

    def _standardise(self, x):
        return ((x - self.x_mean) / self.x_sd).astype(np.float32)

    @staticmethod
    def _dual(x, y):
        """Eigendecomposition of the Gram matrix ``x x^T`` and ``U^T y``: every penalty's dual
        coefficients then cost one diagonal scaling."""
        s, u = np.linalg.eigh((x @ x.T).astype(np.float64))
        u = u.astype(np.float32)
        return np.maximum(s, 0.0).astype(np.float32), u, u.T @ y

    @staticmethod
    def _dual_coefficients(dual, penalty, n_features):
        """``(X X^T + lambda F I)^-1 Y`` from :meth:`_dual`: shape (n, outputs)."""
        s, u, uty = dual
        return u @ (uty / (s + np.float32(penalty * n_features))[:, None])

    def fit(self, inputs, targets):
        """Fit on ``inputs`` (n, F) and ``targets`` (n, 3, S, S); returns self."""
        n = len(inputs)
        self.shape = targets.shape[1:]
        y = targets.reshape(n, -1).astype(np.float32)
        self.x_mean = inputs.mean(axis=0)
        self.x_sd = inputs.std(axis=0) + 1e-8
        x = self._standardise(inputs)
        n_features = x.shape[1]
        n_val = int(round(self.validation_fraction * n))
        if len(self.penalties) > 1 and 2 <= n_val <= n - 2:
            centre = x[:-n_val].mean(axis=0)     # the intercept of the validation fit
            fit_x, val_x = x[:-n_val] - centre, x[-n_val:] - centre
            # every 7th output value is plenty to rank the penalties, at a 7th of the cost
            y_sub = y[:, ::7]
            y_mean = y_sub[:-n_val].mean(axis=0)
            dual = self._dual(fit_x, y_sub[:-n_val] - y_mean)
            cross = val_x @ fit_x.T

            def validation_r(penalty):
                pred = cross @ self._dual_coefficients(dual, penalty, n_features) + y_mean
                return pearson_rows(pred, y_sub[-n_val:])

            self.penalty, self.validation = choose_penalty(self.penalties, validation_r)
        else:
            self.penalty = self.penalties[0]
        self.y_mean = y.mean(axis=0)
        # the primal weights (F x 3 S^2) would take gigabytes: keep the dual coefficients
        self.train_x = x
        self.dual_coef = self._dual_coefficients(self._dual(x, y - self.y_mean), self.penalty,
                                                 n_features)
        return self

    def predict(self, inputs):
        """Frames from pooled RFSimages.

        Parameters
        ----------
        inputs : ndarray, shape (n, F)
            :func:`pooled_inputs` of the samples to reconstruct.

        Returns
        -------
        ndarray, shape (n, 3, S, S), float32, clipped to [0, 1]
        """
        out = (self._standardise(inputs) @ self.train_x.T) @ self.dual_coef + self.y_mean
        return np.clip(out, 0.0, 1.0).astype(np.float32).reshape((len(inputs),) + self.shape)


def run_ridge_baseline(prepared_dir, out_dir, config, pool=None, penalties=DEFAULT_PENALTIES,
                       show_progress=True):
    """Fit the ridge decoder on ``train.h5`` and write ``OUT/reconstructions.h5`` for ``test.h5``.

    Parameters
    ----------
    prepared_dir : str
        Folder with ``train.h5`` and ``test.h5`` (``brain2pix prepare``).
    out_dir : str
    config : Config
        ``data.rois`` selects the input channels.
    pool : int, optional
        Side of the pooled RFSimages; default a quarter of the image side (24: 4 x 4 averaging
        of 96-px images).

    Returns
    -------
    str
        Path of the reconstruction file.
    """
    from ..data.dataset import RFSImageDataset
    from ..io.prepared import PreparedSplit
    from ..io.reconstructions import RECONSTRUCTION_FILES, write_reconstructions

    log = get_logger()
    start = time.time()
    train = RFSImageDataset(os.path.join(prepared_dir, "train.h5"), config.data.rois, 1.0, "rf")
    test = RFSImageDataset(os.path.join(prepared_dir, "test.h5"), config.data.rois, 1.0, "rf")
    pool = train.size // 4 if pool is None else pool
    x_train, y_train = pooled_inputs(train, pool, show_progress=show_progress)
    x_test, y_test = pooled_inputs(test, pool, show_progress=show_progress)
    decoder = RidgeDecoder(penalties).fit(x_train, y_train)
    recon = decoder.predict(x_test)
    run_names = PreparedSplit(test.path).run_names
    os.makedirs(out_dir, exist_ok=True)
    attrs = {"model": RIDGE_MODEL, "variant": RIDGE_MODEL, "weights": {},
             "profile": "not in the paper", "config": {"pool": pool, "lambda": decoder.penalty,
                                                         "validation": decoder.validation,
                                                         "rois": list(train.rois)},
             "source": os.path.abspath(test.path), "checkpoint": "", "epoch": 0, "step": 0}
    path = write_reconstructions(os.path.join(out_dir, RECONSTRUCTION_FILES["h5"]), recon, y_test,
                                 test.samples.array, run_names, attrs)
    log.info("ridge decoder: %d training samples, %d features, lambda %g (validation r %s), "
             "%.1f s; %d test reconstructions in %s", len(x_train), x_train.shape[1], decoder.penalty,
             {k: round(v, 3) for k, v in decoder.validation.items()}, time.time() - start,
             len(recon), path)
    return path
