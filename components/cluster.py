"""The one cluster a stack owns: its Kubernetes provider and the kubectl command line that targets it."""

from __future__ import annotations

import shlex

import pulumi_kubernetes as k8s

from components.config import ClusterConfig


def cluster_provider(name: str, cluster: ClusterConfig) -> k8s.Provider:
    """The stack's explicit provider; every Kubernetes resource of the mesh runs through it.

    Created by the program (never inside a component) and handed to the mesh through
    `ResourceOptions(providers=...)`, so nothing ever falls back to the ambient kubeconfig context.
    """
    return k8s.Provider(
        name,
        context=cluster.context,
        kubeconfig=cluster.kubeconfig or None,
        # Server-side apply is what lets NamespacePatch add one label to a namespace someone else owns.
        enable_server_side_apply=True,
        # Without these the provider replaces a ConfigMap or Secret whose data changes, and a fixed
        # name means delete, then create: Grafana's admin password or Kiali's config would be
        # missing in between, and a pod starting then fails. Updated in place instead, the
        # rollouts in components/mesh.py restart what reads them (pulumi-kubernetes
        # provider/pkg/provider/diff.go).
        enable_config_map_mutable=True,
        enable_secret_mutable=True,
    )


def kubectl(cluster: ClusterConfig, *args: str) -> str:
    """A shell-quoted kubectl command that names the stack's cluster explicitly."""
    target = ["--context", cluster.context]
    if cluster.kubeconfig:
        target += ["--kubeconfig", cluster.kubeconfig]
    return shlex.join(["kubectl", *target, *args])


def helm(cluster: ClusterConfig, *args: str) -> str:
    """A shell-quoted helm command that names the stack's cluster explicitly."""
    target = ["--kube-context", cluster.context]
    if cluster.kubeconfig:
        target += ["--kubeconfig", cluster.kubeconfig]
    return shlex.join(["helm", *target, *args])
