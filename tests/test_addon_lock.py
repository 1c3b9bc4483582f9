"""`python -m components.addon_lock` against a loopback HTTP server, and the program reading its lock.

The server is Python's http.server on 127.0.0.1 (port 0: the system picks a free one) serving small
hand-written manifests; nothing here reaches any other host.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import io
import pathlib
import shlex
import shutil
import subprocess
import threading
from collections.abc import Iterator

import pytest

from components import addon_lock
from components.addon_source import (
    KNOWN_ADDONS,
    LOCK_FILE,
    AddonSourceError,
    read_addon_text,
    read_lock,
)
from tests.harness import ROOT


def manifest(addon: str, version: str) -> bytes:
    return (
        f"apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: {addon}\n  namespace: istio-system\n"
        f"  labels: {{version: '{version}'}}\n"
    ).encode()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def serve(directory: pathlib.Path) -> Iterator[str]:
    """`directory` over HTTP on 127.0.0.1 (a free port), as the URL template `http://127.0.0.1:<port>/{version}`."""
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Quiet, directory=str(directory))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/{{version}}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def served(tmp_path: pathlib.Path) -> Iterator[tuple[pathlib.Path, str]]:
    """(the served directory, its URL template): `<dir>/<version>/<addon>.yaml` for 1.31.1 and 1.30.5."""
    root = tmp_path / "served"
    for version in ("1.31.1", "1.30.5"):
        (root / version).mkdir(parents=True)
        for addon in KNOWN_ADDONS:
            (root / version / f"{addon}.yaml").write_bytes(manifest(addon, version))
    with serve(root) as source:
        yield root, source


@pytest.fixture
def lock(tmp_path: pathlib.Path) -> pathlib.Path:
    """A lock holding one made-up sum, so every test starts from a lock that is not empty."""
    path = tmp_path / "addons.lock"
    path.write_text(addon_lock.format_lock({("1.20.8", "kiali"): "a" * 64}), encoding="utf-8")
    return path


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = addon_lock.main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def body(path: pathlib.Path) -> list[str]:
    """The lock's sum lines, without the header."""
    return [line for line in path.read_text(encoding="utf-8").splitlines() if not line.startswith("#")]


def test_add_downloads_prints_and_writes_the_sums(
    served: tuple[pathlib.Path, str], lock: pathlib.Path
) -> None:
    _, source = served
    code, out, err = run("add", "1.31.1", "--source", source, "--lock", str(lock))
    url = source.replace("{version}", "1.31.1")
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        *(f"1.31.1 {a} {sha(manifest(a, '1.31.1'))}  {url}/{a}.yaml (new)" for a in KNOWN_ADDONS),
        "addons.lock: 5 sum(s) added for Istio 1.31.1. Check them against a second source (for example "
        "`git show <version>:samples/addons/<addon>.yaml | sha256sum` in a clone of "
        "https://github.com/istio/istio), then commit addons.lock.",
    ]
    assert body(lock) == [
        f"1.20.8 kiali {'a' * 64}",
        *(f"1.31.1 {a} {sha(manifest(a, '1.31.1'))}" for a in KNOWN_ADDONS),
    ]
    assert lock.read_text(encoding="utf-8").startswith(addon_lock.HEADER)


def test_versions_are_sorted_numerically_and_addons_in_their_fixed_order(
    served: tuple[pathlib.Path, str], lock: pathlib.Path
) -> None:
    _, source = served
    assert run("add", "1.31.1", "1.30.5", "--source", source, "--lock", str(lock))[0] == 0
    assert [line.split()[:2] for line in body(lock)] == [
        ["1.20.8", "kiali"],
        *([v, a] for v in ("1.30.5", "1.31.1") for a in KNOWN_ADDONS),
    ]


def test_the_program_refuses_an_unlocked_version_then_accepts_it_after_the_command_it_names(
    served: tuple[pathlib.Path, str], lock: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    _, source = served

    def read() -> str:
        return read_addon_text(
            source,
            "1.31.1",
            "grafana",
            base_dir=tmp_path,
            cache_dir=tmp_path / "cache",
            checksums=read_lock(lock),
        )

    with pytest.raises(AddonSourceError) as refused:
        read()
    command = f"python -m components.addon_lock add 1.31.1 --source '{source}'"
    assert str(refused.value) == (
        f"No sha256 is locked for addon 'grafana' of Istio 1.31.1 in addons.lock, so "
        f"{source.replace('{version}', '1.31.1')}/grafana.yaml cannot be verified and is not downloaded. "
        f"Versions locked for 'grafana': none. To lock 1.31.1, run `{command}` in the project, check the "
        "sums it prints and commit addons.lock; or point addons.source at a local directory (for example "
        "an unpacked istio-1.31.1/samples/addons)."
    )
    assert not (tmp_path / "cache").exists()  # refused before any download

    # Exactly the command the message names (past `python -m components.addon_lock`), on the test's lock.
    assert run(*shlex.split(command)[3:], "--lock", str(lock))[0] == 0
    assert read() == manifest("grafana", "1.31.1").decode()


def test_the_command_for_the_default_source_has_no_source_flag(tmp_path: pathlib.Path) -> None:
    with pytest.raises(AddonSourceError, match=r"run `python -m components\.addon_lock add 1\.31\.1` in"):
        read_addon_text(
            "https://raw.githubusercontent.com/istio/istio/{version}/samples/addons",
            "1.31.1",
            "kiali",
            base_dir=tmp_path,
            checksums=read_lock(LOCK_FILE),
            fetch=lambda url: pytest.fail(f"downloaded {url}"),
        )


def test_adding_a_locked_version_again_changes_nothing(
    served: tuple[pathlib.Path, str], lock: pathlib.Path
) -> None:
    _, source = served
    run("add", "1.31.1", "--source", source, "--lock", str(lock))
    before = lock.read_bytes()
    code, out, _ = run("add", "1.31.1", "--source", source, "--lock", str(lock))
    assert code == 0
    assert out.splitlines()[-1] == "addons.lock: unchanged, every sum was already locked"
    assert all(line.endswith("(already locked)") for line in out.splitlines()[:-1])
    assert lock.read_bytes() == before


def test_a_changed_upstream_file_is_never_relocked(
    served: tuple[pathlib.Path, str], lock: pathlib.Path
) -> None:
    root, source = served
    run("add", "1.31.1", "--source", source, "--lock", str(lock))
    before = lock.read_bytes()
    tampered = manifest("kiali", "1.31.1") + b"# changed\n"
    (root / "1.31.1" / "kiali.yaml").write_bytes(tampered)
    code, out, err = run("add", "1.31.1", "--source", source, "--lock", str(lock))
    url = source.replace("{version}", "1.31.1")
    assert (code, out) == (1, "")
    assert err == (
        "error: addons.lock was not changed: these downloads differ from their locked sums:\n"
        f"  - 1.31.1 kiali: locked {sha(manifest('kiali', '1.31.1'))}, downloaded {sha(tampered)} from "
        f"{url}/kiali.yaml\n"
        "A release tag's file never changes, so find out why (a mirror, a proxy, a moved tag) before touching "
        "the lock. To replace a sum on purpose, delete its line from addons.lock and run add again.\n"
    )
    assert lock.read_bytes() == before


def test_a_missing_or_bogus_file_locks_nothing(served: tuple[pathlib.Path, str], lock: pathlib.Path) -> None:
    root, source = served
    (root / "1.31.1" / "jaeger.yaml").unlink()
    (root / "1.31.1" / "loki.yaml").write_bytes(b"<html>rate limited</html>\n")
    before = lock.read_bytes()
    code, out, err = run("add", "1.30.5", "1.31.1", "--source", source, "--lock", str(lock))
    url = source.replace("{version}", "1.31.1")
    assert (code, out) == (1, "")
    assert err == (
        "error: Istio 1.31.1: 2 addon manifest(s) could not be locked:\n"
        f"  - {url}/jaeger.yaml: HTTP 404 File not found\n"
        f"  - {url}/loki.yaml: not an addon manifest ({url}/loki.yaml: document index 0 is a string, "
        "not a Kubernetes object mapping.)\n"
    )
    assert lock.read_bytes() == before  # not even 1.30.5, which downloaded fine


def test_a_release_without_one_addon_locks_the_others_by_name(
    served: tuple[pathlib.Path, str], lock: pathlib.Path
) -> None:
    root, source = served
    (root / "1.31.1" / "jaeger.yaml").unlink()
    code, out, err = run(
        "add", "1.31.1", "--addon", "kiali", "--addon", "prometheus", "--source", source, "--lock", str(lock)
    )
    assert (code, err) == (0, "")
    assert body(lock) == [
        f"1.20.8 kiali {'a' * 64}",
        f"1.31.1 prometheus {sha(manifest('prometheus', '1.31.1'))}",
        f"1.31.1 kiali {sha(manifest('kiali', '1.31.1'))}",
    ]
    code, out, _ = run("check", "1.31.1", "--source", source, "--lock", str(lock))
    assert (code, out.splitlines()[-1]) == (0, "addons.lock: 2 of 2 sum(s) match")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["add", "1.31"], "error: not an exact Istio version x.y.z: '1.31'\n"),
        (["add", "v1.31.1", "latest"], "error: not an exact Istio version x.y.z: 'v1.31.1', 'latest'\n"),
        (
            ["add", "1.31.1", "--source", "./addons"],
            "error: --source must be an http(s) or file:// URL template, not './addons'\n",
        ),
        (["check", "1.31.1"], "error: not in addons.lock: Istio 1.31.1; lock with `add` first\n"),
    ],
)
def test_bad_arguments_are_refused_before_any_download(
    argv: list[str], message: str, lock: pathlib.Path
) -> None:
    before = lock.read_bytes()
    out, err = io.StringIO(), io.StringIO()
    code = addon_lock.main(
        [*argv, "--lock", str(lock)], fetch=lambda url: pytest.fail(f"downloaded {url}"), out=out, err=err
    )
    assert (code, out.getvalue(), err.getvalue()) == (1, "", message)
    assert lock.read_bytes() == before


def test_check_compares_downloads_with_the_lock(served: tuple[pathlib.Path, str], lock: pathlib.Path) -> None:
    root, source = served
    run("add", "1.31.1", "--source", source, "--lock", str(lock))
    code, out, _ = run("check", "1.31.1", "--source", source, "--lock", str(lock))
    assert (code, out.splitlines()[-1]) == (0, "addons.lock: 5 of 5 sum(s) match")
    changed = b"apiVersion: v1\nkind: List\nitems: []\n"
    (root / "1.31.1" / "prometheus.yaml").write_bytes(changed)
    code, out, _ = run("check", "1.31.1", "--source", source, "--lock", str(lock))
    url = source.replace("{version}", "1.31.1")
    assert code == 1
    assert out.splitlines()[0] == (f"1.31.1 prometheus {sha(changed)}  {url}/prometheus.yaml (DIFFERS)")
    assert out.splitlines()[-1] == "addons.lock: 4 of 5 sum(s) match"


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("1.31.1 kiali", "expected three fields, 'version addon sha256'"),
        (f"1.31 kiali {'a' * 64}", "version '1.31' is not an exact x.y.z"),
        (
            f"1.31.1 zipkin {'a' * 64}",
            "addon 'zipkin' is not one of prometheus, grafana, jaeger, kiali, loki",
        ),
        (f"1.31.1 kiali {'A' * 64}", "the sha256 must be 64 lowercase hex digits"),
        (f"1.20.8 kiali {'b' * 64}", "a second sum for 1.20.8 kiali"),
    ],
)
def test_a_malformed_lock_line_is_named_by_file_and_line(lock: pathlib.Path, line: str, problem: str) -> None:
    with lock.open("a", encoding="utf-8") as handle:
        handle.write(f"\n{line}\n")
    lines = lock.read_text(encoding="utf-8").splitlines()
    with pytest.raises(AddonSourceError) as raised:
        read_lock(lock)
    assert str(raised.value) == f"{lock}:{len(lines)}: {problem}: {line!r}."


def test_a_missing_lock_file_is_an_error(tmp_path: pathlib.Path) -> None:
    with pytest.raises(AddonSourceError) as raised:
        read_lock(tmp_path / "addons.lock")
    assert str(raised.value) == (
        f"Cannot read the addon lock file {tmp_path / 'addons.lock'}: "
        f"[Errno 2] No such file or directory: '{tmp_path / 'addons.lock'}'."
    )


def test_the_committed_lock_is_in_the_commands_own_format() -> None:
    """So `add` only ever adds lines to the reviewed diff, never reformats what is there."""
    assert LOCK_FILE == ROOT / "addons.lock"
    assert LOCK_FILE.read_text(encoding="utf-8") == addon_lock.format_lock(read_lock(LOCK_FILE))


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_target_runs_the_command() -> None:
    shown = subprocess.run(
        # --no-print-directory: under `make check` the nested make would add "Entering directory" lines.
        ["make", "-n", "--no-print-directory", "addon-lock", "VERSION=1.31.1"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    assert shown.stdout.splitlines() == [".venv/bin/python -m components.addon_lock add 1.31.1"]


UPSTREAM_ADDONS = ROOT.parent / "shared" / "upstream" / "addons"


@pytest.mark.skipif(not UPSTREAM_ADDONS.is_dir(), reason="needs ../shared/upstream (real Istio addons)")
def test_the_lock_matches_istios_real_addons() -> None:
    """`check` over loopback against the real samples/addons of five releases, byte for byte upstream's."""
    versions = sorted(p.name for p in UPSTREAM_ADDONS.iterdir())
    with serve(UPSTREAM_ADDONS) as source:
        code, out, err = run("check", *versions, "--source", source)
    assert versions == ["1.20.8", "1.23.6", "1.24.6", "1.29.6", "1.30.3"]
    assert (code, err, out.splitlines()[-1]) == (0, "", "addons.lock: 25 of 25 sum(s) match")
