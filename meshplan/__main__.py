"""`python -m meshplan VERB ...`; see meshplan.cli."""

import os
import sys

from meshplan.cli import main

try:
    code = main()
    sys.stdout.flush()
except BrokenPipeError:
    # `meshplan show | head`: the reader left; point stdout at /dev/null so the final flush is quiet.
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    code = 0
sys.stderr.flush()
# Skip interpreter teardown: the Pulumi SDK leaves per-thread asyncio loops open, and collecting
# them at exit can print an "Exception ignored ... Invalid file descriptor" trace after a clean run.
os._exit(code)
