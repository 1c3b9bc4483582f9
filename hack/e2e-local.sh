#!/usr/bin/env bash
# `make e2e-local`: the toolchain, the local cluster and chart repository, the real-engine
# scenario (hack/e2e_local.py), then the cluster down again. The last line is `N passed, N failed`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
python=${PYTHON:-$repo/.venv/bin/python}

bin=$(PYTHON=$python bash "$here/toolchain.sh" | tail -n 1)
# The toolchain's own plugin cache, which holds the kubernetes provider (hack/toolchain.sh).
export PULUMI_HOME="$(dirname "$bin")/pulumi-home"
export PULUMI_SKIP_UPDATE_CHECK=true PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
export ISTIO_MESH_TOOLCHAIN_BIN=$bin PATH="$bin:$PATH"

# A cluster left over from an interrupted run would carry its objects into this one.
PYTHON=$python bash "$here/cluster.sh" down 2>/dev/null || true
endpoints=$(PYTHON=$python bash "$here/cluster.sh" up | tail -n 3)
trap 'PYTHON=$python bash "$here/cluster.sh" down >/dev/null 2>&1 || true' EXIT
while IFS='=' read -r key value; do
  export "$key=$value"
done <<<"$endpoints"
"$python" "$here/e2e_local.py" "$@"
