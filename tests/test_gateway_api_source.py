"""The Gateway API source: module zip, release manifest or local directory; the lock; the object checks.

tests/fixtures/gateway-api/<version>/<channel>-install.yaml are hand-written stand-ins for each
pinned release's manifest: the names, groups and annotations a release carries (three CRDs, the
experimental channel's XMesh, and from v1.5 the safe-upgrades policy and binding, which v1.5.x ships
as `v1.5.0-dev`), every schema an open object. The module zips here are built in tmp_path from them.
The real cached module zips are read only by the last test, when they are there.
"""

from __future__ import annotations

import io
import os
import pathlib
import shutil
import subprocess
import zipfile

import pytest
import yaml

from components import gateway_api_lock
from components.gateway_api_source import (
    GatewayApiSourceError,
    artifact_name,
    check_objects,
    load_gateway_api,
    location,
    lock_command,
    module_objects,
    read_lock,
    source_kind,
)
from components.gateway_api_versions import DEFAULT_SOURCE, GATEWAY_API_FOR_ISTIO

ROOT = pathlib.Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "gateway-api"


def _module_cache() -> pathlib.Path:
    """Where `go mod download` (hack/toolchain.sh) keeps modules: `go env GOMODCACHE`, as the e2e reads it."""
    go = shutil.which("go")
    found = subprocess.run([go, "env", "GOMODCACHE"], capture_output=True, text=True).stdout if go else ""
    return pathlib.Path(
        found.strip() or os.environ.get("GOMODCACHE") or pathlib.Path.home() / "go" / "pkg" / "mod"
    )


MODULE_CACHE = _module_cache()
CACHED_ZIPS = MODULE_CACHE / "cache" / "download" / "sigs.k8s.io" / "gateway-api" / "@v"
PINNED = sorted({row.pinned for row in GATEWAY_API_FOR_ISTIO.values()})


def fixture_text(version: str, channel: str = "standard") -> str:
    return (FIXTURES / version / f"{channel}-install.yaml").read_text()


def module_zip(version: str, files: dict[str, str], *, module: str = "sigs.k8s.io/gateway-api") -> bytes:
    """A module zip as the proxy serves one: every file under `<module>@<version>/`."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(f"{module}@{version}/{name}", text)
    return buffer.getvalue()


def split_files(version: str, channel: str) -> dict[str, str]:
    """The fixture manifest as config/crd/<channel>/ files, one per object, as build-install-yaml reads them."""
    files: dict[str, str] = {}
    for obj in yaml.safe_load_all(fixture_text(version, channel)):
        if obj is None:
            continue
        stem = "vap_safeupgrades" if obj["kind"] != "CustomResourceDefinition" else obj["metadata"]["name"]
        name = f"config/crd/{channel}/gateway.networking.k8s.io_{stem}.yaml"
        files[name] = files.get(name, "") + "---\n" + yaml.safe_dump(obj)
    return files


def zip_source(tmp_path: pathlib.Path, data: bytes, version: str = "v1.5.1") -> str:
    (tmp_path / f"{version}.zip").write_bytes(data)
    return f"file://{tmp_path}/{{version}}.zip"


def sums(version: str, artifact: str, data: bytes) -> dict[tuple[str, str], str]:
    import hashlib

    return {(version, artifact): hashlib.sha256(data).hexdigest()}


# --- source kinds --------------------------------------------------------------------------------


def test_source_kinds() -> None:
    assert source_kind(DEFAULT_SOURCE) == "zip"
    assert source_kind("https://example.test/{version}/{channel}-install.yaml") == "yaml"
    assert source_kind("tests/fixtures/gateway-api/{version}") == "directory"
    with pytest.raises(GatewayApiSourceError) as error:
        source_kind("https://example.test/{version}/")
    assert str(error.value) == (
        "gatewayApi.source 'https://example.test/{version}/' is a URL, so it must end in .zip (a Go module "
        f"zip of sigs.k8s.io/gateway-api, such as the default {DEFAULT_SOURCE}) or .yaml (a release "
        "manifest such as <channel>-install.yaml)."
    )


def test_a_local_directory_is_read_as_it_is(tmp_path: pathlib.Path) -> None:
    objects = load_gateway_api(
        "tests/fixtures/gateway-api/{version}", "v1.5.1", "standard", base_dir=ROOT, checksums={}
    )
    assert [(o["kind"], o["metadata"]["name"]) for o in objects] == [
        ("CustomResourceDefinition", "gatewayclasses.gateway.networking.k8s.io"),
        ("CustomResourceDefinition", "gateways.gateway.networking.k8s.io"),
        ("CustomResourceDefinition", "httproutes.gateway.networking.k8s.io"),
        ("ValidatingAdmissionPolicy", "safe-upgrades.gateway.networking.k8s.io"),
        ("ValidatingAdmissionPolicyBinding", "safe-upgrades.gateway.networking.k8s.io"),
    ]


def test_a_missing_local_manifest_names_the_path(tmp_path: pathlib.Path) -> None:
    with pytest.raises(GatewayApiSourceError) as error:
        load_gateway_api(str(tmp_path), "v1.5.1", "experimental", base_dir=ROOT)
    assert str(error.value) == (
        f"Gateway API v1.5.1 (experimental channel) not found: {tmp_path}/experimental-install.yaml does "
        f"not exist (gatewayApi.source is '{tmp_path}')."
    )


def test_a_module_zip_gives_the_channel_directory_in_name_order(tmp_path: pathlib.Path) -> None:
    files = {
        **split_files("v1.5.1", "standard"),
        **split_files("v1.5.1", "experimental"),
        "config/crd/standard/kustomization.yaml": "resources: []\n",  # not gateway*: not in the manifest
        "config/crd/standard/nested/gateway.networking.k8s.io_x.yaml": "kind: Nope\n",  # another directory
        "README.md": "",
    }
    data = module_zip("v1.5.1", files)
    source = zip_source(tmp_path, data)
    standard = load_gateway_api(
        source,
        "v1.5.1",
        "standard",
        base_dir=ROOT,
        cache=tmp_path / "cache",
        checksums=sums("v1.5.1", "module.zip", data),
    )
    from_manifest = [o for o in yaml.safe_load_all(fixture_text("v1.5.1")) if o]
    key = [(o["kind"], o["metadata"]["name"]) for o in from_manifest]
    assert [(o["kind"], o["metadata"]["name"]) for o in standard] == sorted(key[:3]) + key[3:]
    experimental = load_gateway_api(
        source,
        "v1.5.1",
        "experimental",
        base_dir=ROOT,
        cache=tmp_path / "cache",
        checksums=sums("v1.5.1", "module.zip", data),
    )
    assert "xmeshes.gateway.networking.x-k8s.io" in [o["metadata"]["name"] for o in experimental]
    assert (tmp_path / "cache" / "v1.5.1" / "module.zip").read_bytes() == data


def test_a_zip_of_another_version_is_not_the_release(tmp_path: pathlib.Path) -> None:
    data = module_zip("v1.4.1", split_files("v1.5.1", "standard"))
    with pytest.raises(GatewayApiSourceError) as error:
        module_objects(data, "v1.5.1", "standard", "the.zip")
    assert str(error.value) == (
        "the.zip is not the module zip of sigs.k8s.io/gateway-api@v1.5.1: it has no "
        "sigs.k8s.io/gateway-api@v1.5.1/config/crd/standard/gateway*.yaml."
    )
    with pytest.raises(GatewayApiSourceError, match=r"^the.zip is not a zip archive: "):
        module_objects(b"<html>", "v1.5.1", "standard", "the.zip")


def test_a_yaml_url_is_the_channel_manifest(tmp_path: pathlib.Path) -> None:
    data = fixture_text("v1.5.1", "experimental").encode()
    (tmp_path / "v1.5.1").mkdir()
    (tmp_path / "v1.5.1" / "experimental-install.yaml").write_bytes(data)
    source = f"file://{tmp_path}/{{version}}/{{channel}}-install.yaml"
    objects = load_gateway_api(
        source,
        "v1.5.1",
        "experimental",
        base_dir=ROOT,
        cache=tmp_path / "cache",
        checksums=sums("v1.5.1", "experimental-install.yaml", data),
    )
    assert len(objects) == 6
    assert (tmp_path / "cache" / "v1.5.1" / "experimental-install.yaml").read_bytes() == data


# --- the lock ------------------------------------------------------------------------------------


def test_an_unlocked_version_is_refused_before_any_download(tmp_path: pathlib.Path) -> None:
    def fetch(url: str) -> bytes:
        raise AssertionError(f"downloaded {url}")

    with pytest.raises(GatewayApiSourceError) as error:
        load_gateway_api(
            DEFAULT_SOURCE,
            "v1.7.0",
            "standard",
            base_dir=ROOT,
            cache=tmp_path,
            checksums=read_lock(),
            fetch=fetch,
        )
    assert str(error.value) == (
        "No sha256 is locked for the Gateway API v1.7.0 module.zip in gateway-api.lock, so "
        "https://proxy.golang.org/sigs.k8s.io/gateway-api/@v/v1.7.0.zip cannot be verified and is not "
        "downloaded. Versions locked as module.zip: v1.1.0, v1.2.1, v1.3.0, v1.4.1, v1.5.1, v1.6.0. To lock "
        "v1.7.0, run `python -m components.gateway_api_lock add v1.7.0` in the project, check the sums it "
        "prints and commit gateway-api.lock; or point gatewayApi.source at a local directory holding "
        "standard-install.yaml."
    )


def test_lock_commands_name_the_source_and_channel() -> None:
    assert (
        lock_command("v1.5.1", DEFAULT_SOURCE, "experimental")
        == "python -m components.gateway_api_lock add v1.5.1"
    )
    assert (
        lock_command("v1.5.1", "https://x.test/{version}/{channel}-install.yaml", "experimental")
        == "python -m components.gateway_api_lock add v1.5.1 --source 'https://x.test/{version}/{channel}-install.yaml' --channel experimental"
    )


def test_a_tampered_download_is_refused_and_not_cached(tmp_path: pathlib.Path) -> None:
    data = module_zip("v1.5.1", split_files("v1.5.1", "standard"))
    locked = sums("v1.5.1", "module.zip", data)
    tampered = module_zip("v1.5.1", {**split_files("v1.5.1", "standard"), "evil.txt": "x"})
    source = zip_source(tmp_path, tampered)
    with pytest.raises(GatewayApiSourceError) as error:
        load_gateway_api(
            source, "v1.5.1", "standard", base_dir=ROOT, cache=tmp_path / "cache", checksums=locked
        )
    assert str(error.value).startswith(
        f"Checksum mismatch for the Gateway API v1.5.1 module.zip downloaded from file://{tmp_path}/v1.5.1.zip: "
        f"expected sha256 {locked[('v1.5.1', 'module.zip')]} (gateway-api.lock), got "
    )
    assert str(error.value).endswith(". The file was not cached or used.")
    assert not (tmp_path / "cache" / "v1.5.1" / "module.zip").exists()


def test_a_tampered_cache_is_downloaded_again(tmp_path: pathlib.Path) -> None:
    data = module_zip("v1.5.1", split_files("v1.5.1", "standard"))
    cached = tmp_path / "cache" / "v1.5.1" / "module.zip"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"tampered")
    fetched: list[str] = []

    def fetch(url: str) -> bytes:
        fetched.append(url)
        return data

    load_gateway_api(
        DEFAULT_SOURCE, "v1.5.1", "standard", base_dir=ROOT, cache=tmp_path / "cache",
        checksums=sums("v1.5.1", "module.zip", data), fetch=fetch,
    )  # fmt: skip
    assert fetched == ["https://proxy.golang.org/sigs.k8s.io/gateway-api/@v/v1.5.1.zip"]
    assert cached.read_bytes() == data
    # A good cache is read without a download.
    load_gateway_api(
        DEFAULT_SOURCE, "v1.5.1", "standard", base_dir=ROOT, cache=tmp_path / "cache",
        checksums=sums("v1.5.1", "module.zip", data), fetch=lambda url: pytest.fail(url),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("v1.5.1 module.zip", "expected three fields, 'version artifact sha256'"),
        ("1.5.1 module.zip " + "a" * 64, "version '1.5.1' is not a release tag such as v1.5.1"),
        (
            "v1.5.1 release.zip " + "a" * 64,
            "artifact 'release.zip' is not one of module.zip, standard-install.yaml, experimental-install.yaml",
        ),
        ("v1.5.1 module.zip " + "A" * 64, "the sha256 must be 64 lowercase hex digits"),
    ],
)
def test_a_bad_lock_line_is_named(tmp_path: pathlib.Path, line: str, problem: str) -> None:
    lock = tmp_path / "gateway-api.lock"
    lock.write_text(f"# comment\n{line}\n")
    with pytest.raises(GatewayApiSourceError) as error:
        read_lock(lock)
    assert str(error.value) == f"{lock}:2: {problem}: {line!r}."


def test_the_lock_holds_every_pinned_release() -> None:
    locked = read_lock()
    assert {v for v, a in locked if a == "module.zip"} == set(PINNED)
    text = (ROOT / "gateway-api.lock").read_text()
    for version in PINNED:
        assert f"# go.sum: sigs.k8s.io/gateway-api {version} h1:" in text


def test_lock_add_appends_the_sum_and_go_sum_hash(tmp_path: pathlib.Path) -> None:
    data = module_zip(
        "v1.5.1", {**split_files("v1.5.1", "standard"), **split_files("v1.5.1", "experimental")}
    )
    lock = tmp_path / "gateway-api.lock"
    lock.write_text("# reviewed\n")
    out, err = io.StringIO(), io.StringIO()
    code = gateway_api_lock.main(
        ["add", "v1.5.1", "--lock", str(lock)], fetch=lambda url: data, out=out, err=err
    )
    assert code == 0, err.getvalue()
    h1 = gateway_api_lock.go_sum_hash(data)
    sha = sums("v1.5.1", "module.zip", data)[("v1.5.1", "module.zip")]
    assert (
        lock.read_text()
        == f"# reviewed\n# go.sum: sigs.k8s.io/gateway-api v1.5.1 {h1}\nv1.5.1 module.zip {sha}\n"
    )
    # A different file under the same release is refused, and the lock stays as it was.
    other = module_zip(
        "v1.5.1", {**split_files("v1.5.1", "standard"), **split_files("v1.5.1", "experimental"), "x": ""}
    )
    code = gateway_api_lock.main(
        ["add", "v1.5.1", "--lock", str(lock)], fetch=lambda url: other, out=out, err=err
    )
    assert code == 1
    assert (
        "gateway-api.lock was not changed: these downloads differ from their locked sums:" in err.getvalue()
    )
    assert lock.read_text().endswith(f"v1.5.1 module.zip {sha}\n")
    # check: the same bytes match, others differ.
    assert (
        gateway_api_lock.main(["check", "--lock", str(lock)], fetch=lambda url: data, out=out, err=err) == 0
    )
    assert (
        gateway_api_lock.main(["check", "--lock", str(lock)], fetch=lambda url: other, out=out, err=err) == 1
    )


def test_lock_add_refuses_what_is_not_the_release(tmp_path: pathlib.Path) -> None:
    lock = tmp_path / "gateway-api.lock"
    lock.write_text("")
    err = io.StringIO()
    code = gateway_api_lock.main(
        ["add", "v1.5.1", "--lock", str(lock)],
        fetch=lambda url: b"<html>not found</html>",
        out=io.StringIO(),
        err=err,
    )
    assert code == 1
    assert err.getvalue().startswith(
        "error: https://proxy.golang.org/sigs.k8s.io/gateway-api/@v/v1.5.1.zip: not the Gateway API v1.5.1: "
    )
    assert lock.read_text() == ""


def test_go_sum_hash_is_dirhash_hash1() -> None:
    # golang.org/x/mod/sumdb/dirhash Hash1 of a zip with one empty file `a@v1/x`:
    # sha256("") then "<hex>  a@v1/x\n", hashed and base64-encoded.
    import base64
    import hashlib

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a@v1/x", "")
    line = f"{hashlib.sha256(b'').hexdigest()}  a@v1/x\n"
    assert (
        gateway_api_lock.go_sum_hash(buffer.getvalue())
        == "h1:" + base64.b64encode(hashlib.sha256(line.encode()).digest()).decode()
    )


# --- what may be in a release --------------------------------------------------------------------


def objects_of(version: str = "v1.5.1", channel: str = "standard") -> list[dict]:
    return [o for o in yaml.safe_load_all(fixture_text(version, channel)) if o]


def refusal(objects: list[dict], version: str = "v1.5.1", channel: str = "standard") -> str:
    with pytest.raises(GatewayApiSourceError) as error:
        check_objects(objects, version, channel, "src")
    return str(error.value)


def expected(problem: str, version: str = "v1.5.1", channel: str = "standard") -> str:
    return (
        f"src is not the Gateway API {version} {channel} channel:\n  - {problem}\nOnly the release's CRDs and "
        "its safe-upgrades ValidatingAdmissionPolicy are installed; check gatewayApi.source, version and channel."
    )


def test_every_fixture_is_its_release() -> None:
    for path in sorted(FIXTURES.glob("*/*-install.yaml")):
        check_objects(
            objects_of(path.parent.name, path.name.split("-")[0]),
            path.parent.name,
            path.name.split("-")[0],
            str(path),
        )
    assert sorted(p.name for p in FIXTURES.iterdir()) == PINNED


def test_another_kind_is_refused() -> None:
    objects = [*objects_of(), {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}]
    assert refusal(objects) == expected(
        "v1 ConfigMap x: not a Gateway API CRD, nor the safe-upgrades ValidatingAdmissionPolicy or its binding"
    )


def test_a_crd_of_another_group_is_refused() -> None:
    objects = objects_of()
    objects[0]["spec"]["group"] = "example.com"
    assert refusal(objects) == expected(
        "apiextensions.k8s.io/v1 CustomResourceDefinition gatewayclasses.gateway.networking.k8s.io: not a Gateway "
        "API CRD (group 'example.com'; expected gateway.networking.k8s.io or gateway.networking.x-k8s.io)"
    )


def test_a_crd_of_another_release_or_channel_is_refused() -> None:
    objects = objects_of()
    objects[1]["metadata"]["annotations"]["gateway.networking.k8s.io/bundle-version"] = "v1.4.1"
    assert refusal(objects) == expected(
        "apiextensions.k8s.io/v1 CustomResourceDefinition gateways.gateway.networking.k8s.io: "
        "gateway.networking.k8s.io/bundle-version is 'v1.4.1', not 'v1.5.1'"
    )
    assert refusal(objects_of(), channel="experimental") == (
        "src is not the Gateway API v1.5.1 experimental channel:\n"
        + "".join(
            f"  - apiextensions.k8s.io/v1 CustomResourceDefinition {n}.gateway.networking.k8s.io: "
            "gateway.networking.k8s.io/channel is 'standard', not 'experimental'\n"
            for n in ("gatewayclasses", "gateways", "httproutes")
        )
        + "Only the release's CRDs and its safe-upgrades ValidatingAdmissionPolicy are installed; check "
        "gatewayApi.source, version and channel."
    )


def test_a_v1beta1_crd_is_refused() -> None:
    objects = objects_of()
    objects[0]["apiVersion"] = "apiextensions.k8s.io/v1beta1"
    assert refusal(objects) == expected(
        "apiextensions.k8s.io/v1beta1 CustomResourceDefinition gatewayclasses.gateway.networking.k8s.io: "
        "a CRD must be apiextensions.k8s.io/v1"
    )


@pytest.mark.parametrize("bundle", ["v1.5.0-dev", "v1.5.1", "v1.5.0"])
def test_the_policy_of_the_release_minor_passes(bundle: str) -> None:
    objects = objects_of()
    for obj in objects[3:]:
        obj["metadata"]["annotations"]["gateway.networking.k8s.io/bundle-version"] = bundle
    check_objects(objects, "v1.5.1", "standard", "src")


@pytest.mark.parametrize("bundle", ["v1.4.0", "v1.5.2", "v1.6.0-dev", "v1.5", None])
def test_a_policy_of_another_release_is_refused(bundle: str | None) -> None:
    objects = objects_of()
    objects[3]["metadata"]["annotations"]["gateway.networking.k8s.io/bundle-version"] = bundle
    assert refusal(objects) == expected(
        "admissionregistration.k8s.io/v1 ValidatingAdmissionPolicy safe-upgrades.gateway.networking.k8s.io: "
        f"gateway.networking.k8s.io/bundle-version is {bundle!r}, not of release v1.5.1"
    )


def test_a_policy_of_another_name_or_api_version_is_refused() -> None:
    objects = objects_of()
    objects[3]["apiVersion"] = "admissionregistration.k8s.io/v1beta1"
    objects[4]["metadata"]["name"] = "other"
    assert refusal(objects) == (
        "src is not the Gateway API v1.5.1 standard channel:\n"
        "  - admissionregistration.k8s.io/v1beta1 ValidatingAdmissionPolicy safe-upgrades.gateway.networking.k8s.io: "
        "a ValidatingAdmissionPolicy must be admissionregistration.k8s.io/v1\n"
        "  - admissionregistration.k8s.io/v1 ValidatingAdmissionPolicyBinding other: not a Gateway API CRD, nor "
        "the safe-upgrades ValidatingAdmissionPolicy or its binding\n"
        "Only the release's CRDs and its safe-upgrades ValidatingAdmissionPolicy are installed; check "
        "gatewayApi.source, version and channel."
    )


def test_a_duplicate_and_an_empty_release_are_refused() -> None:
    objects = objects_of()
    assert refusal([*objects, objects[0]]) == expected(
        "apiextensions.k8s.io/v1 CustomResourceDefinition gatewayclasses.gateway.networking.k8s.io: declared twice"
    )
    assert refusal(objects[3:]) == expected("no CustomResourceDefinition at all")


# --- the real releases ---------------------------------------------------------------------------


@pytest.mark.parametrize("version", PINNED)
def test_the_cached_module_zip_of_each_pinned_release(version: str) -> None:
    path = CACHED_ZIPS / f"{version}.zip"
    if not path.exists():
        if os.environ.get("ISTIO_MESH_REQUIRE_GATEWAY_API_ZIPS"):
            pytest.fail(
                f"{path} is missing: go mod download sigs.k8s.io/gateway-api@{version} (hack/toolchain.sh)"
            )
        pytest.skip(f"{path} is not in the Go module cache")
    data = path.read_bytes()
    assert sums(version, "module.zip", data) == {
        (version, "module.zip"): read_lock()[(version, "module.zip")]
    }
    ziphash = path.with_suffix(".ziphash")
    if ziphash.exists():
        assert gateway_api_lock.go_sum_hash(data) == ziphash.read_text().strip()
    for channel in ("standard", "experimental"):
        objects = module_objects(data, version, channel, str(path))
        check_objects(objects, version, channel, str(path))
        crds = [o for o in objects if o["kind"] == "CustomResourceDefinition"]
        assert {"gatewayclasses.gateway.networking.k8s.io", "gateways.gateway.networking.k8s.io",
                "httproutes.gateway.networking.k8s.io"} <= {o["metadata"]["name"] for o in crds}  # fmt: skip
        assert {o["metadata"]["annotations"]["gateway.networking.k8s.io/bundle-version"] for o in crds} == {
            version
        }


# --- what each part of a source means --------------------------------------------------------------


def test_a_sources_placeholders_query_and_trailing_slash() -> None:
    assert source_kind("https://x.test/{version}.ZIP?token=a.yaml") == "zip"
    assert source_kind("https://x.test/{channel}.yml") == "yaml"
    assert location("https://x.test/{version}/{channel}-install.yaml", "v1.5.1", "experimental") == (
        "https://x.test/v1.5.1/experimental-install.yaml"
    )
    assert location("mirror/{version}/", "v1.5.1", "standard") == "mirror/v1.5.1/standard-install.yaml"
    assert artifact_name(DEFAULT_SOURCE, "experimental") == "module.zip"
    assert (
        artifact_name("https://x.test/{channel}-install.yaml", "experimental") == "experimental-install.yaml"
    )


def test_the_lock_command_of_a_manifest_url_names_only_a_channel_other_than_standard() -> None:
    assert lock_command("v1.5.1", "https://x.test/{version}/{channel}-install.yaml", "standard") == (
        "python -m components.gateway_api_lock add v1.5.1 --source 'https://x.test/{version}/{channel}-install.yaml'"
    )
    assert lock_command("v1.5.1", "https://x.test/{version}.zip", "experimental") == (
        "python -m components.gateway_api_lock add v1.5.1 --source 'https://x.test/{version}.zip'"
    )


def test_a_relative_directory_is_the_projects_and_its_problems_name_the_full_path(
    tmp_path: pathlib.Path,
) -> None:
    (tmp_path / "mirror").mkdir()
    (tmp_path / "mirror" / "standard-install.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n"
    )
    with pytest.raises(GatewayApiSourceError) as error:
        load_gateway_api("mirror", "v1.5.1", "standard", base_dir=tmp_path)
    assert str(error.value) == (
        f"{tmp_path}/mirror/standard-install.yaml is not the Gateway API v1.5.1 standard channel:\n"
        "  - v1 ConfigMap x: not a Gateway API CRD, nor the safe-upgrades ValidatingAdmissionPolicy or its "
        "binding\n  - no CustomResourceDefinition at all\n"
        "Only the release's CRDs and its safe-upgrades ValidatingAdmissionPolicy are installed; check "
        "gatewayApi.source, version and channel."
    )


def test_a_manifest_that_is_not_utf8_or_not_yaml_is_named(tmp_path: pathlib.Path) -> None:
    (tmp_path / "standard-install.yaml").write_bytes(b"\xff")
    with pytest.raises(GatewayApiSourceError) as error:
        load_gateway_api(str(tmp_path), "v1.5.1", "standard", base_dir=ROOT)
    assert str(error.value) == (
        f"{tmp_path}/standard-install.yaml is not UTF-8 text: 'utf-8' codec can't decode byte 0xff in "
        "position 0: invalid start byte."
    )
    (tmp_path / "standard-install.yaml").write_text("kind: [\n")
    with pytest.raises(GatewayApiSourceError) as error:
        load_gateway_api(str(tmp_path), "v1.5.1", "standard", base_dir=ROOT)
    assert str(error.value).startswith(f"{tmp_path}/standard-install.yaml")


def test_a_manifest_that_cannot_be_read_says_why(tmp_path: pathlib.Path) -> None:
    (tmp_path / "standard-install.yaml").mkdir()
    with pytest.raises(GatewayApiSourceError) as error:
        load_gateway_api(str(tmp_path), "v1.5.1", "standard", base_dir=ROOT)
    assert str(error.value) == (
        f"Gateway API v1.5.1 (standard channel): cannot read {tmp_path}/standard-install.yaml: [Errno 21] Is a "
        f"directory: '{tmp_path}/standard-install.yaml' (gatewayApi.source is '{tmp_path}')."
    )


def test_only_the_channels_gateway_yaml_files_of_the_zip_are_read() -> None:
    files = {
        **split_files("v1.5.1", "standard"),
        "config/crd/standard/gateway.networking.k8s.io_notes.md": "kind: Nope\n",
        "config/crd/standard/gateway.networking.k8s.io_x.yml": "kind: Nope\n",
    }
    objects = module_objects(module_zip("v1.5.1", files), "v1.5.1", "standard", "the.zip")
    assert len(objects) == 5


def test_a_zip_whose_file_is_damaged_says_which(tmp_path: pathlib.Path) -> None:
    files = split_files("v1.5.1", "standard")
    data = module_zip("v1.5.1", files)
    damaged = data.replace(
        b"gatewayclasses.gateway.networking.k8s.io\n", b"gatewayclasses.gateway.networking.k8s.iX\n", 1
    )
    assert damaged != data
    with pytest.raises(GatewayApiSourceError) as error:
        module_objects(damaged, "v1.5.1", "standard", "the.zip")
    assert str(error.value) == (
        "the.zip: cannot read sigs.k8s.io/gateway-api@v1.5.1/config/crd/standard/: Bad CRC-32 for file "
        "'sigs.k8s.io/gateway-api@v1.5.1/config/crd/standard/"
        "gateway.networking.k8s.io_gatewayclasses.gateway.networking.k8s.io.yaml'."
    )


def test_a_crd_named_outside_its_group_is_refused() -> None:
    objects = objects_of()
    objects[0]["metadata"]["name"] = "gatewayclasses.example.com"
    assert refusal(objects) == expected(
        "apiextensions.k8s.io/v1 CustomResourceDefinition gatewayclasses.example.com: not a Gateway API CRD "
        "(group 'gateway.networking.k8s.io'; expected gateway.networking.k8s.io or gateway.networking.x-k8s.io)"
    )


def test_what_is_locked_is_listed_in_release_order_for_the_sources_artifact(tmp_path: pathlib.Path) -> None:
    def unlocked(version: str, checksums: dict[tuple[str, str], str]) -> str:
        with pytest.raises(GatewayApiSourceError) as error:
            load_gateway_api(
                DEFAULT_SOURCE, version, "standard", base_dir=ROOT, cache=tmp_path, checksums=checksums,
                fetch=lambda url: pytest.fail(url),
            )  # fmt: skip
        return str(error.value).split(" Versions locked as module.zip: ", 1)[1].split(". To lock", 1)[0]

    sha = "a" * 64
    assert unlocked("v1.7.0", {}) == "none"
    locked = {
        ("v1.10.0", "module.zip"): sha,
        ("v1.9.0", "module.zip"): sha,
        ("v1.8.0", "standard-install.yaml"): sha,
    }
    assert unlocked("v1.7.0", locked) == "v1.9.0, v1.10.0"
    # A version that is no release tag is never looked up, so never becomes a cache path.
    assert unlocked("../main", {("../main", "module.zip"): sha}) == "../main"


def test_a_failed_download_says_why_and_how_to_avoid_it(tmp_path: pathlib.Path) -> None:
    def fetch(url: str) -> bytes:
        raise OSError("connection refused")

    with pytest.raises(GatewayApiSourceError) as error:
        load_gateway_api(
            DEFAULT_SOURCE, "v1.5.1", "standard", base_dir=ROOT, cache=tmp_path,
            checksums={("v1.5.1", "module.zip"): "a" * 64}, fetch=fetch,
        )  # fmt: skip
    assert str(error.value) == (
        "Could not download the Gateway API v1.5.1 from https://proxy.golang.org/sigs.k8s.io/gateway-api/@v/"
        "v1.5.1.zip: connection refused. A local directory as gatewayApi.source avoids the download."
    )
    assert not (tmp_path / "v1.5.1").exists()


def test_downloads_are_kept_in_gateway_api_beside_the_addons_cache(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ISTIO_MESH_CACHE_DIR", str(tmp_path))
    data = module_zip("v1.5.1", split_files("v1.5.1", "standard"))
    load_gateway_api(
        DEFAULT_SOURCE, "v1.5.1", "standard", base_dir=ROOT, checksums=sums("v1.5.1", "module.zip", data),
        fetch=lambda url: data,
    )  # fmt: skip
    assert (tmp_path / "gateway-api" / "v1.5.1" / "module.zip").read_bytes() == data


def test_a_second_sum_for_the_same_artifact_is_named(tmp_path: pathlib.Path) -> None:
    lock = tmp_path / "gateway-api.lock"
    first, second = "v1.5.1 module.zip " + "a" * 64, "v1.5.1 module.zip " + "b" * 64
    lock.write_text(f"{first}\nv1.5.1 standard-install.yaml {'c' * 64}\n{second}\n")
    with pytest.raises(GatewayApiSourceError) as error:
        read_lock(lock)
    assert str(error.value) == f"{lock}:3: a second sum for v1.5.1 module.zip: {second!r}."


def test_a_version_that_is_no_release_has_no_policy_of_its_own() -> None:
    objects = objects_of()[3:4]
    crd = objects_of()[0]
    crd["metadata"]["annotations"]["gateway.networking.k8s.io/bundle-version"] = "main"
    assert refusal([crd, *objects], version="main") == expected(
        "admissionregistration.k8s.io/v1 ValidatingAdmissionPolicy safe-upgrades.gateway.networking.k8s.io: "
        "gateway.networking.k8s.io/bundle-version is 'v1.5.0-dev', not of release main",
        version="main",
    )


def test_a_url_is_verified_against_the_projects_lock_by_default(tmp_path: pathlib.Path) -> None:
    with pytest.raises(GatewayApiSourceError) as error:
        load_gateway_api(
            DEFAULT_SOURCE,
            "v1.7.0",
            "standard",
            base_dir=ROOT,
            cache=tmp_path,
            fetch=lambda url: pytest.fail(url),
        )
    assert "Versions locked as module.zip: v1.1.0, v1.2.1, v1.3.0, v1.4.1, v1.5.1, v1.6.0." in str(
        error.value
    )
