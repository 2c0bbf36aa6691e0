"""``run_processes`` in a child process of its own (it installs signal handlers and forks).

Usage: ``python tests/launch_child.py PLAN.json``, where the file holds ``{"grace": seconds,
"processes": [[label, role, argv], ...]}``; exits with what ``run_processes`` returns.
"""

import json
import sys

from brain2pix_gluon.launch import Process, run_processes

if __name__ == "__main__":
    with open(sys.argv[1]) as handle:
        plan = json.load(handle)
    processes = [Process(label, role, tuple(argv)) for label, role, argv in plan["processes"]]
    sys.exit(run_processes(processes, grace=plan["grace"]))
