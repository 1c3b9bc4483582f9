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
    )


def kubectl(cluster: ClusterConfig, *args: str) -> str:
    """A shell-quoted kubectl command that names the stack's cluster explicitly."""
    target = ["--context", cluster.context]
    if cluster.kubeconfig:
        target += ["--kubeconfig", cluster.kubeconfig]
    return shlex.join(["kubectl", *target, *args])
