"""``brain2pix`` in a child process, with the hooks the reliability tests need.

Usage: ``python tests/cli_child.py ARGS...`` (the arguments of ``brain2pix``). Environment:

* ``B2P_BLIND_FREE_SPACE=1``: the free-space check sees a huge empty disk, as when another
  writer fills the disk after the check;
* ``B2P_PAUSE=module:Qualified.name`` with ``B2P_READY=FILE`` and ``B2P_GO=FILE``: when that
  function is first called, create READY and wait (up to 60 s) until GO exists, then go on; the
  parent signals or starts a rival process meanwhile.

A child that segfaults (what a full disk did to HDF5) cannot take the test process with it.
"""

import collections
import importlib
import os
import shutil
import sys
import time


def _pause(spec, ready, go):
    module_name, _, qualname = spec.partition(":")
    owner = importlib.import_module(module_name)
    *path, name = qualname.split(".")
    for part in path:
        owner = getattr(owner, part)
    original = getattr(owner, name)
    state = {"paused": False}

    def paused(*args, **kwargs):
        if not state["paused"]:
            state["paused"] = True
            open(ready, "w").close()
            deadline = time.time() + 60
            while not os.path.exists(go) and time.time() < deadline:
                time.sleep(0.05)
        return original(*args, **kwargs)

    setattr(owner, name, paused)


def run():
    if os.environ.get("B2P_BLIND_FREE_SPACE"):
        usage = collections.namedtuple("usage", "total used free")
        shutil.disk_usage = lambda path: usage(1 << 50, 0, 1 << 50)
    if os.environ.get("B2P_PAUSE"):
        _pause(os.environ["B2P_PAUSE"], os.environ["B2P_READY"], os.environ["B2P_GO"])
    from brain2pix_gluon.cli import main

    return main()       # as the command does: arguments from sys.argv


if __name__ == "__main__":
    sys.exit(run())
