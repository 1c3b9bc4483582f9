"""Locate, fetch, verify and parse the Kubernetes Gateway API CRDs of one release and channel.

Kept free of Pulumi, like components/addon_source.py (whose download, cache and parsing helpers it
uses): the GatewayApi component (components/gateway_api.py) only sees the checked objects.

What a release installs is its `<channel>-install.yaml`: hack/build-install-yaml.sh of
sigs.k8s.io/gateway-api concatenates every `config/crd/<channel>/gateway*.yaml` of the release, in
name order, behind a license header. So there are three kinds of `gatewayApi.source`, all giving the
same objects:

- a URL template ending in `.zip` (the default, components/gateway_api_versions.py DEFAULT_SOURCE):
  the release's Go module zip as a Go module proxy serves it (https://go.dev/ref/mod#zip-files:
  every file under `sigs.k8s.io/gateway-api@<version>/`), read as build-install-yaml.sh reads the
  tree; lock artifact `module.zip`, whatever the channel;
- a URL template ending in `.yaml`, with `{version}` and `{channel}`: the release manifest itself,
  e.g. https://github.com/kubernetes-sigs/gateway-api/releases/download/{version}/{channel}-install.yaml;
  lock artifact `<channel>-install.yaml`;
- a local directory (`{version}` allowed) holding `<channel>-install.yaml`, read as it is, without
  a sum: the air-gapped way, vetted by whoever runs the deploy (as for the addons).

A URL download (http, https or file://) is kept in `gateway-api/<version>/<artifact>` beside the
addons' cache and verified against `gateway-api.lock` on every read; a version not in the lock is
refused before anything is downloaded, with the command that locks it
(components/gateway_api_lock.py). The objects are then checked: only the release's CRDs and its
`safe-upgrades` ValidatingAdmissionPolicy and binding, each carrying the release's
`gateway.networking.k8s.io/bundle-version`, are ever applied.
"""

from __future__ import annotations

import http.client
import io
import pathlib
import re
import shlex
import zipfile
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from components.addon_source import (
    PROJECT_DIR,
    SHA256_PATTERN,
    AddonSourceError,
    Checksums,
    cache_root,
    describe_error,
    fetch_url,
    is_url,
    parse_manifest,
    read_cached,
    read_sums,
    sha256_hex,
    write_cache,
)
from components.gateway_api_versions import (
    BUNDLE_VERSION_ANNOTATION,
    CHANNEL_ANNOTATION,
    CHANNELS,
    DEFAULT_SOURCE,
    GROUP,
    parse_release,
)

if TYPE_CHECKING:
    from components.config import GatewayApiConfig

MODULE = "sigs.k8s.io/gateway-api"
# The reviewed sums of every Gateway API artifact a URL source may install (components/gateway_api_lock.py).
LOCK_FILE = PROJECT_DIR / "gateway-api.lock"
LOCK_COMMAND = "python -m components.gateway_api_lock add"
MODULE_ZIP = "module.zip"
# The experimental channel also brings CRDs of the group for experimental-only kinds (XMesh, ...).
EXPERIMENTAL_GROUP = "gateway.networking.x-k8s.io"
CRD_GROUPS = (GROUP, EXPERIMENTAL_GROUP)
# From v1.5 each channel ships this policy and its binding (config/crd/<channel>/
# gateway.networking.k8s.io_vap_safeupgrades.yaml): the API server refuses experimental CRDs over
# standard ones and CRDs older than v1.5.0 while it exists.
SAFE_UPGRADES = "safe-upgrades.gateway.networking.k8s.io"
SAFE_UPGRADES_KINDS = ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")
SAFE_UPGRADES_API_VERSION = "admissionregistration.k8s.io/v1"
CRD_API_VERSION = "apiextensions.k8s.io/v1"

# `<version> <artifact> <sha256>`: an artifact is the module zip or one channel's manifest.
ARTIFACTS = (MODULE_ZIP, *(f"{channel}-install.yaml" for channel in CHANNELS))
_SAFE_UPGRADES_BUNDLE = re.compile(r"^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-dev)?$")


class GatewayApiSourceError(Exception):
    """A user-facing problem with the Gateway API source; str(e) is the complete message."""


def source_kind(source: str) -> str:
    """`zip`, `yaml` or `directory`; GatewayApiSourceError for a URL that is neither a zip nor a manifest."""
    if not is_url(source):
        return "directory"
    path = source.split("?", 1)[0].lower()
    if path.endswith(".zip"):
        return "zip"
    if path.endswith((".yaml", ".yml")):
        return "yaml"
    raise GatewayApiSourceError(
        f"gatewayApi.source {source!r} is a URL, so it must end in .zip (a Go module zip of {MODULE}, such "
        f"as the default {DEFAULT_SOURCE}) or .yaml (a release manifest such as <channel>-install.yaml)."
    )


def artifact_name(source: str, channel: str) -> str:
    """What `gateway-api.lock` calls the file `source` downloads for `channel`."""
    return MODULE_ZIP if source_kind(source) == "zip" else f"{channel}-install.yaml"


def location(source: str, version: str, channel: str) -> str:
    """The URL (or directory's manifest path) of `version`'s artifact for `channel`."""
    # str.replace rather than str.format: a path may legitimately contain other braces.
    filled = source.replace("{version}", version).replace("{channel}", channel)
    if source_kind(source) == "directory":
        return f"{filled.rstrip('/')}/{channel}-install.yaml"
    return filled


def cache_dir() -> pathlib.Path:
    """`gateway-api/` beside the addons' cache (components/addon_source.py cache_root)."""
    return cache_root() / "gateway-api"


def read_lock(path: pathlib.Path = LOCK_FILE) -> Checksums:
    """The sums of `gateway-api.lock` (`version artifact sha256` lines), read-only."""
    return read_sums(path, _lock_line_problem, GatewayApiSourceError, "Gateway API lock file")


def _lock_line_problem(fields: list[str], sums: Mapping[tuple[str, str], str]) -> str | None:
    if len(fields) != 3:
        return "expected three fields, 'version artifact sha256'"
    version, artifact, sha256 = fields
    if parse_release(version) is None:
        return f"version {version!r} is not a release tag such as v1.5.1"
    if artifact not in ARTIFACTS:
        return f"artifact {artifact!r} is not one of {', '.join(ARTIFACTS)}"
    if not SHA256_PATTERN.match(sha256):
        return "the sha256 must be 64 lowercase hex digits"
    if (version, artifact) in sums:
        return f"a second sum for {version} {artifact}"
    return None


def lock_command(version: str, source: str, channel: str) -> str:
    """The exact command that locks `version`'s artifact of `source`, as a user should run it."""
    command = f"{LOCK_COMMAND} {shlex.quote(version)}"
    if source != DEFAULT_SOURCE:
        command += f" --source {shlex.quote(source)}"
    if source_kind(source) == "yaml" and channel != "standard":
        command += f" --channel {channel}"
    return command


def load_gateway_api(
    source: str,
    version: str,
    channel: str,
    *,
    base_dir: pathlib.Path,
    cache: pathlib.Path | None = None,
    checksums: Checksums | None = None,
    fetch: Callable[[str], bytes] | None = None,
) -> list[dict[str, Any]]:
    """The objects of `version`'s `channel`, checked (`check_objects`), in the manifest's order.

    A URL is downloaded once (or read from `cache`, default `cache_dir()`) and verified against
    `checksums` (default: `gateway-api.lock`, read only when a URL needs it); a directory is read.
    """
    kind = source_kind(source)
    where = location(source, version, channel)
    if kind == "directory":
        path = pathlib.Path(where).expanduser()
        path = path if path.is_absolute() else base_dir / path
        data = _read_local(path, source, version, channel)
        where = str(path)
    else:
        data = _read_verified(
            where,
            source,
            version,
            channel,
            cache=cache_dir() if cache is None else cache,
            checksums=read_lock() if checksums is None else checksums,
            fetch=fetch_url if fetch is None else fetch,
        )
    objects = (
        module_objects(data, version, channel, where) if kind == "zip" else manifest_objects(data, where)
    )
    check_objects(objects, version, channel, where)
    return objects


def manifest_objects(data: bytes, origin: str) -> list[dict[str, Any]]:
    """The objects of a `<channel>-install.yaml`."""
    try:
        return parse_manifest(data.decode("utf-8"), origin)
    except UnicodeDecodeError as exc:
        raise GatewayApiSourceError(f"{origin} is not UTF-8 text: {exc}.") from None
    except AddonSourceError as exc:
        raise GatewayApiSourceError(str(exc)) from None


def module_files(data: bytes, version: str, channel: str, origin: str) -> list[tuple[str, bytes]]:
    """The files of the module zip that `<channel>-install.yaml` is made of, in its order.

    hack/build-install-yaml.sh takes `config/crd/<channel>/gateway*.yaml` (that directory only) as
    the shell sorts them; a module zip keeps each file under `<module>@<version>/`
    (https://go.dev/ref/mod#zip-files), so a zip of another module or version has none of them.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise GatewayApiSourceError(f"{origin} is not a zip archive: {exc}.") from None
    directory = f"{MODULE}@{version}/config/crd/{channel}/"
    names = sorted(
        name
        for name in archive.namelist()
        if name.startswith(directory)
        and "/" not in name[len(directory) :]
        and name[len(directory) :].startswith("gateway")
        and name.endswith(".yaml")
    )
    if not names:
        raise GatewayApiSourceError(
            f"{origin} is not the module zip of {MODULE}@{version}: it has no {directory}gateway*.yaml."
        )
    try:
        return [(name, archive.read(name)) for name in names]
    except (zipfile.BadZipFile, OSError) as exc:
        raise GatewayApiSourceError(f"{origin}: cannot read {directory}: {exc}.") from None


def module_objects(data: bytes, version: str, channel: str, origin: str) -> list[dict[str, Any]]:
    """The objects of `<channel>-install.yaml`, read from the release's module zip."""
    objects: list[dict[str, Any]] = []
    for name, content in module_files(data, version, channel, origin):
        objects.extend(manifest_objects(content, f"{origin}: {name}"))
    return objects


def check_objects(objects: Sequence[Mapping[str, Any]], version: str, channel: str, origin: str) -> None:
    """Refuse anything but `version`'s Gateway API CRDs of `channel` and its safe-upgrades policy.

    These objects are applied with the stack's cluster-wide rights, so a manifest that brings
    anything else (or a release other than the one the stack names) is refused, all problems in
    one message.
    """
    problems: list[str] = []
    seen: set[tuple[str, str]] = set()
    for obj in objects:
        problem = _object_problem(obj, version, channel)
        ident = f"{obj.get('apiVersion')} {obj.get('kind')} {obj.get('metadata', {}).get('name')}"
        if problem is not None:
            problems.append(f"{ident}: {problem}")
        key = (str(obj.get("kind")), str(obj.get("metadata", {}).get("name")))
        if key in seen:
            problems.append(f"{ident}: declared twice")
        seen.add(key)
    if not any(obj.get("kind") == "CustomResourceDefinition" for obj in objects):
        problems.append("no CustomResourceDefinition at all")
    if problems:
        listing = "\n".join(f"  - {p}" for p in problems)
        raise GatewayApiSourceError(
            f"{origin} is not the Gateway API {version} {channel} channel:\n{listing}\n"
            "Only the release's CRDs and its safe-upgrades ValidatingAdmissionPolicy are installed; check "
            "gatewayApi.source, version and channel."
        )


def _object_problem(obj: Mapping[str, Any], version: str, channel: str) -> str | None:
    annotations = obj.get("metadata", {}).get("annotations") or {}
    bundle = annotations.get(BUNDLE_VERSION_ANNOTATION)
    kind, name = obj.get("kind"), str(obj.get("metadata", {}).get("name"))
    if kind == "CustomResourceDefinition":
        if obj.get("apiVersion") != CRD_API_VERSION:
            return f"a CRD must be {CRD_API_VERSION}"
        group = (obj.get("spec") or {}).get("group")
        if group not in CRD_GROUPS or not name.endswith(f".{group}"):
            return f"not a Gateway API CRD (group {group!r}; expected {' or '.join(CRD_GROUPS)})"
        if bundle != version:
            return f"{BUNDLE_VERSION_ANNOTATION} is {bundle!r}, not {version!r}"
        if annotations.get(CHANNEL_ANNOTATION) != channel:
            return f"{CHANNEL_ANNOTATION} is {annotations.get(CHANNEL_ANNOTATION)!r}, not {channel!r}"
        return None
    if kind in SAFE_UPGRADES_KINDS and name == SAFE_UPGRADES:
        if obj.get("apiVersion") != SAFE_UPGRADES_API_VERSION:
            return f"a {kind} must be {SAFE_UPGRADES_API_VERSION}"
        # v1.5.0 and v1.5.1 ship the policy as `v1.5.0-dev` (the file was not bumped for the
        # release): a release's own policy is of its minor, at or before its patch.
        match = _SAFE_UPGRADES_BUNDLE.match(bundle) if isinstance(bundle, str) else None
        wanted = parse_release(version)
        if (
            match is None
            or wanted is None
            or _release_of(match) > wanted
            or _release_of(match)[:2] != wanted[:2]
        ):
            return f"{BUNDLE_VERSION_ANNOTATION} is {bundle!r}, not of release {version}"
        return None
    return "not a Gateway API CRD, nor the safe-upgrades ValidatingAdmissionPolicy or its binding"


def _release_of(match: re.Match[str]) -> tuple[int, int, int]:
    major, minor, patch = (int(match.group(i)) for i in (1, 2, 3))
    return major, minor, patch


def _read_local(path: pathlib.Path, source: str, version: str, channel: str) -> bytes:
    # No sum: a local directory is the air-gapped way, chosen and vetted by whoever runs the deploy.
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise GatewayApiSourceError(
            f"Gateway API {version} ({channel} channel) not found: {path} does not exist "
            f"(gatewayApi.source is '{source}')."
        ) from None
    except OSError as exc:
        raise GatewayApiSourceError(
            f"Gateway API {version} ({channel} channel): cannot read {path}: {describe_error(exc)} "
            f"(gatewayApi.source is '{source}')."
        ) from None


def _read_verified(
    url: str,
    source: str,
    version: str,
    channel: str,
    *,
    cache: pathlib.Path,
    checksums: Checksums,
    fetch: Callable[[str], bytes],
) -> bytes:
    artifact = artifact_name(source, channel)
    # Looked up before any download, so an unlocked version never touches the network, and the
    # version is known to be a release tag before it becomes a cache path component.
    expected = checksums.get((version, artifact)) if parse_release(version) else None
    if expected is None:
        known = sorted(
            {v for (v, a) in checksums if a == artifact}, key=lambda v: parse_release(v) or (0, 0, 0)
        )
        raise GatewayApiSourceError(
            f"No sha256 is locked for the Gateway API {version} {artifact} in gateway-api.lock, so {url} "
            f"cannot be verified and is not downloaded. Versions locked as {artifact}: "
            f"{', '.join(known) or 'none'}. To lock {version}, run `{lock_command(version, source, channel)}` "
            "in the project, check the sums it prints and commit gateway-api.lock; or point "
            f"gatewayApi.source at a local directory holding {channel}-install.yaml."
        )
    cache_file = cache / version / artifact
    cached = read_cached(cache_file)
    if cached is not None and sha256_hex(cached) == expected:
        return cached
    try:
        data = fetch(url)
    except (OSError, ValueError, http.client.HTTPException) as exc:
        raise GatewayApiSourceError(
            f"Could not download the Gateway API {version} from {url}: {describe_error(exc)}. A local "
            "directory as gatewayApi.source avoids the download."
        ) from None
    actual = sha256_hex(data)
    if actual != expected:
        raise GatewayApiSourceError(
            f"Checksum mismatch for the Gateway API {version} {artifact} downloaded from {url}: expected "
            f"sha256 {expected} (gateway-api.lock), got {actual}. The file was not cached or used."
        )
    write_cache(cache_file, data, url)
    return data


def prepare_gateway_api(gateway_api: GatewayApiConfig | None, base_dir: pathlib.Path) -> list[dict[str, Any]]:
    """The checked objects of the stack's `gatewayApi` (none when it leaves the CRDs alone), read
    before anything is declared, like the addons (components/addons.py prepare_addons)."""
    if gateway_api is None:
        return []
    return load_gateway_api(gateway_api.source, gateway_api.version, gateway_api.channel, base_dir=base_dir)
