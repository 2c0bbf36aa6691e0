"""Experiment 3: Brain2Pix LearnedRF on fMRI (Tables 1-2 rows, Fig 4).

    python scripts/run_learned_rf.py --out OUT [--data PREPARED_DIR] [--profile paper|quick|science]
        [--weights auto|pretrained|random|PATH] [--gpus 0] [--variant NAME] [--no-tables]
        [section.key=value ...]

The same as `brain2pix experiment learned_rf ...`. OUT (the results root) is
required. Without --data the embedded simulated dataset is simulated and
prepared once (cached and shared by the seven scripts). Finished steps are skipped and interrupted
training resumes when run again. --variant runs one row only (one job each on a cluster; README,
"The seven experiments and the notebooks").
"""

import sys

from brain2pix_gluon.cli import main

if __name__ == "__main__":
    sys.exit(main(["experiment", "learned_rf", *sys.argv[1:]]))
