"""The one-command demo (``make demo``): see brain2pix_gluon/demo.py."""

import sys

from brain2pix_gluon.demo import main

if __name__ == "__main__":
    sys.exit(main())
