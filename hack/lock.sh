#!/usr/bin/env bash
# Re-resolve every dependency from the direct pins in requirements*.txt, ignoring the current
# constraints.txt, and write the whole resolved set to constraints.txt. Run after changing a pin.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
grep -v '^-c ' requirements.txt >"$work/requirements.txt"
cp requirements-dev.txt requirements-tools.txt "$work/"
"${PYTHON:-python3}" -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check -r "$work/requirements-dev.txt"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$work/requirements-tools.txt"
{
  echo "# Every package the requirements resolve to, pinned, so each machine and every stack's"
  echo "# virtualenv installs the same versions (requirements.txt applies it with -c)."
  echo "# Written by hack/lock.sh; do not edit by hand."
  "$work/venv/bin/pip" freeze --disable-pip-version-check
} >constraints.txt
