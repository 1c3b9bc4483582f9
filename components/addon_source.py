"""Locate, fetch, verify and parse the Istio addon manifests (``samples/addons/<addon>.yaml``).

Kept free of Pulumi so it can be unit tested and reused by offline tools; the Pulumi components only
see the parsed objects.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.client
import io
import os
import pathlib
import re
import shlex
import tempfile
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType
from typing import Any

import yaml

KNOWN_ADDONS: tuple[str, ...] = ("prometheus", "grafana", "jaeger", "kiali", "loki")
# Istio's own copy of each release's addons: the file at the release tag, so it never changes.
UPSTREAM_ADDON_SOURCE = "https://raw.githubusercontent.com/istio/istio/{version}/samples/addons"

PROJECT_DIR = pathlib.Path(__file__).resolve().parent.parent
# The reviewed sums of every addon manifest a URL source may install (see its header, and
# components/addon_lock.py, the command that writes it).
LOCK_FILE = PROJECT_DIR / "addons.lock"
LOCK_COMMAND = "python -m components.addon_lock add"

_URL_SCHEMES = ("http://", "https://", "file://")
_FETCH_TIMEOUT_SECONDS = 60
_EXACT_VERSION = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")

Checksums = Mapping[tuple[str, str], str]

# libyaml is several times faster on the multi-thousand-line Kiali and Grafana manifests; both loaders
# build the same plain Python objects, so the fallback only costs time.
YAML_LOADER: type[yaml.SafeLoader | yaml.CSafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class AddonSourceError(Exception):
    """A user-facing problem with an addon source.

    str(e) is a complete, clear message, so callers can show it without a traceback.
    """


def is_url(source: str) -> bool:
    return source.lower().startswith(_URL_SCHEMES)


def addon_location(source: str, version: str, addon: str) -> str:
    # str.replace rather than str.format: a path may legitimately contain other braces.
    base = source.replace("{version}", version).rstrip("/")
    return f"{base}/{addon}.yaml"


def default_cache_dir() -> pathlib.Path:
    """Where downloaded addon manifests are kept: `$ISTIO_MESH_CACHE_DIR` itself, else `addons/` of
    the cache root (`cache_root`)."""
    explicit = os.environ.get("ISTIO_MESH_CACHE_DIR")
    if explicit:
        return pathlib.Path(explicit).expanduser()
    return cache_root() / "addons"


def cache_root() -> pathlib.Path:
    """`$ISTIO_MESH_CACHE_DIR`, else `$XDG_CACHE_HOME/istio-mesh`, else `~/.cache/istio-mesh`.

    The addons' cache is `addons/` in it (or the explicit directory itself, as it always was), and
    the other downloads (`gateway-api/`, meshplan's `charts/`) are its siblings.
    """
    explicit = os.environ.get("ISTIO_MESH_CACHE_DIR")
    if explicit:
        return pathlib.Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    # The XDG spec says a relative XDG_CACHE_HOME is invalid and must be ignored.
    if xdg and pathlib.Path(xdg).is_absolute():
        return pathlib.Path(xdg) / "istio-mesh"
    return pathlib.Path.home() / ".cache" / "istio-mesh"


def read_lock(path: pathlib.Path) -> Checksums:
    """The sums of a lock file (`version addon sha256` lines, `#` comments), read-only.

    Raises AddonSourceError naming the file and line of the first malformed line, or the file
    itself when it cannot be read: without a trusted lock, nothing may be downloaded.
    """
    return read_sums(path, _lock_line_problem, AddonSourceError, "addon lock file")


def read_sums(
    path: pathlib.Path,
    line_problem: Callable[[list[str], Mapping[tuple[str, str], str]], str | None],
    error: type[Exception],
    what: str,
) -> Checksums:
    """The sums of a lock file of `key name sha256` lines (`#` comments), each line judged by
    `line_problem`; `error` names the file and line of the first bad line, or the unreadable file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"Cannot read the {what} {path}: {describe_error(exc)}.") from None
    sums: dict[tuple[str, str], str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        content = line.strip()
        if not content or content.startswith("#"):
            continue
        problem = line_problem(content.split(), sums)
        if problem is not None:
            raise error(f"{path}:{number}: {problem}: {content!r}.")
        key, name, sha256 = content.split()
        sums[(key, name)] = sha256
    # Read-only so no caller can loosen verification at runtime by inserting a sum for a file it fetched.
    return MappingProxyType(sums)


def _lock_line_problem(fields: list[str], sums: Mapping[tuple[str, str], str]) -> str | None:
    if len(fields) != 3:
        return "expected three fields, 'version addon sha256'"
    version, addon, sha256 = fields
    if not _EXACT_VERSION.match(version):
        return f"version {version!r} is not an exact x.y.z"
    if addon not in KNOWN_ADDONS:
        return f"addon {addon!r} is not one of {', '.join(KNOWN_ADDONS)}"
    if not SHA256_PATTERN.match(sha256):
        return "the sha256 must be 64 lowercase hex digits"
    if (version, addon) in sums:
        return f"a second sum for {version} {addon}"
    return None


@functools.cache
def locked_sums(path: pathlib.Path = LOCK_FILE) -> Checksums:
    """`read_lock(path)`, read once per process."""
    return read_lock(path)


def lock_command(version: str, source: str) -> str:
    """The exact command that locks `version`'s addons from `source`, as a user should run it."""
    command = f"{LOCK_COMMAND} {shlex.quote(version)}"
    if source != UPSTREAM_ADDON_SOURCE:
        command += f" --source {shlex.quote(source)}"
    return command


def read_addon_text(
    source: str,
    version: str,
    addon: str,
    *,
    base_dir: pathlib.Path,
    cache_dir: pathlib.Path | None = None,
    checksums: Checksums | None = None,
    fetch: Callable[[str], bytes] | None = None,
) -> str:
    """One addon manifest as text: a URL source downloaded (or cached) and verified, a local one read.

    `checksums` defaults to the project's lock file (`LOCK_FILE`), read only when a URL needs it.
    """
    if is_url(source):
        url = addon_location(source, version, addon)
        data = _read_verified_url(
            url,
            source,
            version,
            addon,
            cache_dir=default_cache_dir() if cache_dir is None else cache_dir,
            checksums=locked_sums() if checksums is None else checksums,
            fetch=fetch_url if fetch is None else fetch,
        )
        return _decode(data, url)
    path = _local_path(source, version, addon, base_dir)
    return _decode(_read_local(path, source, version, addon), str(path))


def parse_manifest(text: str, origin: str) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    for index, doc in _load_documents(text, origin):
        if doc is None:
            continue
        where = f"{origin}: document index {index}"
        objects.extend(_flatten(doc, where))
    return objects


def load_addon(
    source: str,
    version: str,
    addon: str,
    *,
    base_dir: pathlib.Path,
    cache_dir: pathlib.Path | None = None,
    checksums: Checksums | None = None,
    fetch: Callable[[str], bytes] | None = None,
) -> list[dict[str, Any]]:
    text = read_addon_text(
        source, version, addon, base_dir=base_dir, cache_dir=cache_dir, checksums=checksums, fetch=fetch
    )
    if is_url(source):
        origin = addon_location(source, version, addon)
    else:
        origin = str(_local_path(source, version, addon, base_dir))
    return parse_manifest(text, origin)


def _local_path(source: str, version: str, addon: str, base_dir: pathlib.Path) -> pathlib.Path:
    # expanduser: a "~/istio-1.20.8/samples/addons" source would otherwise be taken as relative to
    # the project and look for a directory literally named "~".
    path = pathlib.Path(addon_location(source, version, addon)).expanduser()
    return path if path.is_absolute() else base_dir / path


def _read_local(path: pathlib.Path, source: str, version: str, addon: str) -> bytes:
    # No checksum here on purpose: a local directory is the air-gapped escape hatch (an unpacked
    # istio-<version>/samples/addons), chosen and vetted by whoever runs the deploy.
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise AddonSourceError(
            f"Addon '{addon}' (Istio {version}) not found: {path} does not exist "
            f"(addons.source is '{source}')."
        ) from None
    except OSError as exc:
        raise AddonSourceError(
            f"Addon '{addon}' (Istio {version}): cannot read {path}: {describe_error(exc)} "
            f"(addons.source is '{source}')."
        ) from None


def _read_verified_url(
    url: str,
    source: str,
    version: str,
    addon: str,
    *,
    cache_dir: pathlib.Path,
    checksums: Checksums,
    fetch: Callable[[str], bytes],
) -> bytes:
    # Looked up before any download so an unpinned version never touches the network, and so the
    # version string is known-good before it becomes a cache path component.
    expected = checksums.get((version, addon))
    if expected is None:
        raise AddonSourceError(_unknown_checksum_message(url, source, version, addon, checksums))
    expected = expected.lower()

    cache_file = cache_dir / version / f"{addon}.yaml"
    cached = read_cached(cache_file)
    if cached is not None and sha256_hex(cached) == expected:
        return cached

    try:
        data = fetch(url)
    except AddonSourceError:
        raise
    except (OSError, ValueError, http.client.HTTPException) as exc:
        raise AddonSourceError(
            f"Could not download addon '{addon}' (Istio {version}) from {url}: {describe_error(exc)}. "
            "A local directory as addons.source avoids the download."
        ) from None

    actual = sha256_hex(data)
    if actual != expected:
        raise AddonSourceError(
            f"Checksum mismatch for addon '{addon}' (Istio {version}) downloaded from {url}: "
            f"expected sha256 {expected} (addons.lock), got {actual}. The file was not cached or used."
        )
    write_cache(cache_file, data, url)
    return data


def _unknown_checksum_message(url: str, source: str, version: str, addon: str, checksums: Checksums) -> str:
    known = sorted({v for (v, a) in checksums if a == addon}, key=_version_key)
    known_text = ", ".join(known) if known else "none"
    if not _EXACT_VERSION.match(version) or addon not in KNOWN_ADDONS:
        return (
            f"No sha256 is locked for addon '{addon}' of Istio {version}, so {url} cannot be verified "
            f"and is not downloaded. Versions locked for '{addon}': {known_text}."
        )
    return (
        f"No sha256 is locked for addon '{addon}' of Istio {version} in addons.lock, so {url} cannot be "
        f"verified and is not downloaded. Versions locked for '{addon}': {known_text}. To lock "
        f"{version}, run `{lock_command(version, source)}` in the project, check the sums it prints and "
        f"commit addons.lock; or point addons.source at a local directory (for example an unpacked "
        f"istio-{version}/samples/addons)."
    )


def _version_key(version: str) -> tuple[tuple[int, str], ...]:
    # Numeric order so 1.30.3 sorts after 1.4.0; non-numeric parts sort before numbers, not crash.
    return tuple((int(part), "") if part.isdigit() else (-1, part) for part in re.split(r"[.\-+]", version))


def read_cached(cache_file: pathlib.Path) -> bytes | None:
    try:
        return cache_file.read_bytes()
    except OSError:
        # Missing or unreadable cache is just a miss; the download path verifies and rewrites it.
        return None


def write_cache(cache_file: pathlib.Path, data: bytes, url: str) -> None:
    # Temp file in the same directory + os.replace, so a concurrent or interrupted run never sees a
    # half-written file (which would otherwise fail its checksum and force a re-download anyway).
    tmp_name: str | None = None
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=cache_file.parent, prefix=f".{cache_file.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp_name, cache_file)
        tmp_name = None
    except OSError as exc:
        # The bytes are already verified, so an unwritable cache (read-only home in CI) only costs a
        # download on the next run; failing the deploy for it would be out of proportion.
        warnings.warn(
            f"Could not cache {url} at {cache_file}: {describe_error(exc)}; it will be downloaded again next run.",
            RuntimeWarning,
            stacklevel=2,
        )
    finally:
        if tmp_name is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)


def fetch_url(url: str) -> bytes:
    """The body of `url` (http, https or file), or OSError / ValueError / HTTPException."""
    with urllib.request.urlopen(url, timeout=_FETCH_TIMEOUT_SECONDS) as response:
        return response.read()


def sha256_hex(data: bytes) -> str:
    """The lowercase hex sha256 of `data`, as lock files hold it."""
    return hashlib.sha256(data).hexdigest()


def describe_error(exc: BaseException) -> str:
    """A short reason for a download or file error: `HTTP 404 Not Found`, `timed out`, ..."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        reason = exc.reason
        return describe_error(reason) if isinstance(reason, BaseException) else str(reason)
    if isinstance(exc, TimeoutError):
        return str(exc) or "timed out"
    return str(exc) or type(exc).__name__


def _decode(data: bytes, origin: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AddonSourceError(f"{origin} is not UTF-8 text: {exc}.") from None


class _NamedText(io.StringIO):
    # Both YAML loaders take a stream's .name for their error marks, so syntax errors then point at
    # the addon URL or path instead of "<unicode string>".
    def __init__(self, text: str, name: str) -> None:
        super().__init__(text)
        self.name = name


def _load_documents(text: str, origin: str) -> Iterator[tuple[int, Any]]:
    index = 0
    documents = yaml.load_all(_NamedText(text, origin), Loader=YAML_LOADER)
    while True:
        try:
            doc = next(documents)
        except StopIteration:
            return
        except yaml.YAMLError as exc:
            raise AddonSourceError(f"{origin}: document index {index}: invalid YAML: {exc}") from None
        yield index, doc
        index += 1


def _flatten(doc: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(doc, dict):
        raise AddonSourceError(f"{where} is a {_yaml_type(doc)}, not a Kubernetes object mapping.")
    problem = _header_problem(doc, require_name=not _is_list(doc))
    if problem is not None:
        raise AddonSourceError(f"{where}: {problem}.")
    if not _is_list(doc):
        return [doc]
    items = doc.get("items")
    if items is None:
        return []
    if not isinstance(items, list):
        raise AddonSourceError(
            f"{where}: 'items' of a {doc['kind']} must be a sequence, not a {_yaml_type(items)}."
        )
    objects: list[dict[str, Any]] = []
    for item_index, item in enumerate(items):
        objects.extend(_flatten(item, f"{where}, item {item_index}"))
    return objects


def _is_list(doc: dict[str, Any]) -> bool:
    kind = doc.get("kind")
    if not isinstance(kind, str):
        return False
    # "*List" kinds (ConfigMapList, ...) only count when they carry items: a custom resource could be
    # named e.g. "IPAllowList" and must then stay a single object.
    return kind == "List" or (kind.endswith("List") and "items" in doc)


def _header_problem(doc: dict[str, Any], *, require_name: bool) -> str | None:
    for key in ("apiVersion", "kind"):
        if key not in doc:
            return f"missing '{key}'"
        value = doc[key]
        if not isinstance(value, str) or not value:
            return f"'{key}' must be a non-empty string, not {_yaml_type(value)} {value!r}"
    if not require_name:
        return None
    metadata = doc.get("metadata")
    if metadata is None:
        return "missing 'metadata'"
    if not isinstance(metadata, dict):
        return f"'metadata' must be a mapping, not a {_yaml_type(metadata)}"
    if "name" not in metadata:
        return "missing 'metadata.name'"
    name = metadata["name"]
    if not isinstance(name, str) or not name:
        return f"'metadata.name' must be a non-empty string, not {_yaml_type(name)} {name!r}"
    return None


def _yaml_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, dict):
        return "mapping"
    if isinstance(value, list):
        return "sequence"
    if isinstance(value, str):
        return "string"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    return type(value).__name__
