"""Experiment 1: Brain2Pix on synthetic input (RF-sampled target pixels).

    python scripts/run_synthetic.py --out OUT [--data PREPARED_DIR] [--profile paper|quick|science]
        [--weights auto|pretrained|random|PATH] [--gpus 0] [--variant NAME] [--no-tables]
        [section.key=value ...]

The same as `brain2pix experiment synthetic ...`. OUT (the results root) is
required. Without --data the embedded simulated dataset is simulated and
prepared once (cached and shared by the seven scripts). Finished steps are skipped and interrupted
training resumes when run again. --variant runs one row only (one job each on a cluster; README,
"The seven experiments and the notebooks").
"""

import sys

from brain2pix_gluon.cli import main

if __name__ == "__main__":
    sys.exit(main(["experiment", "synthetic", *sys.argv[1:]]))
