#!/usr/bin/env bash
# End-to-end test of the dev stack on a throwaway kind cluster.
#
#   1. creates the kind cluster from hack/kind-dev.yaml (reuses it if it already exists);
#   2. deploys the dev stack with `pulumi up`, using a local file state backend in a temp dir;
#   3. waits for Kiali (http://localhost:30007/kiali) and Prometheus (http://localhost:30009/-/ready);
#   4. checks that a second preview/up changes nothing;
#   5. destroys the stack, and deletes the kind cluster on exit (unless KEEP_CLUSTER=1).
#
# Needs kind (with docker or podman), kubectl, pulumi, python3, curl and tar. Talks only to localhost:
# it uses its own kubeconfig that holds nothing but the kind cluster, and its own state backend.
# It does not touch the working tree's stack files or your Pulumi login: the project is copied to a
# temp dir first (the copy uses the repo's .venv, created from requirements.txt if missing).
#
# Environment:
#   KEEP_CLUSTER=1            keep the kind cluster (and the temp dir with state + kubeconfig) on exit
#   KIND_NODE_IMAGE=image     node image for `kind create cluster`, overriding the one pinned in
#                             hack/kind-dev.yaml (Kubernetes 1.29, what the dev stack's Istio supports)
#   PULUMI_CONFIG_PASSPHRASE  passphrase of the dev stack's config; when unset, a throwaway stack with
#                             an empty passphrase is used (the dev config must then hold no secrets)
set -euo pipefail

readonly CLUSTER=istio-dev # must match `name:` in hack/kind-dev.yaml
readonly CONTEXT="kind-${CLUSTER}"
readonly STACK=dev
readonly KIALI_URL=http://localhost:30007/kiali
readonly PROMETHEUS_URL=http://localhost:30009/-/ready

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly ROOT

log() { printf '\n[e2e %s] ==> %s\n' "$(date +%H:%M:%S)" "$*"; }
info() { printf '[e2e %s]     %s\n' "$(date +%H:%M:%S)" "$*"; }
die() {
  printf '[e2e] ERROR: %s\n' "$*" >&2
  exit 1
}

for tool in kind kubectl pulumi python3 curl tar; do
  command -v "$tool" >/dev/null 2>&1 || die "'$tool' is not on PATH"
done

WORK="$(mktemp -d "${TMPDIR:-/tmp}/istio-mesh-e2e.XXXXXX")"
readonly WORK
# A kubeconfig of our own: whatever the stack config says, nothing here can reach another cluster.
export KUBECONFIG="$WORK/kubeconfig"
# A state backend of our own. PULUMI_BACKEND_URL (rather than `pulumi login file://...`) leaves the
# user's ~/.pulumi/credentials.json, and so their normal login, untouched.
mkdir -p "$WORK/state"
export PULUMI_BACKEND_URL="file://$WORK/state"
export PULUMI_SKIP_UPDATE_CHECK=true

diagnostics() {
  [[ -s "$KUBECONFIG" ]] || return 0
  log "diagnostics: pods, services and recent events in ${CONTEXT}"
  kubectl --context "$CONTEXT" get pods --all-namespaces -o wide || true
  kubectl --context "$CONTEXT" get services --all-namespaces || true
  kubectl --context "$CONTEXT" get events --all-namespaces --sort-by=.lastTimestamp 2>/dev/null | tail -n 40 || true
}

cleanup() {
  local rc=$?
  trap - EXIT
  set +e
  if [[ $rc -ne 0 ]]; then
    diagnostics
  fi
  if [[ "${KEEP_CLUSTER:-0}" == 1 ]]; then
    log "KEEP_CLUSTER=1: keeping kind cluster '${CLUSTER}' and ${WORK}"
    info "to use them: export KUBECONFIG=${KUBECONFIG} PULUMI_BACKEND_URL=${PULUMI_BACKEND_URL}"
    info "clean up later with: kind delete cluster --name ${CLUSTER}; rm -rf ${WORK}"
  else
    log "deleting kind cluster '${CLUSTER}' (set KEEP_CLUSTER=1 to keep it)"
    kind delete cluster --name "$CLUSTER"
    rm -rf "$WORK"
  fi
  if [[ $rc -eq 0 ]]; then
    log "PASS"
  else
    log "FAIL (exit code ${rc})"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# wait_http NAME URL TRIES DELAY: poll URL until it answers HTTP 200, at most TRIES times.
wait_http() {
  local name=$1 url=$2 tries=$3 delay=$4 code i
  log "waiting for ${name} at ${url} (up to ${tries} tries, ${delay}s apart)"
  for ((i = 1; i <= tries; i++)); do
    # --noproxy: never send these localhost requests through an HTTP proxy from the environment.
    code="$(curl --noproxy '*' --silent --location --max-redirs 5 --max-time 10 \
      --output /dev/null --write-out '%{http_code}' "$url" || true)"
    if [[ "$code" == 200 ]]; then
      info "${name} answered HTTP 200 (try ${i})"
      return 0
    fi
    info "try ${i}/${tries}: HTTP ${code:-none}"
    sleep "$delay"
  done
  die "${name} did not answer HTTP 200 at ${url} after ${tries} tries"
}

log "kind cluster '${CLUSTER}' (context ${CONTEXT})"
if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  info "cluster exists already: reusing it"
  kind export kubeconfig --name "$CLUSTER" --kubeconfig "$KUBECONFIG"
else
  info "creating it from hack/kind-dev.yaml"
  kind create cluster --config "$ROOT/hack/kind-dev.yaml" --kubeconfig "$KUBECONFIG" \
    --wait 180s ${KIND_NODE_IMAGE:+--image "$KIND_NODE_IMAGE"}
fi
kubectl --context "$CONTEXT" wait --for=condition=Ready nodes --all --timeout=180s
kubectl --context "$CONTEXT" get nodes -o wide
# Check the Kubernetes version against the node image asked for (KIND_NODE_IMAGE, else the pin in
# hack/kind-dev.yaml): a reused cluster may predate the pin, and kind's default Kubernetes is newer
# than the dev stack's Istio supports. Say so now rather than fail later in an obscure way.
image="${KIND_NODE_IMAGE:-$(sed -n '/^[[:space:]]*image:[[:space:]]*kindest\/node:/{s/^[[:space:]]*image:[[:space:]]*//p;q;}' "$ROOT/hack/kind-dev.yaml")}"
if [[ "$image" == *kindest/node:v* ]]; then
  wanted="${image#*kindest/node:}"
  wanted="${wanted%%@*}"
  running="$(kubectl --context "$CONTEXT" get nodes -o jsonpath='{.items[0].status.nodeInfo.kubeletVersion}')"
  if [[ "$running" == "$wanted" ]]; then
    info "nodes run Kubernetes ${running} (${image})"
  else
    info "WARNING: the cluster runs Kubernetes ${running}, not the ${wanted} of ${image}"
    info "         (reused from before? recreate it with: kind delete cluster --name ${CLUSTER})"
  fi
fi

if [[ ! -x "$ROOT/.venv/bin/python" ]]; then
  log "creating ${ROOT}/.venv from requirements.txt"
  python3 -m venv "$ROOT/.venv"
  "$ROOT/.venv/bin/python" -m pip install --quiet -r "$ROOT/requirements.txt"
fi

log "copying the project to ${WORK}/project"
PROJECT="$WORK/project"
mkdir -p "$PROJECT"
tar -C "$ROOT" --exclude=.git --exclude=.venv --exclude=__pycache__ --exclude=.pytest_cache \
  --exclude=.ruff_cache --exclude=.hypothesis --exclude=.cache --exclude=node_modules -cf - . |
  tar -C "$PROJECT" -xf -
# Pulumi.yaml points the Python runtime at .venv; share the repo's instead of building another.
ln -s "$ROOT/.venv" "$PROJECT/.venv"
cd "$PROJECT"

STACK_FILE="Pulumi.${STACK}.yaml"
[[ -f "$STACK_FILE" ]] || die "${STACK_FILE} not found in ${ROOT}"
# The copy's stack file may name the real dev stack's secrets provider (a cloud KMS, say); the
# throwaway stack always uses the passphrase provider.
sed -i.orig -e '/^secretsprovider:/d' -e '/^encryptedkey:/d' "$STACK_FILE"
if [[ -z "${PULUMI_CONFIG_PASSPHRASE+set}" && -z "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]]; then
  if grep -Eq '(^|[[:space:]{])secure:[[:space:]]' "$STACK_FILE"; then
    die "${STACK_FILE} holds encrypted values: set PULUMI_CONFIG_PASSPHRASE to the dev stack's passphrase"
  fi
  info "PULUMI_CONFIG_PASSPHRASE is unset: using an empty passphrase for the throwaway stack"
  export PULUMI_CONFIG_PASSPHRASE=""
  sed -i.orig -e '/^encryptionsalt:/d' "$STACK_FILE" # a fresh salt for the empty passphrase
fi
rm -f "${STACK_FILE}.orig"

log "selecting stack '${STACK}' in ${PULUMI_BACKEND_URL}"
pulumi stack select --create "$STACK"
# Point the stack at the kind cluster, in whichever form (flat or nested key) its config uses.
if pulumi config get --stack "$STACK" cluster.context >/dev/null 2>&1; then
  pulumi config set --stack "$STACK" cluster.context "$CONTEXT"
elif pulumi config get --stack "$STACK" --path cluster.context >/dev/null 2>&1; then
  pulumi config set --stack "$STACK" --path cluster.context "$CONTEXT"
else
  info "the stack config names no cluster.context; the kubeconfig's only context is ${CONTEXT}"
fi

log "pulumi up (first deployment)"
pulumi up --yes --stack "$STACK"

wait_http Kiali "$KIALI_URL" 60 5
wait_http Prometheus "$PROMETHEUS_URL" 30 5

log "checking that the deployed stack is stable: preview and a second up must change nothing"
pulumi preview --stack "$STACK" --expect-no-changes --diff
pulumi up --yes --stack "$STACK" --expect-no-changes

log "pulumi destroy"
pulumi destroy --yes --stack "$STACK"
