"""The whole mesh of one cluster: control plane, injection, addons and dashboards as one graph."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.addons import addon_group
from components.adoption import HandMade
from components.config import ISTIO_NAMESPACE, MeshConfig
from components.control_plane import ControlPlane
from components.dashboards import access
from components.gateway_api import GatewayApi
from components.generated_password import GeneratedPassword
from components.hardening import (
    GRAFANA_ADMIN_SECRET,
    GRAFANA_PASSWORD_KEY,
    KIALI_SIGNING_KEY_ITEM,
    KIALI_SIGNING_KEY_SECRET,
)
from components.injection import Injection, peer_authentication_api_version
from components.local_command import Command, restart_workloads

ROLLOUT_TIMEOUT_SECONDS = 300
# A generated Kiali signing key: `secrets.token_urlsafe` of 24 bytes is 32 characters, the longest
# key Kiali accepts (16, 24 or 32 bytes: KIALI_SIGNING_KEY_LENGTHS in components/config.py).
KIALI_SIGNING_KEY_BYTES = 24


def _kiali_config(objects: Sequence[Mapping[str, Any]]) -> str:
    """The `config.yaml` of Kiali's ConfigMap, as the stack deploys it."""
    for obj in objects:
        if obj["kind"] == "ConfigMap" and obj["metadata"]["name"] == "kiali":
            return str(obj.get("data", {}).get("config.yaml", ""))
    return ""


class Mesh(pulumi.ComponentResource):
    """Istio and its observability addons on the cluster whose provider arrives through `opts`."""

    def __init__(
        self,
        name: str,
        config: MeshConfig,
        addon_objects: Mapping[str, Sequence[Mapping[str, Any]]],
        *,
        grafana_admin_password: pulumi.Input[str] | None = None,
        kiali_signing_key: pulumi.Input[str] | None = None,
        gateway_api_objects: Sequence[Mapping[str, Any]] = (),
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("istio-mesh:index:Mesh", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        # The Gateway API CRDs (`gatewayApi`, on by default from Istio 1.22), which every istiod and
        # waypoint waits for. They are built before the control plane, whose constructor makes istiod,
        # and need nothing of it: the CRDs are cluster-scoped, and their guard's Check reads the
        # cluster claim itself, so another stack's cluster is refused before anything changes
        # whichever of the two Checks the engine runs first (components/gateway_api.py).
        self.gateway_api: GatewayApi | None = None
        if config.gateway_api is not None:
            self.gateway_api = GatewayApi(
                "gateway-api", config.gateway_api, gateway_api_objects, cluster=config.cluster, opts=child
            )

        self.control_plane = ControlPlane(
            "control-plane",
            config.istio,
            cluster=config.cluster,
            protect_crds=config.protect,
            environment=config.environment,
            hand_made=HandMade(
                adopt=config.adopt,
                addon_objects=tuple(obj for objects in addon_objects.values() for obj in objects),
                injected_namespaces=tuple(config.injection.namespaces),
            ),
            gateway_api=self.gateway_api,
            opts=child,
        )
        self.injection = Injection(
            "injection",
            config.injection,
            cluster=config.cluster,
            istio=config.istio,
            injector=self.control_plane.injector,
            mtls=config.mtls,
            node_agents=self.control_plane.node_agents,
            gateway_api=self.gateway_api,
            opts=child,
        )
        self.peer_authentication = self._mesh_mtls(config, child)
        # The Grafana admin password: a Secret of ours, so the value is a Pulumi secret end to end.
        # The stack's `grafanaAdminPassword`, or one generated once and kept in the stack's state.
        self.grafana_admin = None
        self.grafana_password: pulumi.Output[str] | None = None
        grafana_login = "grafana" in addon_objects and config.dashboard("grafana").auth == "password"
        if grafana_login:
            self.grafana_password, self.grafana_admin = self._stack_secret(
                GRAFANA_ADMIN_SECRET,
                GRAFANA_PASSWORD_KEY,
                grafana_admin_password,
                "grafana-admin-password",
                child,
            )
        # Kiali's login-token signing key, likewise: the stack's `kialiSigningKey`, or one generated once.
        # Every Kiali gets one, whatever its strategy, so upstream's shared key is never used
        # (components/hardening.py mounts this Secret where Kiali reads it).
        self.kiali_signing_key: pulumi.Output[str] | None = None
        self.kiali_key_secret = None
        if "kiali" in addon_objects:
            self.kiali_signing_key, self.kiali_key_secret = self._stack_secret(
                KIALI_SIGNING_KEY_SECRET,
                KIALI_SIGNING_KEY_ITEM,
                kiali_signing_key,
                "kiali-signing-key",
                child,
                bytes=KIALI_SIGNING_KEY_BYTES,
            )
        self.addons = [
            addon_group(
                addon,
                objects,
                namespace=self.control_plane.namespace,
                needs=self._addon_needs(addon),
                opts=child,
            )
            for addon, objects in addon_objects.items()
        ]

        # A changed login reaches the pods only when they restart: the Deployments' pod templates
        # don't change with their ConfigMap or Secret (upstream's `checksum/config` annotation stays
        # as shipped). Restart on a change, never on create.
        self.rollouts: list[Command] = []
        groups = dict(zip(addon_objects, self.addons, strict=True))
        if self.grafana_password is not None:
            # The password itself is the trigger: a Pulumi secret, encrypted in state like the Secret.
            self.rollouts.append(
                self._rollout("grafana", [self.grafana_password], groups["grafana"], config, child)
            )
        if "kiali" in groups and self.kiali_signing_key is not None:
            # Its config's digest, and the key itself (a secret, encrypted in state like the Secret).
            digest = hashlib.sha256(_kiali_config(addon_objects["kiali"]).encode()).hexdigest()
            triggers: list[pulumi.Input[str]] = [digest, self.kiali_signing_key]
            self.rollouts.append(self._rollout("kiali", triggers, groups["kiali"], config, child))

        # A protected stack's destroy must stop before it deletes anything: Pulumi refuses the
        # protected base release only when it reaches it, after istiod is gone, which leaves
        # istiod's validating webhook (failurePolicy Fail) pointing at a deleted Service and every
        # write of an *.istio.io object refused. The guard depends on the control plane, the
        # labels, the mesh-wide PeerAuthentication and the rollouts, so a destroy reaches it first, and it
        # is protected too.
        self.destroy_guard: Command | None = None
        if config.protect:
            self.destroy_guard = Command(
                "destroy-guard",
                timeout=60,
                opts=pulumi.ResourceOptions.merge(
                    child,
                    pulumi.ResourceOptions(
                        protect=True,
                        depends_on=[
                            self.control_plane,
                            self.injection,
                            *([self.peer_authentication] if self.peer_authentication else []),
                            *self.rollouts,
                        ],
                    ),
                ),
            )

        self.outputs: dict[str, Any] = {
            "istioVersion": config.istio.version,
            "profile": config.istio.profile,
            # With canary revisions: each control plane's version, and which one serves the default tag.
            **(
                {
                    "revisions": {r.name: r.version for r in config.istio.revisions},
                    "tags": dict(config.istio.tags),
                    "defaultRevision": config.istio.default_revision,
                }
                if config.istio.revisioned
                else {}
            ),
            "injectedNamespaces": list(config.injection.namespaces),
            **({"ambientNamespaces": list(config.injection.ambient)} if config.injection.ambient else {}),
            **(
                {"gatewayApi": {"version": config.gateway_api.version, "channel": config.gateway_api.channel}}
                if config.gateway_api is not None
                else {}
            ),
            "addons": list(addon_objects),
            "dashboards": {d.name: access(d, config.cluster) for d in config.dashboards},
            # `pulumi stack output grafanaAdminPassword --show-secrets`; masked everywhere else.
            **({"grafanaAdminPassword": self.grafana_password} if self.grafana_password is not None else {}),
        }
        self.register_outputs(self.outputs)

    def _mesh_mtls(
        self, config: MeshConfig, child: pulumi.ResourceOptions
    ) -> k8s.apiextensions.CustomResource | None:
        """Mesh-wide mutual TLS: the PeerAuthentication `default` in the root namespace applies to every
        workload (https://istio.io/latest/docs/reference/config/security/peer_authentication/).

        It waits for every injected namespace's restart and every gateway (and gateway restart), so
        in the `up` that first injects them, and in any `up` that restarts them, the mode changes only
        once their pods have sidecars: until then no PeerAuthentication exists and Istio's default,
        PERMISSIVE, applies (https://istio.io/latest/docs/tasks/security/authentication/mtls-migration/).
        On a destroy it goes first, before the labels and the uninject restarts, so plaintext is
        accepted again while the sidecars leave. Until this program's ControlPlane held it, hence the
        alias: existing stacks keep the same object, neither deleted nor created again.
        """
        if config.mtls is None:
            return None
        control_plane = self.control_plane
        return k8s.apiextensions.CustomResource(
            "mesh-mtls",
            api_version=peer_authentication_api_version(config.istio),
            kind="PeerAuthentication",
            metadata={"name": "default", "namespace": control_plane.namespace.metadata.name},
            spec={"mtls": {"mode": config.mtls}},
            opts=pulumi.ResourceOptions.merge(
                child,
                pulumi.ResourceOptions(
                    # The default revision validates it; other revisions coming and going leave it alone.
                    depends_on=[
                        control_plane.base,
                        control_plane.istiod,
                        *control_plane.gateways,
                        *control_plane.gateway_restarts,
                        *self.injection.labels,
                        *self.injection.restarts,
                    ],
                    aliases=[pulumi.Alias(parent=control_plane)],
                ),
            ),
        )

    def _stack_secret(
        self,
        secret: str,
        item: str,
        given: pulumi.Input[str] | None,
        generated: str,
        child: pulumi.ResourceOptions,
        **generate: int,
    ) -> tuple[pulumi.Output[str], k8s.core.v1.Secret]:
        """A login secret of the stack's: `given` from its config, or one generated once and kept in
        its state; a Pulumi secret end to end, in a Secret of istio-system whose one item holds it."""
        value = given if given is not None else GeneratedPassword(generated, opts=child, **generate).result
        secret_value = pulumi.Output.secret(value)
        resource = k8s.core.v1.Secret(
            f"{ISTIO_NAMESPACE}/{secret}",
            metadata={"name": secret, "namespace": self.control_plane.namespace.metadata.name},
            string_data={item: secret_value},
            opts=child,
        )
        return secret_value, resource

    @staticmethod
    def _rollout(
        addon: str,
        triggers: list[pulumi.Input[str]],
        group: pulumi.Resource,
        config: MeshConfig,
        child: pulumi.ResourceOptions,
    ) -> Command:
        return Command(
            f"{addon}-rollout",
            update=restart_workloads(
                config.cluster,
                ISTIO_NAMESPACE,
                names=[f"deployment/{addon}"],
                timeout=ROLLOUT_TIMEOUT_SECONDS,
            ),
            triggers=triggers,
            timeout=ROLLOUT_TIMEOUT_SECONDS + 60,
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[group])),
        )

    def _addon_needs(self, addon: str) -> list[pulumi.Resource]:
        """What an addon waits for besides istio-system; never istiod, so addons come up beside it."""
        if addon == "grafana" and self.grafana_admin is not None:
            return [self.grafana_admin]  # its Deployment reads the admin password Secret
        if addon == "kiali":
            # Kiali lists Istio's resources at start (https://kiali.io/docs/installation/): the CRDs
            # (the base release, or the command that applies them before 1.24) must be served. Its
            # Deployment mounts the signing key Secret.
            return [self.control_plane.base, *([self.kiali_key_secret] if self.kiali_key_secret else [])]
        return []
