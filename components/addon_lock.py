"""`python -m components.addon_lock`: write and check addons.lock, the reviewed sums of the addon manifests.

The program installs a downloaded addon manifest only when its sha256 is in addons.lock
(components/addon_source.py), and never trusts a download on first use. Sums get into the lock in
one way: this explicit command, whose result is a diff of addons.lock that is reviewed in a pull
request, as go.sum (https://go.dev/ref/mod#go-sum-files) and Chart.lock are.

    python -m components.addon_lock add 1.31.1 [1.30.5 ...] [--source URL-TEMPLATE] [--addon NAME ...]
        download the addon manifests of each version (all five unless --addon names some), print
        their sums, write them to the lock
    python -m components.addon_lock check [VERSION ...] [--source URL-TEMPLATE]
        download again and compare with the lock (every locked version when none is named)

`add` never changes a sum already locked: a different file under a release tag means something
changed upstream or on the way, which is exactly what the lock is there to catch.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import os
import pathlib
import re
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TextIO

from components.addon_source import (
    KNOWN_ADDONS,
    LOCK_FILE,
    UPSTREAM_ADDON_SOURCE,
    AddonSourceError,
    addon_location,
    describe_error,
    fetch_url,
    is_url,
    parse_manifest,
    read_lock,
)

# Rewritten with every `add`, so the file always explains itself to the reviewer of its diff.
HEADER = """\
# addons.lock: the sha256 of Istio's samples/addons/<addon>.yaml for every Istio version whose addons a
# URL addons.source may install. Nothing else is downloaded and applied: components/addon_source.py
# verifies every download against this file and refuses a version that is not in it.
#
# Add a version with `python -m components.addon_lock add <version>` (or `make addon-lock
# VERSION=<version>`): it downloads the five manifests, prints their sums and writes them here.
# Review the new lines in the pull request, as with go.sum or Chart.lock: each sum is the file at
# the release tag, https://raw.githubusercontent.com/istio/istio/<version>/samples/addons/<addon>.yaml,
# and a tag's file never changes. Columns: version addon sha256
"""

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
_EXACT_VERSION = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")

Sums = Mapping[tuple[str, str], str]
Fetch = Callable[[str], bytes]


class LockError(Exception):
    """A problem that stops the command; str(e) is the whole message."""


@dataclass(frozen=True)
class Download:
    """One addon manifest as downloaded now: where from, and its sha256."""

    version: str
    addon: str
    url: str
    sha256: str


def format_lock(sums: Sums) -> str:
    """The lock file's text: the header, then one line per sum, by version (numerically), then addon."""
    ordered = sorted(
        sums.items(), key=lambda item: (_version_key(item[0][0]), KNOWN_ADDONS.index(item[0][1]))
    )
    return HEADER + "".join(f"{version} {addon} {sha256}\n" for (version, addon), sha256 in ordered)


def download(version: str, source: str, fetch: Fetch, addons: Sequence[str] = KNOWN_ADDONS) -> list[Download]:
    """The sums of `version`'s addon manifests; LockError naming every one that failed."""
    found: list[Download] = []
    problems: list[str] = []
    for addon in addons:
        url = addon_location(source, version, addon)
        try:
            data = fetch(url)
        except (OSError, ValueError, http.client.HTTPException) as exc:
            problems.append(f"{url}: {describe_error(exc)}")
            continue
        # A sum is only worth locking for a real manifest: an HTML error page or a truncated file
        # served with 200 OK would otherwise be locked, and then verified, as if it were the addon.
        try:
            parse_manifest(data.decode("utf-8"), url)
        except (UnicodeDecodeError, AddonSourceError) as exc:
            problems.append(f"{url}: not an addon manifest ({exc})")
            continue
        found.append(Download(version, addon, url, hashlib.sha256(data).hexdigest()))
    if problems:
        listing = "\n".join(f"  - {p}" for p in problems)
        raise LockError(f"Istio {version}: {len(problems)} addon manifest(s) could not be locked:\n{listing}")
    return found


def add(
    versions: Sequence[str],
    *,
    source: str,
    lock: pathlib.Path,
    fetch: Fetch,
    out: TextIO,
    addons: Sequence[str] = KNOWN_ADDONS,
) -> list[Download]:
    """Lock `addons` of every one of `versions`: all of them or, on any problem, nothing (LockError).

    `addons` is all five by default; naming fewer is for a release that no longer ships one of them
    (the program only needs the sums of the addons a stack enables).
    """
    _check_arguments(versions, source)
    locked = read_lock(lock)
    downloads = [d for version in versions for d in download(version, source, fetch, addons)]
    changed = [d for d in downloads if locked.get((d.version, d.addon), d.sha256) != d.sha256]
    if changed:
        raise LockError(_changed_message(changed, locked, lock))
    new = [d for d in downloads if (d.version, d.addon) not in locked]
    for d in downloads:
        state = "new" if d in new else "already locked"
        out.write(f"{d.version} {d.addon} {d.sha256}  {d.url} ({state})\n")
    if not new:
        out.write(f"{lock.name}: unchanged, every sum was already locked\n")
        return []
    write_atomically(lock, format_lock({**locked, **{(d.version, d.addon): d.sha256 for d in new}}))
    added = ", ".join(sorted({d.version for d in new}, key=_version_key))
    out.write(
        f"{lock.name}: {len(new)} sum(s) added for Istio {added}. Check them against a second source (for "
        "example `git show <version>:samples/addons/<addon>.yaml | sha256sum` in a clone of "
        f"https://github.com/istio/istio), then commit {lock.name}.\n"
    )
    return new


def check(
    versions: Sequence[str], *, source: str, lock: pathlib.Path, fetch: Fetch, out: TextIO
) -> list[Download]:
    """Download again and compare with the lock; the downloads that differ (LockError if not locked)."""
    locked = read_lock(lock)
    wanted = list(versions) or sorted({v for v, _ in locked}, key=_version_key)
    _check_arguments(wanted, source)
    missing = [v for v in wanted if not any((v, a) in locked for a in KNOWN_ADDONS)]
    if missing:
        raise LockError(f"not in {lock.name}: Istio {', '.join(missing)}; lock with `add` first")
    downloads = [
        d
        for version in wanted
        for d in download(version, source, fetch, [a for a in KNOWN_ADDONS if (version, a) in locked])
    ]
    changed = [d for d in downloads if locked.get((d.version, d.addon)) != d.sha256]
    for d in downloads:
        out.write(f"{d.version} {d.addon} {d.sha256}  {d.url} ({'DIFFERS' if d in changed else 'ok'})\n")
    out.write(f"{lock.name}: {len(downloads) - len(changed)} of {len(downloads)} sum(s) match\n")
    return changed


def _check_arguments(versions: Sequence[str], source: str) -> None:
    bad = [v for v in versions if not _EXACT_VERSION.match(v)]
    if bad:
        raise LockError(f"not an exact Istio version x.y.z: {', '.join(repr(v) for v in bad)}")
    if not is_url(source):
        # A local directory is installed as it is and never verified (README, addons.source), so
        # there is nothing to lock for it.
        raise LockError(f"--source must be an http(s) or file:// URL template, not {source!r}")


def _changed_message(changed: Sequence[Download], locked: Sums, lock: pathlib.Path) -> str:
    lines = "\n".join(
        f"  - {d.version} {d.addon}: locked {locked[(d.version, d.addon)]}, downloaded {d.sha256} from {d.url}"
        for d in changed
    )
    return (
        f"{lock.name} was not changed: these downloads differ from their locked sums:\n{lines}\n"
        "A release tag's file never changes, so find out why (a mirror, a proxy, a moved tag) before "
        f"touching the lock. To replace a sum on purpose, delete its line from {lock.name} and run add again."
    )


def write_atomically(path: pathlib.Path, text: str) -> None:
    # Same directory + os.replace: an interrupted run leaves the old lock, never half of a new one.
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


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
        prog="python -m components.addon_lock",
        description="Write and check addons.lock, the reviewed sha256 of Istio's addon manifests.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("add", "download each version's addon manifests, print their sums and add them to the lock"),
        ("check", "download again and compare with the lock (every locked version when none is named)"),
    ):
        command = commands.add_parser(name, help=text, description=text)
        command.add_argument("versions", nargs="+" if name == "add" else "*", metavar="VERSION")
        command.add_argument(
            "--source",
            default=UPSTREAM_ADDON_SOURCE,
            help="URL template of the manifests, {version} replaced (default: %(default)s)",
        )
        command.add_argument("--lock", type=pathlib.Path, default=LOCK_FILE, help="default: %(default)s")
        if name == "add":
            command.add_argument(
                "--addon",
                dest="addons",
                action="append",
                choices=KNOWN_ADDONS,
                help="lock only this addon (repeatable; default: all five)",
            )
    args = parser.parse_args(argv)
    try:
        if args.command == "add":
            addons = tuple(a for a in KNOWN_ADDONS if a in (args.addons or KNOWN_ADDONS))
            differing = add(
                args.versions, source=args.source, lock=args.lock, fetch=fetch, out=stdout, addons=addons
            )
        else:
            differing = check(args.versions, source=args.source, lock=args.lock, fetch=fetch, out=stdout)
    except (LockError, AddonSourceError) as error:
        stderr.write(f"error: {error}\n")
        return EXIT_FAILED
    return EXIT_FAILED if args.command == "check" and differing else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
