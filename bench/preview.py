"""Benchmark: a whole-process mock-engine preview of a stack against the import-only floor.

The floor is a process that imports the SDK modules the program uses and nothing else; the issue's
budget is that evaluating the program adds under 15 % to it. Run: `python bench/preview.py`.
Each variant runs in a fresh interpreter, alternating, and the median of the runs is reported.

What is compared, so that the two processes are comparable:
- Both end as `python -m meshplan` does, flushing and then `os._exit`. Interpreter teardown (freeing
  the ~100 000 objects the SDK's modules leave on the heap) is no part of what a preview produces;
  it is measured on its own and printed below the result, never left out silently.
- The floor loads every module the preview loads from site-packages (checked before measuring:
  the run stops if the preview needs an SDK module the floor does not import).
- Both use compiled bytecode. With PYTHONDONTWRITEBYTECODE set, the program's own modules would be
  compiled from source on every run while the SDK's come precompiled from site-packages, so every
  process here shares one private bytecode cache (PYTHONPYCACHEPREFIX), warmed before measuring.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "addons"

# pulumi_kubernetes loads its modules lazily, on first attribute access: touch the classes the
# dev stack declares so the floor pays for the same modules the program does, and no more (both
# directions are checked before measuring). `meta.v1` holds ObjectMeta: the SDK loads it to resolve
# the type of every resource's `metadata`.
FLOOR = """
import pulumi, pulumi.runtime, yaml
from google.protobuf import json_format
import pulumi_kubernetes as k8s
import pulumi.dynamic
(k8s.Provider, k8s.helm.v3.Release, k8s.helm.v3.RepositoryOptsArgs, pulumi.dynamic.Resource)
(k8s.core.v1.Namespace, k8s.core.v1.NamespacePatch, k8s.yaml.v2.ConfigGroup, k8s.meta.v1.ObjectMetaArgs)
"""

PREVIEW = """
import sys
from pathlib import Path
root = Path({root!r})
sys.path.insert(0, str(root))
from meshplan.engine import render
from meshplan.stacks import load_stack
stack = load_stack(root, {stack!r}, overrides={overrides!r})
result = render(root, {stack!r}, stack.values, secret_keys=stack.secret_keys, preview=True)
assert result.error is None, result.error
assert len(result.registrations) > 20
"""

# How `python -m meshplan` ends (meshplan/__main__.py): no interpreter teardown.
EXIT = """
import os as _os, sys as _sys
_sys.stdout.flush()
_sys.stderr.flush()
_os._exit(0)
"""

# Printed by a process about to exit: the modules it loaded from site-packages. Modules that
# pulumi_kubernetes registered lazily but never loaded are skipped without touching them.
_SITE_MODULES = """
import json as _json, sys as _sys, sysconfig as _sysconfig
_site = _sysconfig.get_paths()["purelib"]
_loaded = []
for _name, _module in list(_sys.modules.items()):
    if type(_module).__name__ == "_LazyModule":
        continue
    _spec = getattr(_module, "__spec__", None)
    if _spec is not None and (_spec.origin or "").startswith(_site):
        _loaded.append(_name)
print(_json.dumps(sorted(_loaded)))
"""


@contextlib.contextmanager
def bench_env() -> Iterator[dict[str, str]]:
    """The environment for every measured process: one private bytecode cache, writable."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    with tempfile.TemporaryDirectory(prefix="meshplan-bench-pycache-") as cache:
        env["PYTHONPYCACHEPREFIX"] = cache
        yield env


def run(argv: list[str], env: Mapping[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, check=False, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:5])} ... exited {done.returncode}")
    return elapsed


def medians(commands: Mapping[str, list[str]], env: Mapping[str, str], runs: int) -> dict[str, float]:
    """Each command's median time: every one run once to fill the bytecode and OS file caches, then
    `runs` rounds that alternate between them, so a slow minute weighs on all of them alike."""
    for argv in commands.values():
        run(argv, env)
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, argv in commands.items():
            samples[name].append(run(argv, env))
    return {name: statistics.median(times) for name, times in samples.items()}


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def site_modules(code: str, env: Mapping[str, str]) -> set[str]:
    done = subprocess.run(
        python(code + _SITE_MODULES), check=True, cwd=ROOT, env=env, capture_output=True, text=True
    )
    return set(json.loads(done.stdout.splitlines()[-1]))


def check_floor(preview: str, env: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """SDK modules only the preview loads, and only the floor loads: like for like means neither."""
    preview_modules, floor_modules = site_modules(preview, env), site_modules(FLOOR, env)
    return sorted(preview_modules - floor_modules), sorted(floor_modules - preview_modules)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stack", default="dev")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--budget", type=float, default=0.15, help="allowed overhead over the floor")
    args = parser.parse_args()
    version_dir = "app-labels" if args.stack == "dev" else "k8s-labels"
    overrides = [f"addons.source={FIXTURES / version_dir}"]
    if args.stack != "dev":
        overrides.append("grafanaAdminPassword=x")  # a secret the repository does not hold
    preview = PREVIEW.format(root=str(ROOT), stack=args.stack, overrides=overrides)
    variants = {
        "floor": python(FLOOR + EXIT),
        "preview": python(preview + EXIT),
        "floor, normal exit": python(FLOOR),
        "preview, normal exit": python(preview),
    }
    with bench_env() as env:
        missing, extra = check_floor(preview, env)
        if missing or extra:
            if missing:
                print(f"the floor does not import these modules the preview loads: {', '.join(missing)}")
            if extra:
                print(f"the floor imports these modules the preview never loads: {', '.join(extra)}")
            return 2
        median = medians(variants, env, args.runs)
    floor, total = median["floor"], median["preview"]
    overhead = total / floor - 1
    print(f"floor (imports only): {floor * 1000:7.1f} ms  (median of {args.runs})")
    print(f"preview ({args.stack}):        {total * 1000:7.1f} ms  (median of {args.runs})")
    print(f"overhead:             {overhead * 100:6.1f} %  (budget {args.budget * 100:.0f} %)")
    teardown_floor = median["floor, normal exit"] - floor
    teardown_preview = median["preview, normal exit"] - total
    print(
        f"not included above, interpreter teardown at a normal exit: floor {teardown_floor * 1000:+.0f} ms, "
        f"preview {teardown_preview * 1000:+.0f} ms "
        f"(with it: {(median['preview, normal exit'] / median['floor, normal exit'] - 1) * 100:.1f} % overhead)"
    )
    return 0 if overhead <= args.budget else 1


if __name__ == "__main__":
    raise SystemExit(main())
