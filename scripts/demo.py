"""The one-command demo (``make demo``), the same as ``brain2pix demo``: see
brain2pix_gluon/experiments/demo.py."""

import sys

from brain2pix_gluon.cli import main

if __name__ == "__main__":
    sys.exit(main(["demo", *sys.argv[1:]]))
