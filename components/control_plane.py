"""The control plane: istio-system, the CRDs and `base` chart, istiod per revision, tags, gateways."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.adoption import Adoption, HandMade
from components.cluster import kubectl
from components.cluster_claim import ClusterClaim
from components.config import (
    ISTIO_NAMESPACE,
    NODE_AGENT_DAEMONSETS,
    ClusterConfig,
    IstioConfig,
    parse_version,
)
from components.local_command import Command, restart_workloads
from components.release_recovery import ReleaseRecovery
from components.revision_tags import (
    DEFAULT_TAG,
    copy_ca_bundle_command,
    legacy_injector_command,
    tag_webhook,
    webhook_name,
)
from components.upgrade_path import UpgradePath
from components.values import (
    base_values,
    cni_values,
    gateway_values,
    gateway_version,
    istiod_values,
    ztunnel_values,
)

ENVIRONMENT_LABEL = "istio-mesh/environment"

# Helm's own default (300 s) is too short for a first istiod pull on a cold node, and a hung
# LoadBalancer should fail the update rather than block it for an hour.
BASE_TIMEOUT_SECONDS = 300
ISTIOD_TIMEOUT_SECONDS = 600
GATEWAY_TIMEOUT_SECONDS = 600
# istio-cni and ztunnel are DaemonSets: Helm waits for a pod on every node (a rolling update of a
# large cluster's nodes one at a time), so they get longer than istiod.
NODE_AGENT_TIMEOUT_SECONDS = 900
# Applying the CRDs, and restarting a gateway then waiting for its rollout.
COMMAND_TIMEOUT_SECONDS = 600
ROLLOUT_TIMEOUT_SECONDS = 300

# Until 1.24 the base chart kept its CRDs in `crds/`, which Helm installs once and never upgrades
# (https://helm.sh/docs/chart_best_practices/custom_resource_definitions/); from 1.24 they are
# templates that `helm upgrade` updates (https://istio.io/latest/news/releases/1.24.x/announcing-1.24/upgrade-notes/).
FIRST_TEMPLATED_CRDS = (1, 24, 0)
CRD_FIELD_MANAGER = "istio-mesh"
BASE_RELEASE = "istio-base"
# Ambient mode's node agents: the `cni` chart's release, then the `ztunnel` chart's.
CNI_RELEASE, ZTUNNEL_RELEASE = NODE_AGENT_DAEMONSETS


def crd_apply_command(istio: IstioConfig, cluster: ClusterConfig) -> str:
    """Apply the base chart's `crds/` of `istio.crd_version` with server-side apply.

    Server-side apply creates the CRDs on a fresh cluster and takes over the ones an earlier
    `helm install` left behind (Helm does not own `crds/` objects), so both paths converge.
    """
    repository = istio.chart_repository
    if repository.startswith("oci://"):
        show = ["helm", "show", "crds", f"{repository.rstrip('/')}/base", "--version", istio.crd_version]
    else:
        show = ["helm", "show", "crds", "base", "--repo", repository, "--version", istio.crd_version]
    apply = kubectl(
        cluster,
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager",
        CRD_FIELD_MANAGER,
        "-f",
        "-",
    )
    return f"set -o pipefail; {shlex.join(show)} | {apply}"


def chart_source(repository: str) -> Callable[[str], dict[str, Any]]:
    """How a Release names chart `name` of `repository`: `chart` and, for HTTP(S), `repositoryOpts`.

    An OCI registry serves no index.yaml, so the provider must get the full `oci://.../<name>` as
    the chart and no repository, or it looks for an index that isn't there (pulumi-kubernetes
    `provider/pkg/provider/helm_release.go`, `resolveChartName`: only a chart whose own name starts
    with `oci://` is pulled from a registry).
    """
    if repository.startswith("oci://"):
        return lambda name: {"chart": f"{repository.rstrip('/')}/{name}"}
    options = k8s.helm.v3.RepositoryOptsArgs(repo=repository)
    return lambda name: {"chart": name, "repository_opts": options}


def crd_adopt_command(cluster: ClusterConfig, release: str, namespace: str) -> str:
    """Mark every Istio CRD as the base release's, so a 1.24+ base chart adopts the ones that exist.

    CRDs applied before 1.24 (by `crd_apply_command`, or a `helm install` of an older base chart,
    which never owns `crds/`) carry no Helm ownership, and Helm refuses to install a template over
    them ("exists and cannot be imported into the current release"). Release's `takeOwnership`
    would adopt them, but providers before it existed drop the field silently. This is Istio's
    documented one-time migration (istio/istio `releasenotes/notes/53318.yaml`): the
    `app.kubernetes.io/managed-by=Helm` label and the `meta.helm.sh/release-name` and
    `-namespace` annotations. It is idempotent, and on a fresh cluster it does nothing.
    """
    listed = kubectl(cluster, "get", "crd", "--output=name")
    istio_crds = "awk '/[.]istio[.]io$/'"
    # kubectl wants the resource before the label, so xargs puts each name in place of `{}`.
    label = kubectl(cluster, "label", "--overwrite", "{}", "app.kubernetes.io/managed-by=Helm")
    annotate = kubectl(
        cluster,
        "annotate",
        "--overwrite",
        "{}",
        f"meta.helm.sh/release-name={release}",
        f"meta.helm.sh/release-namespace={namespace}",
    )
    return (
        f"set -eo pipefail; {listed} | {istio_crds} | xargs --no-run-if-empty --replace {label}; "
        f"{listed} | {istio_crds} | xargs --no-run-if-empty --replace {annotate}"
    )


class ControlPlane(pulumi.ComponentResource):
    """istio-system, then CRDs -> base -> istiod (one per revision) -> revision tags -> gateways.

    With `istio.dataplane: ambient`, then istio-cni -> ztunnel, after the default revision's istiod.
    `gateway_api`, when given, is the Gateway API CRDs, which every istiod waits for: istiod serves
    Gateway API resources (waypoints among them) only for the kinds it finds served.
    """

    def __init__(
        self,
        name: str,
        istio: IstioConfig,
        *,
        cluster: ClusterConfig,
        protect_crds: bool,
        environment: str,
        hand_made: HandMade | None = None,
        gateway_api: pulumi.Resource | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("istio-mesh:index:ControlPlane", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self._istio = istio
        source = chart_source(istio.chart_repository)

        def after(*resources: pulumi.Resource) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=list(resources)))

        # Each Release waits for its ReleaseRecovery, which rolls back a release an interrupted `up`
        # left pending, so that Helm lets the next upgrade through (components/release_recovery.py).
        self.recoveries: list[ReleaseRecovery] = []

        def release_after(release_name: str, *resources: pulumi.Resource) -> pulumi.ResourceOptions:
            recovery = ReleaseRecovery(
                release_name, namespace=ISTIO_NAMESPACE, cluster=cluster, opts=after(*resources)
            )
            self.recoveries.append(recovery)
            return after(*resources, recovery)

        # First of all: this stack's claim on the cluster, whose Check refuses a cluster that another
        # stack owns before anything changes (components/cluster_claim.py).
        self.claim = ClusterClaim(
            "cluster-claim", owner=f"{pulumi.get_project()}/{pulumi.get_stack()}", cluster=cluster, opts=child
        )
        # Then a hand-made installation in the way is refused, or with `adopt` handed over, before
        # anything changes (components/adoption.py).
        self.adoption = Adoption(
            "adoption",
            cluster=cluster,
            istio=istio,
            hand_made=hand_made or HandMade(),
            opts=after(self.claim),
        )
        # Then, and everything of the control plane waits for it: a version that skips too many
        # minors is refused in preview, before anything changes.
        self.upgrade_path = UpgradePath(
            "istio-upgrade-path",
            version=istio.crd_version,
            allow_skip=istio.allow_minor_skip,
            opts=after(self.claim, self.adoption),
        )
        self.namespace = k8s.core.v1.Namespace(
            ISTIO_NAMESPACE,
            metadata={"name": ISTIO_NAMESPACE, "labels": {ENVIRONMENT_LABEL: environment}},
            opts=after(self.upgrade_path),
        )
        namespace = self.namespace.metadata.name

        # The CRDs always lead: the base chart is at the newest version any control plane runs.
        templated_crds = parse_version(istio.crd_version) >= FIRST_TEMPLATED_CRDS
        self.crds: Command | None = None
        if templated_crds:
            adopt = crd_adopt_command(cluster, BASE_RELEASE, ISTIO_NAMESPACE)
            self.crds = Command(
                "istio-crds-adopt",
                create=adopt,
                # Again before each base upgrade: cheap, and it covers CRDs applied meanwhile by hand.
                update=adopt,
                triggers=[istio.crd_version],
                timeout=COMMAND_TIMEOUT_SECONDS,
                opts=after(self.namespace),
            )
        else:
            apply_crds = crd_apply_command(istio, cluster)
            self.crds = Command(
                "istio-crds",
                create=apply_crds,
                update=apply_crds,
                triggers=[istio.crd_version, istio.chart_repository],
                timeout=COMMAND_TIMEOUT_SECONDS,
                opts=after(self.namespace),
            )
        self.base = k8s.helm.v3.Release(
            BASE_RELEASE,
            name=BASE_RELEASE,
            **source("base"),
            version=istio.crd_version,
            namespace=namespace,
            values=base_values(istio),
            timeout=BASE_TIMEOUT_SECONDS,
            # Before 1.24 the CRDs are ours (above); from 1.24 the chart's templates adopt the CRDs an
            # older install created: `istio-crds-adopt` marks them as this release's first, and
            # `takeOwnership` does the same on providers that know it.
            skip_crds=None if templated_crds else True,
            take_ownership=True if templated_crds else None,
            # Deleting this release deletes Istio's CRDs and with them every VirtualService,
            # Gateway and policy in the cluster.
            opts=pulumi.ResourceOptions.merge(
                release_after(BASE_RELEASE, *([self.crds] if self.crds else [])),
                pulumi.ResourceOptions(protect=protect_crds),
            ),
        )

        # One istiod per revision, or a single unrevisioned one (key "").
        self.istiods: dict[str, k8s.helm.v3.Release] = {}
        self._default_istiod = istio.default_revision or ""
        for revision in istio.revisions or (None,):
            release_name = f"istiod-{revision.name}" if revision else "istiod"
            self.istiods[revision.name if revision else ""] = k8s.helm.v3.Release(
                release_name,
                name=release_name,
                **source("istiod"),
                version=revision.version if revision else istio.version,
                namespace=namespace,
                values=istiod_values(istio, revision),
                timeout=ISTIOD_TIMEOUT_SECONDS,
                opts=release_after(release_name, self.base, *([gateway_api] if gateway_api else [])),
            )

        # Tags (and the default tag for istio-injection=enabled) wait for their revision's istiod.
        self.tags: dict[str, k8s.admissionregistration.v1.MutatingWebhookConfiguration] = {}
        tags = dict(istio.tags)
        if istio.default_revision:
            tags[DEFAULT_TAG] = istio.default_revision
        # Each tag's webhook gets its revision's caBundle copied in before anything admits pods through
        # it (components/revision_tags.py); again when the tag moves to another revision.
        self.tag_bundles: dict[str, Command] = {}
        for tag, revision_name in sorted(tags.items()):
            webhook = tag_webhook(tag, revision_name)
            self.tags[tag] = k8s.admissionregistration.v1.MutatingWebhookConfiguration(
                webhook_name(tag),
                metadata=webhook["metadata"],
                webhooks=webhook["webhooks"],
                opts=after(self.istiods[revision_name]),
            )
            copy_bundle = copy_ca_bundle_command(cluster, tag, revision_name)
            self.tag_bundles[tag] = Command(
                f"{webhook_name(tag)}-ca-bundle",
                create=copy_bundle,
                update=copy_bundle,
                triggers=[revision_name],
                timeout=COMMAND_TIMEOUT_SECONDS,
                opts=after(self.tags[tag]),
            )

        # A stack that moves from an unrevisioned istiod to revisions keeps the old `istiod` release
        # until the end of that `up` (Pulumi deletes what left the program after every create and
        # update), and its injector matches the same pods as the default tag. The API server calls
        # mutating webhook configurations in the order of their names (k8s.io/apiserver
        # `pkg/admission/configuration/mutating_webhook_manager.go`), so the old
        # `istio-sidecar-injector` comes after `istio-revision-tag-default` and re-injects the pod
        # (istio/istio `pkg/kube/inject/inject.go`, `stripPod`): the restart in that `up` would give
        # every pod the old proxy, whose istiod is deleted moments later. So, as `istioctl tag set
        # default` does, the old injector is switched off once the default tag can admit pods, and
        # everything the default tag injects waits for that. It patches only the selectors of an
        # object the old release owns and deletes with it; on a fresh stack there is none, and it
        # does nothing. Deleted (the stack goes back to a single istiod, or a destroy), it turns the
        # old injector back on, if it is still there.
        self.legacy_injector: Command | None = None
        if istio.default_revision:
            self.legacy_injector = Command(
                "legacy-injector-deactivate",
                create=legacy_injector_command(cluster, active=False),
                delete=legacy_injector_command(cluster, active=True),
                timeout=COMMAND_TIMEOUT_SECONDS,
                opts=after(self.tag_bundles[DEFAULT_TAG]),
            )

        # Gateway pods are injected by istiod's webhook, so they wait for the one that injects them.
        self.gateways: list[k8s.helm.v3.Release] = []
        self.gateway_restarts: list[Command] = []
        for gateway in istio.gateways:
            release = k8s.helm.v3.Release(
                gateway.release_name,
                name=gateway.release_name,
                **source("gateway"),
                version=gateway_version(istio, gateway),
                namespace=namespace,
                values=gateway_values(istio, gateway),
                timeout=GATEWAY_TIMEOUT_SECONDS,
                opts=release_after(gateway.release_name, self.injector(gateway.tag)),
            )
            self.gateways.append(release)
            if istio.revisioned:
                # A moved tag changes nothing in the release; restart so the pods get the new proxy.
                revision = istio.revision(gateway.tag) if gateway.tag else istio.default
                assert revision is not None  # validated: revisions always have a default
                # A new release starts its pods with the right proxy: only a later move restarts.
                self.gateway_restarts.append(
                    Command(
                        f"{gateway.release_name}-restart",
                        update=restart_workloads(
                            cluster,
                            ISTIO_NAMESPACE,
                            names=[f"deployment/{gateway.release_name}"],
                            timeout=ROLLOUT_TIMEOUT_SECONDS,
                        ),
                        triggers=[revision.name, revision.version],
                        timeout=COMMAND_TIMEOUT_SECONDS,
                        opts=after(release),
                    )
                )

        # Ambient mode, in Istio's order (https://istio.io/latest/docs/ambient/install/helm/): istio-cni,
        # then ztunnel, after istiod. One of each per cluster, upgraded in place whatever the revisions,
        # at the version of the default revision's istiod (`node_agent_version`, held within a minor of
        # every revision by components/config.py); so they wait for that istiod, which upgrades first,
        # as Istio's ambient upgrade asks (https://istio.io/latest/docs/ambient/upgrade/helm/).
        self.cni: k8s.helm.v3.Release | None = None
        self.ztunnel: k8s.helm.v3.Release | None = None
        if istio.ambient:

            def node_agent(
                release_name: str, chart: str, values: dict[str, Any], after: pulumi.Resource
            ) -> k8s.helm.v3.Release:
                return k8s.helm.v3.Release(
                    release_name,
                    name=release_name,
                    **source(chart),
                    version=istio.node_agent_version,
                    namespace=namespace,
                    values=values,
                    timeout=NODE_AGENT_TIMEOUT_SECONDS,
                    opts=release_after(release_name, after),
                )

            self.cni = node_agent(CNI_RELEASE, "cni", cni_values(istio), self.istiod)
            self.ztunnel = node_agent(ZTUNNEL_RELEASE, "ztunnel", ztunnel_values(istio), self.cni)

        self.register_outputs(
            {
                "namespace": namespace,
                "crdVersion": istio.crd_version,
                "istiods": [release.status.name for release in self.istiods.values()],
                "tags": sorted(self.tags),
                "gateways": [gateway.status.name for gateway in self.gateways],
                **({"nodeAgents": [CNI_RELEASE, ZTUNNEL_RELEASE]} if istio.ambient else {}),
            }
        )

    @property
    def istiod(self) -> k8s.helm.v3.Release:
        """The unrevisioned istiod, or the default revision's."""
        return self.istiods[self._default_istiod]

    def injector(self, target: str | None) -> pulumi.Resource:
        """What must exist before pods that `target` (a tag, a revision, or None: the default) injects.

        For a tag: its webhook with its caBundle; for the default tag, also the old unrevisioned
        injector switched off.
        """
        if not self._istio.revisioned:
            return self.istiods[""]
        if target is None or target == DEFAULT_TAG:
            assert self.legacy_injector is not None  # validated: revisions always have a default
            return self.legacy_injector
        return self.tag_bundles[target] if target in self.tag_bundles else self.istiods[target]

    @property
    def node_agents(self) -> pulumi.Resource | None:
        """What an ambient namespace's label waits for: ztunnel, the last of the node agents (None
        without ambient). istio-cni enrolls a labelled namespace's pods into the ztunnel on their
        node, so both must run before a label puts pods in the ambient mesh."""
        return self.ztunnel
