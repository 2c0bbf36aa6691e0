"""Fit exported pRF data with pyprf (runs inside its own virtual environment; see prf_crosscheck.py).

This file imports only numpy and pyprf, never brain2pix_gluon: pyprf 3.0 needs numpy >= 1.26,
which cannot be installed beside MXNet 1.9.1. It reads the file ``prf_crosscheck.py`` exported
(the HRF-convolved design of every run, concatenated, and the responses), builds pyprf's model time
courses with its own Gaussian pooling (``crt_prf_tcmdl``) and selects each voxel's best model by
least squares with pyprf's grid search (``find_prf_cpu``), and writes the centres (pixel
coordinates of the design, x = column, y = row), sizes (pixels), R^2 and the seconds taken.

Usage: ``python prf_crosscheck_worker.py EXPORT.npz RESULT.npz``
"""

import queue
import sys
import time

import numpy as np


def main(export_path, result_path):
    from pyprf.analysis.find_prf_cpu import find_prf_cpu
    from pyprf.analysis.model_creation_timecourses import crt_prf_tcmdl

    data = np.load(export_path)
    design = data["design"]                     # (n_volumes, S, S): rows y, columns x
    responses = data["responses"]               # (n_volumes, n_voxels)
    size = design.shape[1]
    n_positions, n_sizes = int(data["n_positions"]), int(data["n_sizes"])
    sd_min, sd_max = float(data["sd_min_px"]), float(data["sd_max_px"])
    start = time.perf_counter()
    # pyprf's layout: design[x, y, condition, volume]; its visual space is the design's pixels,
    # so that one "degree" is one pixel
    pixels = np.ascontiguousarray(design.transpose(2, 1, 0)[:, :, None, :], dtype=np.float32)
    models = crt_prf_tcmdl(pixels, None, tplVslSpcSze=(size, size), varNumX=n_positions,
                           varNumY=n_positions, varExtXmin=0.0, varExtXmax=float(size),
                           varExtYmin=0.0, varExtYmax=float(size), varPrfStdMin=sd_min,
                           varPrfStdMax=sd_max, varNumPrfSizes=n_sizes, varPar=2)
    t_models = time.perf_counter() - start
    # pyprf places its Gaussians at int() of its grid positions (utilities.crt_gauss): report those
    positions = np.linspace(0, size - 1, n_positions, endpoint=True, dtype=np.float32)
    placed = positions.astype(np.int64).astype(np.float32)
    sds = np.linspace(sd_min, sd_max, n_sizes, endpoint=True, dtype=np.float32)
    out = queue.Queue()
    find_prf_cpu(0, placed, placed, sds, np.asarray(responses, np.float32), models, "cython", out)
    _, x, y, sd, r2, _ = out.get()
    seconds = time.perf_counter() - start
    import pyprf

    np.savez(result_path, x=x, y=y, sd=sd, r2=r2, seconds=seconds, seconds_models=t_models,
             version=np.array(pyprf.__version__))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__.splitlines()[-1])
    main(sys.argv[1], sys.argv[2])
