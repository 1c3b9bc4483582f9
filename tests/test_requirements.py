"""The dependency pins: every direct pin agrees with constraints.txt, which pins everything."""

from __future__ import annotations

import re

from tests.harness import ROOT

PIN = re.compile(r"^(?P<name>[A-Za-z0-9._-]+)(?:\[[^\]]*\])?==(?P<version>\S+)$")


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()  # PEP 503


def _pins(file_name: str) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (ROOT / file_name).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        match = PIN.match(line)
        assert match, f"{file_name}: {line!r} is not pinned with =="
        pins[_normalized(match["name"])] = match["version"]
    return pins


def test_requirements_apply_the_constraints() -> None:
    assert "-c constraints.txt" in (ROOT / "requirements.txt").read_text().splitlines()


def test_every_direct_pin_matches_the_constraints() -> None:
    constraints = _pins("constraints.txt")
    for file_name in ("requirements.txt", "requirements-dev.txt", "requirements-tools.txt"):
        for name, version in _pins(file_name).items():
            assert constraints.get(name) == version, f"{file_name}: {name}=={version}; run hack/lock.sh"
