"""A password generated once per stack and kept in its state as a Pulumi secret.

A Pulumi dynamic resource, for the logins a stack needs but doesn't set (Grafana's admin password):
`create` draws it from the `secrets` module, and nothing regenerates it afterwards, so a second
`pulumi up` changes nothing. `result` is an additional secret output: the engine encrypts it in
state and masks it in every preview, diff and output. Read it with
`pulumi stack output grafanaAdminPassword --show-secrets`.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

import pulumi
import pulumi.dynamic

# 32 URL-safe characters: 192 bits.
DEFAULT_BYTES = 24


class GeneratedPasswordProvider(pulumi.dynamic.ResourceProvider):
    """Draws the password at create; a new `bytes` replaces it, nothing else touches it."""

    def create(self, props: dict[str, Any]) -> pulumi.dynamic.CreateResult:
        password = secrets.token_urlsafe(int(props["bytes"]))
        # The ID must not reveal the password: a hash of a hash, truncated.
        digest = hashlib.sha256(hashlib.sha256(password.encode()).digest()).hexdigest()
        return pulumi.dynamic.CreateResult(
            id_=digest[:16], outs={"bytes": props["bytes"], "result": password}
        )

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.DiffResult:
        changed = olds.get("bytes") != news.get("bytes")
        return pulumi.dynamic.DiffResult(
            changes=changed, replaces=["bytes"] if changed else [], delete_before_replace=False
        )


class GeneratedPassword(pulumi.dynamic.Resource, module="istio-mesh", name="GeneratedPassword"):
    """`result` is the password, a Pulumi secret (type `pulumi-python:dynamic/istio-mesh:GeneratedPassword`)."""

    result: pulumi.Output[str]

    def __init__(self, name: str, *, bytes: int = DEFAULT_BYTES, opts: pulumi.ResourceOptions | None = None):
        super().__init__(
            GeneratedPasswordProvider(),
            name,
            {"bytes": bytes, "result": None},
            pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["result"])),
        )
