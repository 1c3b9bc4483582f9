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
# Skip interpreter teardown: freeing the ~100 000 objects the SDK's modules leave on the heap takes
# about 100 ms (bench/preview.py) and produces nothing, and collecting asyncio loops the SDK leaves
# open could print an "Exception ignored ... Invalid file descriptor" trace after a clean run.
os._exit(code)
