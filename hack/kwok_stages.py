"""kwok's own default stages, with pods made Ready only after a delay: `python hack/kwok_stages.py MS`.

kwok marks a scheduled pod Running and Ready at once by default, so a Deployment is available the
moment its pods are scheduled and no wait costs what it costs on a real cluster. kwokctl uses its
default stages only when it is given none, so this prints the same set (read from the
sigs.k8s.io/kwok module of hack/toolchain.versions in the Go module cache, the files kwokctl
embeds) with a fixed `delay` on the pod-ready stage, for `kwokctl create cluster --config`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
STAGES = (
    "node/fast/node-initialize.yaml",
    "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "pod/fast/pod-ready.yaml",
    "pod/fast/pod-complete.yaml",
    "pod/fast/pod-delete.yaml",
)


def kwok_module_dir() -> Path:
    versions = dict(
        line.split("=", 1)
        for line in (HERE / "toolchain.versions").read_text().splitlines()
        if line and not line.startswith("#")
    )
    listed = subprocess.run(
        ["go", "mod", "download", "-json", f"sigs.k8s.io/kwok@{versions['KWOK_VERSION']}"],
        capture_output=True,
        text=True,
        check=True,
        env={"GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local", **_env()},
    ).stdout
    return Path(json.loads(listed)["Dir"])


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k not in ("GOFLAGS", "GOTOOLCHAIN")}


def stages(pod_ready_delay_ms: int) -> list[dict]:
    root = kwok_module_dir() / "kustomize" / "stage"
    documents = []
    for relative in STAGES:
        stage = yaml.safe_load((root / relative).read_text())
        if stage["metadata"]["name"] == "pod-ready":
            stage["spec"]["delay"] = {"durationMilliseconds": pod_ready_delay_ms}
        documents.append(stage)
    return documents


if __name__ == "__main__":
    yaml.safe_dump_all(stages(int(sys.argv[1])), sys.stdout, sort_keys=False)
