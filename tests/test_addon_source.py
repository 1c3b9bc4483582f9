"""Tests for finding, downloading, verifying and parsing addon manifests; nothing here uses the network."""

from __future__ import annotations

import email.message
import hashlib
import pathlib
import re
import urllib.error
from collections.abc import Callable

import pytest
import yaml

from components import addon_source
from components.addon_source import (
    KNOWN_ADDONS,
    LOCK_FILE,
    AddonSourceError,
    addon_location,
    default_cache_dir,
    is_url,
    load_addon,
    locked_sums,
    parse_manifest,
    read_addon_text,
    read_lock,
)

TESTS_DIR = pathlib.Path(__file__).parent
URL_SOURCE = "https://addons.example.invalid/istio/{version}/samples/addons"
PROMETHEUS_URL = "https://addons.example.invalid/istio/1.20.8/samples/addons/prometheus.yaml"
MANIFEST = b"apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: prometheus\n  namespace: istio-system\n"
MANIFEST_SHA = hashlib.sha256(MANIFEST).hexdigest()
CHECKSUMS = {("1.20.8", "prometheus"): MANIFEST_SHA}
KNOWN_VERSIONS = "1.20.8, 1.21.6, 1.22.8, 1.23.6, 1.24.6, 1.25.5, 1.26.8, 1.27.9, 1.28.10, 1.29.6, 1.30.3"


class FakeFetch:
    """Records every URL asked for, so tests can prove how often the network would have been used."""

    def __init__(self, *responses: bytes | BaseException) -> None:
        self.responses = list(responses)
        self.calls: list[str] = []

    def __call__(self, url: str) -> bytes:
        self.calls.append(url)
        response = self.responses.pop(0)
        if isinstance(response, BaseException):
            raise response
        return response


def no_fetch(url: str) -> bytes:
    raise AssertionError(f"unexpected download of {url}")


def read_url(tmp_path: pathlib.Path, fetch: Callable[[str], bytes], version: str = "1.20.8") -> str:
    return read_addon_text(
        URL_SOURCE,
        version,
        "prometheus",
        base_dir=tmp_path,
        cache_dir=tmp_path / "cache",
        checksums=CHECKSUMS,
        fetch=fetch,
    )


def test_known_addons() -> None:
    assert KNOWN_ADDONS == ("prometheus", "grafana", "jaeger", "kiali", "loki")


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("https://raw.githubusercontent.com/istio/istio/{version}/samples/addons", True),
        ("http://mirror.local/addons", True),
        ("HTTPS://MIRROR.LOCAL/addons", True),
        ("File:///srv/addons", True),
        ("file:///srv/addons", True),
        ("/srv/istio-{version}/samples/addons", False),
        ("samples/addons", False),
        ("ftp://mirror.local/addons", False),
        ("https:/missing-slash", False),
        ("", False),
    ],
)
def test_is_url(source: str, expected: bool) -> None:
    assert is_url(source) is expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            "https://raw.githubusercontent.com/istio/istio/{version}/samples/addons",
            "https://raw.githubusercontent.com/istio/istio/1.20.8/samples/addons/kiali.yaml",
        ),
        ("https://mirror.local/addons/", "https://mirror.local/addons/kiali.yaml"),
        ("https://mirror.local/{version}/addons//", "https://mirror.local/1.20.8/addons/kiali.yaml"),
        ("/opt/istio-{version}/samples/addons", "/opt/istio-1.20.8/samples/addons/kiali.yaml"),
        ("addons/{version}/{version}", "addons/1.20.8/1.20.8/kiali.yaml"),
        ("dir-with-{braces}/", "dir-with-{braces}/kiali.yaml"),
    ],
)
def test_addon_location(source: str, expected: str) -> None:
    assert addon_location(source, "1.20.8", "kiali") == expected


def test_default_cache_dir_prefers_explicit_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    monkeypatch.setenv("ISTIO_MESH_CACHE_DIR", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "explicit"


def test_default_cache_dir_uses_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    monkeypatch.setenv("ISTIO_MESH_CACHE_DIR", "")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "istio-mesh" / "addons"


@pytest.mark.parametrize("xdg", [None, "", "relative/cache"])
def test_default_cache_dir_falls_back_to_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path, xdg: str | None
) -> None:
    monkeypatch.delenv("ISTIO_MESH_CACHE_DIR", raising=False)
    if xdg is None:
        monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    else:
        monkeypatch.setenv("XDG_CACHE_HOME", xdg)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "istio-mesh" / "addons"


# --- local directory sources ---------------------------------------------------------------------


def test_local_source_relative_to_base_dir_is_not_checksummed(tmp_path: pathlib.Path) -> None:
    addon_dir = tmp_path / "istio-1.20.8" / "samples" / "addons"
    addon_dir.mkdir(parents=True)
    (addon_dir / "grafana.yaml").write_text("edited: locally\n", encoding="utf-8")
    text = read_addon_text(
        "istio-{version}/samples/addons",
        "1.20.8",
        "grafana",
        base_dir=tmp_path,
        cache_dir=tmp_path / "cache",
        checksums={},
        fetch=no_fetch,
    )
    assert text == "edited: locally\n"
    assert not (tmp_path / "cache").exists()


def test_local_source_absolute_path_ignores_base_dir(tmp_path: pathlib.Path) -> None:
    (tmp_path / "addons").mkdir()
    (tmp_path / "addons" / "loki.yaml").write_text("x: 1\n", encoding="utf-8")
    source = str(tmp_path / "addons")
    text = read_addon_text(source, "1.20.8", "loki", base_dir=tmp_path / "elsewhere", fetch=no_fetch)
    assert text == "x: 1\n"


def test_local_source_missing_file(tmp_path: pathlib.Path) -> None:
    with pytest.raises(AddonSourceError) as info:
        read_addon_text("samples/{version}", "1.22.8", "jaeger", base_dir=tmp_path, fetch=no_fetch)
    path = tmp_path / "samples" / "1.22.8" / "jaeger.yaml"
    assert str(info.value) == (
        f"Addon 'jaeger' (Istio 1.22.8) not found: {path} does not exist "
        "(addons.source is 'samples/{version}')."
    )


def test_local_source_that_is_a_directory(tmp_path: pathlib.Path) -> None:
    (tmp_path / "kiali.yaml").mkdir()
    with pytest.raises(AddonSourceError) as info:
        read_addon_text(".", "1.20.8", "kiali", base_dir=tmp_path, fetch=no_fetch)
    message = str(info.value)
    assert message.startswith(f"Addon 'kiali' (Istio 1.20.8): cannot read {tmp_path / '.' / 'kiali.yaml'}: ")
    assert message.endswith("(addons.source is '.').")


def test_load_addon_from_fixture_directory() -> None:
    objects = load_addon(
        "fixtures/addons/app-labels", "1.20.8", "prometheus", base_dir=TESTS_DIR, fetch=no_fetch
    )
    assert [(o["kind"], o["metadata"]["name"]) for o in objects] == [
        ("ServiceAccount", "prometheus"),
        ("ConfigMap", "prometheus"),
        ("ClusterRole", "prometheus"),
        ("ClusterRoleBinding", "prometheus"),
        ("Service", "prometheus"),
        ("Deployment", "prometheus"),
    ]


def test_load_addon_local_parse_error_names_resolved_path(tmp_path: pathlib.Path) -> None:
    (tmp_path / "loki.yaml").write_text("- just\n- a list\n", encoding="utf-8")
    with pytest.raises(AddonSourceError) as info:
        load_addon(".", "1.20.8", "loki", base_dir=tmp_path)
    assert str(info.value) == (
        f"{tmp_path / '.' / 'loki.yaml'}: document index 0 is a sequence, not a Kubernetes object mapping."
    )


def test_local_source_not_utf8(tmp_path: pathlib.Path) -> None:
    (tmp_path / "loki.yaml").write_bytes(b"name: \xff\n")
    with pytest.raises(AddonSourceError, match=r"loki\.yaml is not UTF-8 text: "):
        read_addon_text(str(tmp_path), "1.20.8", "loki", base_dir=tmp_path)


# --- URL sources ---------------------------------------------------------------------------------


def test_url_downloads_once_then_serves_from_cache(tmp_path: pathlib.Path) -> None:
    fetch = FakeFetch(MANIFEST)
    assert read_url(tmp_path, fetch) == MANIFEST.decode()
    assert fetch.calls == [PROMETHEUS_URL]
    cache_file = tmp_path / "cache" / "1.20.8" / "prometheus.yaml"
    assert cache_file.read_bytes() == MANIFEST
    assert sorted(p.name for p in cache_file.parent.iterdir()) == ["prometheus.yaml"]

    assert read_url(tmp_path, fetch) == MANIFEST.decode()
    assert read_url(tmp_path, fetch) == MANIFEST.decode()
    assert fetch.calls == [PROMETHEUS_URL]


def test_url_checksum_mismatch_is_rejected_and_not_cached(tmp_path: pathlib.Path) -> None:
    tampered = MANIFEST + b"  annotations: {evil: true}\n"
    fetch = FakeFetch(tampered)
    with pytest.raises(AddonSourceError) as info:
        read_url(tmp_path, fetch)
    assert str(info.value) == (
        f"Checksum mismatch for addon 'prometheus' (Istio 1.20.8) downloaded from {PROMETHEUS_URL}: "
        f"expected sha256 {MANIFEST_SHA} (addons.lock), got {hashlib.sha256(tampered).hexdigest()}. "
        "The file was not cached or used."
    )
    assert fetch.calls == [PROMETHEUS_URL]
    assert not (tmp_path / "cache").exists()


def test_url_stale_cache_is_downloaded_again(tmp_path: pathlib.Path) -> None:
    cache_file = tmp_path / "cache" / "1.20.8" / "prometheus.yaml"
    cache_file.parent.mkdir(parents=True)
    cache_file.write_bytes(b"half-written or from another release\n")
    fetch = FakeFetch(MANIFEST)
    assert read_url(tmp_path, fetch) == MANIFEST.decode()
    assert fetch.calls == [PROMETHEUS_URL]
    assert cache_file.read_bytes() == MANIFEST


def test_url_valid_cache_works_offline(tmp_path: pathlib.Path) -> None:
    cache_file = tmp_path / "cache" / "1.20.8" / "prometheus.yaml"
    cache_file.parent.mkdir(parents=True)
    cache_file.write_bytes(MANIFEST)
    assert read_url(tmp_path, no_fetch) == MANIFEST.decode()


def test_url_checksum_table_may_use_uppercase(tmp_path: pathlib.Path) -> None:
    fetch = FakeFetch(MANIFEST)
    text = read_addon_text(
        URL_SOURCE,
        "1.20.8",
        "prometheus",
        base_dir=tmp_path,
        cache_dir=tmp_path / "cache",
        checksums={("1.20.8", "prometheus"): MANIFEST_SHA.upper()},
        fetch=fetch,
    )
    assert text == MANIFEST.decode()


def test_url_unknown_version_lists_known_versions_and_does_not_download(tmp_path: pathlib.Path) -> None:
    with pytest.raises(AddonSourceError) as info:
        read_addon_text(
            URL_SOURCE, "1.19.0", "kiali", base_dir=tmp_path, cache_dir=tmp_path / "cache", fetch=no_fetch
        )
    url = "https://addons.example.invalid/istio/1.19.0/samples/addons/kiali.yaml"
    assert str(info.value) == (
        f"No sha256 is locked for addon 'kiali' of Istio 1.19.0 in addons.lock, so {url} cannot be verified "
        f"and is not downloaded. Versions locked for 'kiali': {KNOWN_VERSIONS}. To lock 1.19.0, run "
        "`python -m components.addon_lock add 1.19.0 --source "
        "'https://addons.example.invalid/istio/{version}/samples/addons'` in the project, check the sums it "
        "prints and commit addons.lock; or point addons.source at a local directory (for example an "
        "unpacked istio-1.19.0/samples/addons)."
    )
    assert not (tmp_path / "cache").exists()


def test_url_unknown_addon_says_no_versions(tmp_path: pathlib.Path) -> None:
    with pytest.raises(AddonSourceError, match=re.escape("Versions locked for 'tempo': none.")):
        read_addon_text(URL_SOURCE, "1.20.8", "tempo", base_dir=tmp_path, cache_dir=tmp_path, fetch=no_fetch)


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (
            urllib.error.HTTPError(PROMETHEUS_URL, 404, "Not Found", email.message.Message(), None),
            "HTTP 404 Not Found",
        ),
        (
            urllib.error.URLError("[Errno -2] Name or service not known"),
            "[Errno -2] Name or service not known",
        ),
        (urllib.error.URLError(TimeoutError("timed out")), "timed out"),
        (TimeoutError(), "timed out"),
        (ConnectionResetError(104, "Connection reset by peer"), "[Errno 104] Connection reset by peer"),
    ],
)
def test_url_fetch_failure_names_url_and_reason(
    tmp_path: pathlib.Path, error: BaseException, reason: str
) -> None:
    fetch = FakeFetch(error)
    with pytest.raises(AddonSourceError) as info:
        read_url(tmp_path, fetch)
    assert str(info.value) == (
        f"Could not download addon 'prometheus' (Istio 1.20.8) from {PROMETHEUS_URL}: {reason}. "
        "A local directory as addons.source avoids the download."
    )
    assert fetch.calls == [PROMETHEUS_URL]
    assert not (tmp_path / "cache").exists()


def test_file_url_with_default_fetch(tmp_path: pathlib.Path) -> None:
    upstream = tmp_path / "upstream" / "1.20.8"
    upstream.mkdir(parents=True)
    (upstream / "prometheus.yaml").write_bytes(MANIFEST)
    source = (tmp_path / "upstream").as_uri() + "/{version}"

    def load() -> list[dict[str, object]]:
        return load_addon(
            source,
            "1.20.8",
            "prometheus",
            base_dir=tmp_path,
            cache_dir=tmp_path / "cache",
            checksums=CHECKSUMS,
        )

    objects = load()
    assert objects == [yaml.safe_load(MANIFEST)]
    assert (tmp_path / "cache" / "1.20.8" / "prometheus.yaml").read_bytes() == MANIFEST

    # With the source gone the cache alone must be enough: later runs are offline.
    (upstream / "prometheus.yaml").unlink()
    assert load() == objects


def test_file_url_missing_file_with_default_fetch(tmp_path: pathlib.Path) -> None:
    source = tmp_path.as_uri()
    url = f"{source}/prometheus.yaml"
    with pytest.raises(AddonSourceError) as info:
        read_addon_text(
            source, "1.20.8", "prometheus", base_dir=tmp_path, cache_dir=tmp_path / "c", checksums=CHECKSUMS
        )
    assert str(info.value) == (
        f"Could not download addon 'prometheus' (Istio 1.20.8) from {url}: "
        f"[Errno 2] No such file or directory: '{tmp_path / 'prometheus.yaml'}'. "
        "A local directory as addons.source avoids the download."
    )


def test_default_cache_dir_is_used_for_urls(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    monkeypatch.setenv("ISTIO_MESH_CACHE_DIR", str(tmp_path / "env-cache"))
    fetch = FakeFetch(MANIFEST)
    read_addon_text(URL_SOURCE, "1.20.8", "prometheus", base_dir=tmp_path, checksums=CHECKSUMS, fetch=fetch)
    assert (tmp_path / "env-cache" / "1.20.8" / "prometheus.yaml").read_bytes() == MANIFEST


def test_unwritable_cache_warns_but_still_returns_verified_text(tmp_path: pathlib.Path) -> None:
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache directory should be\n", encoding="utf-8")
    fetch = FakeFetch(MANIFEST, MANIFEST)
    with pytest.warns(RuntimeWarning, match=re.escape(f"Could not cache {PROMETHEUS_URL} at ")):
        assert read_url(tmp_path, fetch) == MANIFEST.decode()
    with pytest.warns(RuntimeWarning):
        assert read_url(tmp_path, fetch) == MANIFEST.decode()
    assert fetch.calls == [PROMETHEUS_URL, PROMETHEUS_URL]


# --- parsing -------------------------------------------------------------------------------------


def _obj(kind: str, name: str, api_version: str = "v1") -> dict[str, object]:
    return {"apiVersion": api_version, "kind": kind, "metadata": {"name": name}}


@pytest.fixture(params=["default", "pure-python"])
def yaml_loader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    # Every parsing test also runs with the pure-Python loader, which is what machines without
    # libyaml get.
    if request.param == "pure-python":
        monkeypatch.setattr(addon_source, "YAML_LOADER", yaml.SafeLoader)
    return request.param


@pytest.mark.usefixtures("yaml_loader")
def test_parse_keeps_order_and_drops_empty_documents() -> None:
    text = (
        "# leading comment\n---\n"
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: b}\n"
        "---\n---\n~\n---\n"
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\n"
        "---\n"
    )
    assert parse_manifest(text, "x.yaml") == [_obj("ServiceAccount", "b"), _obj("Deployment", "a", "apps/v1")]


@pytest.mark.usefixtures("yaml_loader")
def test_parse_empty_text() -> None:
    assert parse_manifest("", "x.yaml") == []
    assert parse_manifest("# nothing\n---\n", "x.yaml") == []


@pytest.mark.usefixtures("yaml_loader")
def test_parse_flattens_lists() -> None:
    text = (
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: first}\n"
        "---\n"
        "apiVersion: v1\nkind: List\nmetadata: {}\nitems:\n"
        "- {apiVersion: v1, kind: ConfigMap, metadata: {name: one}}\n"
        "- apiVersion: v1\n  kind: ServiceList\n"
        "  items: [{apiVersion: v1, kind: Service, metadata: {name: two}}]\n"
        "---\n"
        "apiVersion: v1\nkind: ConfigMapList\nitems:\n"
        "- {apiVersion: v1, kind: ConfigMap, metadata: {name: three}}\n"
        "---\n"
        "apiVersion: v1\nkind: List\nitems: null\n"
        "---\n"
        "apiVersion: example.com/v1\nkind: IPAllowList\nmetadata: {name: not-a-list}\n"
    )
    assert parse_manifest(text, "x.yaml") == [
        _obj("Namespace", "first"),
        _obj("ConfigMap", "one"),
        _obj("Service", "two"),
        _obj("ConfigMap", "three"),
        _obj("IPAllowList", "not-a-list", "example.com/v1"),
    ]


@pytest.mark.usefixtures("yaml_loader")
@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "apiVersion: v1\nkind: A\nmetadata: {name: a}\n---\napiVersion: v1\nmetadata: {name: b}\n",
            "origin.yaml: document index 1: missing 'kind'.",
        ),
        (
            "---\n---\n- a\n- b\n",
            "origin.yaml: document index 1 is a sequence, not a Kubernetes object mapping.",
        ),
        ("just a string\n", "origin.yaml: document index 0 is a string, not a Kubernetes object mapping."),
        (
            "apiVersion: 1\nkind: A\nmetadata: {name: a}\n",
            "origin.yaml: document index 0: 'apiVersion' must be a non-empty string, not integer 1.",
        ),
        (
            "apiVersion: v1\nkind: ''\nmetadata: {name: a}\n",
            "origin.yaml: document index 0: 'kind' must be a non-empty string, not string ''.",
        ),
        ("apiVersion: v1\nkind: A\n", "origin.yaml: document index 0: missing 'metadata'."),
        (
            "apiVersion: v1\nkind: A\nmetadata: [x]\n",
            "origin.yaml: document index 0: 'metadata' must be a mapping, not a sequence.",
        ),
        (
            "apiVersion: v1\nkind: A\nmetadata: {labels: {}}\n",
            "origin.yaml: document index 0: missing 'metadata.name'.",
        ),
        (
            "apiVersion: v1\nkind: A\nmetadata: {name: null}\n",
            "origin.yaml: document index 0: 'metadata.name' must be a non-empty string, not null None.",
        ),
        (
            "apiVersion: v1\nkind: List\nitems:\n"
            "- {apiVersion: v1, kind: A, metadata: {name: a}}\n"
            "- {apiVersion: v1, kind: B}\n",
            "origin.yaml: document index 0, item 1: missing 'metadata'.",
        ),
        (
            "apiVersion: v1\nkind: List\nitems: {a: b}\n",
            "origin.yaml: document index 0: 'items' of a List must be a sequence, not a mapping.",
        ),
    ],
)
def test_parse_rejects_bad_documents(text: str, message: str) -> None:
    with pytest.raises(AddonSourceError) as info:
        parse_manifest(text, "origin.yaml")
    assert str(info.value) == message


@pytest.mark.usefixtures("yaml_loader")
def test_parse_yaml_syntax_error_names_origin_document_and_line() -> None:
    text = "apiVersion: v1\nkind: A\nmetadata: {name: a}\n---\nkind: {broken\n"
    with pytest.raises(AddonSourceError) as info:
        parse_manifest(text, "https://mirror.local/kiali.yaml")
    message = str(info.value)
    assert message.startswith("https://mirror.local/kiali.yaml: document index 1: invalid YAML: ")
    assert 'in "https://mirror.local/kiali.yaml", line 5, column 7' in message


def test_load_addon_url_parse_error_names_url(tmp_path: pathlib.Path) -> None:
    bad = b"kind: [\n"
    with pytest.raises(
        AddonSourceError, match=re.escape(f"{PROMETHEUS_URL}: document index 0: invalid YAML: ")
    ):
        load_addon(
            URL_SOURCE,
            "1.20.8",
            "prometheus",
            base_dir=tmp_path,
            cache_dir=tmp_path / "cache",
            checksums={("1.20.8", "prometheus"): hashlib.sha256(bad).hexdigest()},
            fetch=FakeFetch(bad),
        )


# --- the lock file ------------------------------------------------------------------------------


def test_lock_covers_every_addon_of_eleven_releases() -> None:
    sums = read_lock(LOCK_FILE)
    versions = sorted({version for version, _ in sums})
    assert len(versions) == 11
    assert ", ".join(sorted(versions, key=lambda v: tuple(int(p) for p in v.split(".")))) == KNOWN_VERSIONS
    assert len(sums) == 55
    assert set(sums) == {(version, addon) for version in versions for addon in KNOWN_ADDONS}


def test_lock_spot_values_and_read_only() -> None:
    sums = locked_sums()
    assert (
        sums[("1.20.8", "prometheus")] == "87dfa1a3f329ccbcae0dc038a13c8f3889fb065802285dfebfeee4900b461d60"
    )
    assert sums[("1.30.3", "loki")] == "d0b1495e04d1501e8b25be1217e85ba539af55822274a67545270146b0f8823c"
    # Releases that did not change a file share its sum.
    assert sums[("1.20.8", "jaeger")] == sums[("1.21.6", "jaeger")]
    with pytest.raises(TypeError):
        sums[("9.9.9", "loki")] = "0" * 64  # pyright: ignore[reportIndexIssue]
