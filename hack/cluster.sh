#!/usr/bin/env bash
# A local Kubernetes cluster with no container runtime, and a loopback Helm chart repository.
#
#   hack/cluster.sh up     start both (reusing what is already up); the last lines are
#                          KUBECONFIG=..., CONTEXT=... and CHARTS=http://127.0.0.1:PORT
#   hack/cluster.sh down   stop both and remove what they made
#
# The cluster is kwokctl's binary runtime: a real etcd, kube-apiserver, kube-controller-manager and
# kube-scheduler, with kwok faking the nodes and marking their pods Running and Ready. Webhook
# admission is off in kube-apiserver: no istiod really runs, so its injection and validation
# webhooks could never answer, and every pod in an injected namespace (the gateways' too) would be
# refused. So no sidecar is ever injected here, and no Istio validation webhook ever rejects.
#
# The chart repository serves $ISTIO_MESH_CHARTS_DIR (default: ../shared/upstream/charts) on
# 127.0.0.1. Everything lives under $ISTIO_MESH_E2E_DIR (default ~/.cache/istio-mesh/e2e), outside
# the work tree.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
# shellcheck source=/dev/null
. "$here/toolchain.versions"

state=${ISTIO_MESH_E2E_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/istio-mesh/e2e}
charts_dir=${ISTIO_MESH_CHARTS_DIR:-$repo/../shared/upstream/charts}
cluster=${ISTIO_MESH_CLUSTER_NAME:-istio-mesh-e2e}
nodes=${ISTIO_MESH_CLUSTER_NODES:-2}
# kwok marks a pod Ready this long after it is scheduled (0: at once, kwok's default); the
# benchmark (bench/deploy.py) sets it so that waits cost what they cost on a real cluster.
pod_ready_delay_ms=${ISTIO_MESH_POD_READY_DELAY_MS:-0}
export KWOK_WORKDIR="$state/kwok"

log() { printf 'cluster: %s\n' "$*" >&2; }

up() {
  local bin
  bin=$(bash "$here/toolchain.sh" | tail -n 1)
  mkdir -p "$state"
  export PATH="$bin:$PATH"
  local kubeconfig="$KWOK_WORKDIR/clusters/$cluster/kubeconfig.yaml"
  if ! kwokctl get clusters 2>/dev/null | grep -qx "$cluster"; then
    log "creating cluster $cluster (kubernetes $KUBERNETES_VERSION, $nodes kwok nodes)"
    cat >"$state/kwokctl.yaml" <<EOF
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
options:
  runtime: binary
  kubeVersion: $KUBERNETES_VERSION
  bindAddress: 127.0.0.1
  kubeApiserverBinary: $bin/kube-apiserver
  kubeControllerManagerBinary: $bin/kube-controller-manager
  kubeSchedulerBinary: $bin/kube-scheduler
  kwokControllerBinary: $bin/kwok
  etcdBinary: $bin/etcd
  kubectlBinary: $bin/kubectl
componentsPatches:
- name: kube-apiserver
  extraArgs:
  - key: disable-admission-plugins
    value: MutatingAdmissionWebhook,ValidatingAdmissionWebhook
EOF
    local stages=()
    if [ "$pod_ready_delay_ms" -gt 0 ]; then
      "${PYTHON:-python3}" "$here/kwok_stages.py" "$pod_ready_delay_ms" >"$state/stages.yaml"
      stages=(--config "$state/stages.yaml")
    fi
    kwokctl create cluster --name "$cluster" --config "$state/kwokctl.yaml" "${stages[@]}" \
      --wait 120s >&2
    kwokctl scale node --name "$cluster" --replicas "$nodes" >&2
  fi
  local context
  context=$(kubectl --kubeconfig "$kubeconfig" config current-context)
  kubectl --kubeconfig "$kubeconfig" --context "$context" wait --for=condition=Ready node --all \
    --timeout=120s >&2

  local port_file="$state/charts.port"
  if ! { [ -f "$state/charts.pid" ] && kill -0 "$(cat "$state/charts.pid")" 2>/dev/null; }; then
    [ -f "$charts_dir/index.yaml" ] || { log "no chart repository at $charts_dir"; exit 1; }
    local port
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    python3 -m http.server "$port" --bind 127.0.0.1 --directory "$charts_dir" \
      >"$state/charts.log" 2>&1 &
    echo $! >"$state/charts.pid"
    echo "$port" >"$port_file"
    local tries=0
    until python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/index.yaml')" \
      2>/dev/null; do
      tries=$((tries + 1))
      [ "$tries" -lt 50 ] || { log "chart repository did not start"; exit 1; }
      sleep 0.2
    done
  fi
  echo "KUBECONFIG=$kubeconfig"
  echo "CONTEXT=$context"
  echo "CHARTS=http://127.0.0.1:$(cat "$port_file")"
}

down() {
  if [ -f "$state/charts.pid" ]; then
    kill "$(cat "$state/charts.pid")" 2>/dev/null || true
    rm -f "$state/charts.pid" "$state/charts.port"
  fi
  local bin
  bin=$(bash "$here/toolchain.sh" | tail -n 1)
  if PATH="$bin:$PATH" kwokctl get clusters 2>/dev/null | grep -qx "$cluster"; then
    PATH="$bin:$PATH" kwokctl delete cluster --name "$cluster" >&2
  fi
  rm -rf "$state"
}

case ${1:-} in
up) up ;;
down) down ;;
*)
  echo "usage: $0 up|down" >&2
  exit 2
  ;;
esac
