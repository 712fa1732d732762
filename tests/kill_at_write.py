"""Run the specrobust command line, killed (SIGKILL, as by `kill -9`) at one of its atomic
writes: just before the rename that completes it, or just after. For tests/test_kills.py.

    KILL_AT=K KILL_WHEN=before|after python tests/kill_at_write.py ARGS...
    KILL_AT=0 python tests/kill_at_write.py ARGS...     # counts the writes (prints "writes N")
"""

import os
import signal
import sys

from specrobust.cli import main
from specrobust.files import storage

at, when = int(os.environ["KILL_AT"]), os.environ.get("KILL_WHEN", "before")
count = 0
_replace = os.replace


def replace(source, target, **directories):
    global count
    count += 1
    if count == at and when == "before":
        os.kill(os.getpid(), signal.SIGKILL)
    _replace(source, target, **directories)
    if count == at and when == "after":
        os.kill(os.getpid(), signal.SIGKILL)


storage.os.replace = replace  # storage.os is os: every rename of this process
code = main(sys.argv[1:])
if at == 0:
    print(f"writes {count}")
sys.exit(code)
