"""`python -m meshplan VERB ...`; see meshplan.cli."""

from meshplan.cli import run

run()
