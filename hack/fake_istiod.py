"""Plays istiod's webhook certificate patcher on the local cluster, where no istiod really runs.

A real istiod of revision R watches every MutatingWebhookConfiguration labelled `istio.io/rev=R` and
writes its CA bundle into each of its webhooks whose name ends in `sidecar-injector.istio.io`
(istio/istio `pkg/webhooks/webhookpatch.go`, `patchMutatingWebhookConfig`; the suffix is
`webhookName` in `pilot/pkg/bootstrap/sidecarinjector.go`). An unrevisioned istiod is revision
`default`. On the kwok cluster of hack/cluster.sh nothing does, so a step that waits for a bundle
(the revision tags' copy, components/revision_tags.py) would wait until its timeout.

While active, `FakeIstiod` does the same for every revision whose istiod Deployment exists in
istio-system (`istiod-R`, or `istiod` for `default`), with a fixed fake PEM bundle, polling (istiod
watches; a poll every `interval` seconds is close enough here). Like istiod, it writes only webhooks
whose bundle differs, and it never creates or deletes anything. It uses only the standard library
and kubectl, with an explicit `--kubeconfig` and `--context`.

    with FakeIstiod(kubeconfig, context):
        ...  # pulumi up

    python hack/fake_istiod.py --kubeconfig FILE --context NAME [--once]
"""

from __future__ import annotations

import argparse
import base64
import json
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import Any

ISTIO_NAMESPACE = "istio-system"
REVISION_LABEL = "istio.io/rev"
INJECTOR_SUFFIX = "sidecar-injector.istio.io"
# Not a certificate anyone can use: the API server is never asked to trust it here (webhook
# admission is off on the local cluster); it only has to be there, and the same on every write.
FAKE_CA_PEM = b"-----BEGIN CERTIFICATE-----\nZmFrZS1pc3Rpb2QtY2EtZm9yLXRoZS1sb2NhbC1jbHVzdGVy\n-----END CERTIFICATE-----\n"
FAKE_CA_BUNDLE = base64.b64encode(FAKE_CA_PEM).decode()
FIELD_MANAGER = "fake-istiod"


def istiod_deployment(revision: str) -> str:
    """The istiod chart's Deployment for a revision (`default`: the unrevisioned one)."""
    return "istiod" if revision == "default" else f"istiod-{revision}"


def patches(
    configurations: Sequence[dict[str, Any]], deployments: set[str]
) -> dict[str, list[dict[str, Any]]]:
    """JSON patches (by configuration name) that give each injector webhook of a running revision the bundle."""
    result: dict[str, list[dict[str, Any]]] = {}
    for configuration in configurations:
        revision = configuration["metadata"].get("labels", {}).get(REVISION_LABEL)
        if revision is None or istiod_deployment(revision) not in deployments:
            continue
        operations = [
            # `test` first: a webhook list that changed since it was read refuses the patch, as
            # istiod's update with a stale resourceVersion is refused; the next poll tries again.
            {"op": "test", "path": f"/webhooks/{index}/name", "value": webhook["name"]}
            for index, webhook in enumerate(configuration.get("webhooks", []))
        ]
        changes = [
            {"op": "add", "path": f"/webhooks/{index}/clientConfig/caBundle", "value": FAKE_CA_BUNDLE}
            for index, webhook in enumerate(configuration.get("webhooks", []))
            if webhook["name"].endswith(INJECTOR_SUFFIX)
            and webhook.get("clientConfig", {}).get("caBundle") != FAKE_CA_BUNDLE
        ]
        if changes:
            result[configuration["metadata"]["name"]] = operations + changes
    return result


class FakeIstiod:
    """A context manager: patch bundles in a background thread until the block ends."""

    def __init__(
        self, kubeconfig: str, context: str, *, interval: float = 0.2, kubectl: str = "kubectl"
    ) -> None:
        self.kubeconfig, self.context, self.interval, self.kubectl_binary = (
            kubeconfig,
            context,
            interval,
            kubectl,
        )
        self.patched: list[str] = []  # every configuration written, in order (for the scenario's checks)
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fake-istiod", daemon=True)

    def kubectl(self, *args: str) -> subprocess.CompletedProcess[str]:
        argv = [self.kubectl_binary, "--kubeconfig", self.kubeconfig, "--context", self.context, *args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)

    def poll_once(self) -> list[str]:
        """One round: read the webhooks and the istiod Deployments, patch what needs it; the names patched."""
        listed = self.kubectl(
            "get", "mutatingwebhookconfiguration", f"--selector={REVISION_LABEL}", "--output=json"
        )
        running = self.kubectl(
            "get", "deployment", "--namespace", ISTIO_NAMESPACE, "--output=jsonpath={.items[*].metadata.name}"
        )
        if listed.returncode != 0 or running.returncode != 0:
            self.errors.append((listed.stderr or running.stderr).strip())
            return []
        done: list[str] = []
        todo = patches(json.loads(listed.stdout)["items"], set(running.stdout.split()))
        for name, operations in sorted(todo.items()):
            result = self.kubectl(
                "patch",
                "mutatingwebhookconfiguration",
                name,
                "--type=json",
                f"--field-manager={FIELD_MANAGER}",
                f"--patch={json.dumps(operations)}",
            )
            if result.returncode == 0:
                done.append(name)
            else:  # gone or changed meanwhile: the next poll sees the new state
                self.errors.append(result.stderr.strip())
        self.patched.extend(done)
        return done

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll_once()
            self._stop.wait(self.interval)

    def __enter__(self) -> FakeIstiod:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--context", required=True)
    parser.add_argument("--once", action="store_true", help="one round, then exit")
    parser.add_argument("--interval", type=float, default=0.2)
    args = parser.parse_args(argv)
    fake = FakeIstiod(args.kubeconfig, args.context, interval=args.interval)
    if args.once:
        for name in fake.poll_once():
            print(f"patched {name}", flush=True)
        for error in fake.errors:
            print(f"error: {error}", file=sys.stderr)
        return 1 if fake.errors else 0
    try:
        with fake:
            threading.Event().wait()  # until interrupted
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
