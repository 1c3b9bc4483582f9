"""`python -m components.gateway_api_lock`: write and check gateway-api.lock.

The program applies a downloaded Gateway API release only when its sha256 is in gateway-api.lock
(components/gateway_api_source.py); sums get there only through this command, whose result is a
reviewed diff of the lock, as for addons.lock (components/addon_lock.py).

    python -m components.gateway_api_lock add v1.5.1 [v1.6.0 ...] [--source URL-TEMPLATE] [--channel C]
        download each version's artifact, check that it is that release, print its sum and append it
    python -m components.gateway_api_lock check [VERSION ...] [--source URL-TEMPLATE] [--channel C]
        download again and compare with the lock (every locked version of that artifact when none is named)

A module zip (the default source) serves both channels, so `--channel` only matters for a `.yaml`
source. For a module zip `add` also prints, and writes above the sum as a comment, the `h1:` hash
that go.sum and the Go checksum database (https://sum.golang.org) hold for
`sigs.k8s.io/gateway-api <version>`: a second source to compare with. `add` never changes a sum
already locked.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import io
import pathlib
import sys
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TextIO

from components.addon_lock import write_atomically
from components.addon_source import describe_error, fetch_url, is_url
from components.gateway_api_source import (
    LOCK_FILE,
    MODULE,
    MODULE_ZIP,
    GatewayApiSourceError,
    artifact_name,
    check_objects,
    location,
    manifest_objects,
    module_objects,
    read_lock,
    source_kind,
)
from components.gateway_api_versions import CHANNELS, DEFAULT_SOURCE, parse_release

HEADER = """\
# gateway-api.lock: the sha256 of every Kubernetes Gateway API artifact a URL gatewayApi.source may
# install. components/gateway_api_source.py verifies every download against this file and refuses a
# version or artifact that is not in it. Columns: version artifact sha256, where artifact is
# `module.zip` (the Go module zip of sigs.k8s.io/gateway-api, as https://proxy.golang.org serves it:
# the default source) or `<channel>-install.yaml` (a release manifest).
#
# Add one with `python -m components.gateway_api_lock add <version> [--source ...]` and review the
# new lines in the pull request. A module zip's comment line is its go.sum hash (`h1:`, the dirhash
# of the zip's files), to compare with `go mod download -json sigs.k8s.io/gateway-api@<version>`
# (its Sum) or https://sum.golang.org/lookup/sigs.k8s.io/gateway-api@<version>.
"""

EXIT_OK, EXIT_FAILED = 0, 1
Fetch = Callable[[str], bytes]


class LockError(Exception):
    """A problem that stops the command; str(e) is the whole message."""


@dataclass(frozen=True)
class Download:
    """One artifact as downloaded now: where from, its sha256, and for a module zip its go.sum hash."""

    version: str
    artifact: str
    url: str
    sha256: str
    h1: str = ""


def go_sum_hash(data: bytes) -> str:
    """The `h1:` hash go.sum holds for a module zip: golang.org/x/mod/sumdb/dirhash Hash1, the
    base64 sha256 of the `<sha256 hex>  <file name>` lines of every file, sorted by name."""
    archive = zipfile.ZipFile(io.BytesIO(data))
    names = sorted(archive.namelist())
    summary = "".join(f"{hashlib.sha256(archive.read(name)).hexdigest()}  {name}\n" for name in names)
    return "h1:" + base64.b64encode(hashlib.sha256(summary.encode()).digest()).decode()


def download(version: str, source: str, channel: str, fetch: Fetch) -> Download:
    """`version`'s artifact, checked to be that release (both channels of a module zip)."""
    url = location(source, version, channel)
    try:
        data = fetch(url)
    except (OSError, ValueError, http.client.HTTPException) as exc:
        raise LockError(f"{url}: {describe_error(exc)}") from None
    # Only the release itself is worth a sum: an error page served with 200 OK, or another release,
    # would otherwise be locked and then trusted.
    try:
        if source_kind(source) == "zip":
            for each in CHANNELS:
                check_objects(module_objects(data, version, each, url), version, each, url)
            return Download(version, MODULE_ZIP, url, hashlib.sha256(data).hexdigest(), go_sum_hash(data))
        check_objects(manifest_objects(data, url), version, channel, url)
    except (GatewayApiSourceError, zipfile.BadZipFile) as exc:
        raise LockError(f"{url}: not the Gateway API {version}: {exc}") from None
    return Download(version, artifact_name(source, channel), url, hashlib.sha256(data).hexdigest())


def _check_arguments(versions: Sequence[str], source: str) -> None:
    bad = [v for v in versions if parse_release(v) is None]
    if bad:
        raise LockError(f"not a Gateway API release tag such as v1.5.1: {', '.join(repr(v) for v in bad)}")
    if not is_url(source):
        # A local directory is applied as it is and never verified: nothing to lock.
        raise LockError(f"--source must be an http(s) or file:// URL template, not {source!r}")
    try:
        source_kind(source)
    except GatewayApiSourceError as exc:
        raise LockError(str(exc)) from None


def add(
    versions: Sequence[str], *, source: str, channel: str, lock: pathlib.Path, fetch: Fetch, out: TextIO
) -> list[Download]:
    """Lock every one of `versions`: all of them or, on any problem, nothing (LockError)."""
    _check_arguments(versions, source)
    locked = read_lock(lock)
    downloads = [download(version, source, channel, fetch) for version in versions]
    changed = [d for d in downloads if locked.get((d.version, d.artifact), d.sha256) != d.sha256]
    if changed:
        lines = "\n".join(
            f"  - {d.version} {d.artifact}: locked {locked[(d.version, d.artifact)]}, downloaded {d.sha256} "
            f"from {d.url}"
            for d in changed
        )
        raise LockError(
            f"{lock.name} was not changed: these downloads differ from their locked sums:\n{lines}\n"
            "A release's file never changes, so find out why before touching the lock. To replace a sum on "
            f"purpose, delete its line from {lock.name} and run add again."
        )
    new = [d for d in downloads if (d.version, d.artifact) not in locked]
    for d in downloads:
        state = "new" if d in new else "already locked"
        out.write(
            f"{d.version} {d.artifact} {d.sha256}  {d.url} ({state}){f'  go.sum {d.h1}' if d.h1 else ''}\n"
        )
    if not new:
        out.write(f"{lock.name}: unchanged, every sum was already locked\n")
        return []
    # Appended, so the comments of earlier entries (their go.sum hashes) stay as they were reviewed.
    text = lock.read_text(encoding="utf-8") if lock.exists() else HEADER
    if text and not text.endswith("\n"):
        text += "\n"
    for d in new:
        if d.h1:
            text += f"# go.sum: {MODULE} {d.version} {d.h1}\n"
        text += f"{d.version} {d.artifact} {d.sha256}\n"
    write_atomically(lock, text)
    out.write(
        f"{lock.name}: {len(new)} sum(s) added. Compare each go.sum hash with "
        f"https://sum.golang.org/lookup/{MODULE}@<version> (or each manifest's sum with the release's own "
        f"page), then commit {lock.name}.\n"
    )
    return new


def check(
    versions: Sequence[str], *, source: str, channel: str, lock: pathlib.Path, fetch: Fetch, out: TextIO
) -> list[Download]:
    """Download again and compare with the lock; the downloads that differ (LockError if not locked)."""
    locked = read_lock(lock)
    artifact = artifact_name(source, channel) if is_url(source) else MODULE_ZIP
    wanted = list(versions) or sorted(
        {v for v, a in locked if a == artifact}, key=lambda v: parse_release(v) or (0, 0, 0)
    )
    _check_arguments(wanted, source)
    missing = [v for v in wanted if (v, artifact) not in locked]
    if missing:
        raise LockError(f"not in {lock.name}: {artifact} of {', '.join(missing)}; lock with `add` first")
    downloads = [download(version, source, channel, fetch) for version in wanted]
    changed = [d for d in downloads if locked.get((d.version, d.artifact)) != d.sha256]
    for d in downloads:
        out.write(f"{d.version} {d.artifact} {d.sha256}  {d.url} ({'DIFFERS' if d in changed else 'ok'})\n")
    out.write(f"{lock.name}: {len(downloads) - len(changed)} of {len(downloads)} sum(s) match\n")
    return changed


def main(
    argv: Sequence[str] | None = None,
    *,
    fetch: Fetch = fetch_url,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    stdout = sys.stdout if out is None else out
    stderr = sys.stderr if err is None else err
    parser = argparse.ArgumentParser(
        prog="python -m components.gateway_api_lock",
        description="Write and check gateway-api.lock, the reviewed sha256 of the Gateway API releases.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("add", "download each version, check it, print its sum and add it to the lock"),
        ("check", "download again and compare with the lock (every locked version when none is named)"),
    ):
        command = commands.add_parser(name, help=text, description=text)
        command.add_argument("versions", nargs="+" if name == "add" else "*", metavar="VERSION")
        command.add_argument(
            "--source",
            default=DEFAULT_SOURCE,
            help="URL template ending in .zip or .yaml, {version} and {channel} replaced (default: %(default)s)",
        )
        command.add_argument(
            "--channel",
            default="standard",
            choices=CHANNELS,
            help="for a .yaml source (default: %(default)s)",
        )
        command.add_argument("--lock", type=pathlib.Path, default=LOCK_FILE, help="default: %(default)s")
    args = parser.parse_args(argv)
    try:
        action = add if args.command == "add" else check
        differing = action(
            args.versions, source=args.source, channel=args.channel, lock=args.lock, fetch=fetch, out=stdout
        )
    except (LockError, GatewayApiSourceError) as error:
        stderr.write(f"error: {error}\n")
        return EXIT_FAILED
    return EXIT_FAILED if args.command == "check" and differing else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
