"""Istio minor releases and the upstream support window, for the `istio-version-supported` rule.

Istio's support policy: a minor release is "supported until 6 weeks after the N+2 minor release
(ex. 1.11 supported until 6 weeks after 1.13.0 is released)".
https://istio.io/latest/docs/releases/supported-releases/#support-policy

So the end of support of minor N is computed from the first release date of minor N+2, unless
upstream has announced the day (`ANNOUNCED_END_OF_LIFE`), which then wins. The dates below are the
`x.y.0` tag dates of github.com/istio/istio; the "Release Date" and "End of Life" columns on the page
above can differ from them by a few days (they record the announcement, and upstream rounds the end
of life to its release calendar), so a computed end is at most a few days early or late.

The table also knows the newest patch of each minor and the day it was last compared with upstream
(`TABLE_CHECKED`). A version it cannot place (a minor or a patch newer than it knows, or a minor whose
end it cannot know because the table has gone stale) is "unknown, check upstream" (`unknown_reason`),
never silently supported.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from types import MappingProxyType

# Where to check what the table does not know.
UPSTREAM_SUPPORT_PAGE = "https://istio.io/latest/docs/releases/supported-releases/"

# How long minor N stays supported once minor N+2 is out (see the policy quoted above).
SUPPORT_AFTER_N_PLUS_2 = timedelta(weeks=6)

# First release (the `x.y.0` tag) of each Istio minor, oldest first.
#
# To extend: add one line for the new minor when its `x.y.0` tag is published (keep the minors
# consecutive: a gap would leave the end of support of minor N-2 unknown), its line in
# NEWEST_PATCHES, and move TABLE_CHECKED. The end of support of the minor two below it then follows
# from the policy. Minors older than the first line are reported as unsupported; minors newer than
# the last line as supported, end unknown, and as unknown to the table.
#
# 1.20-1.30: the istio/istio tags. 1.31.0: released 2026-08-20
# (https://istio.io/latest/news/releases/1.31.x/announcing-1.31/).
FIRST_RELEASES: Mapping[str, date] = MappingProxyType(
    {
        "1.20": date(2023, 11, 13),
        "1.21": date(2024, 3, 12),
        "1.22": date(2024, 5, 10),
        "1.23": date(2024, 8, 11),
        "1.24": date(2024, 11, 5),
        "1.25": date(2025, 2, 25),
        "1.26": date(2025, 5, 6),
        "1.27": date(2025, 8, 8),
        "1.28": date(2025, 10, 30),
        "1.29": date(2026, 2, 10),
        "1.30": date(2026, 5, 15),
        "1.31": date(2026, 8, 20),
    }
)

# The newest patch of each minor the table knows (the istio/istio tags; 1.30.5 and 1.31.1 were both
# released on 2026-09-21). A newer patch is not wrong, only unknown here: check upstream.
NEWEST_PATCHES: Mapping[str, int] = MappingProxyType(
    {
        "1.20": 8,
        "1.21": 6,
        "1.22": 8,
        "1.23": 6,
        "1.24": 6,
        "1.25": 5,
        "1.26": 8,
        "1.27": 9,
        "1.28": 10,
        "1.29": 6,
        "1.30": 5,
        "1.31": 1,
    }
)

# Ends of life upstream announced (the "End of Life" column of UPSTREAM_SUPPORT_PAGE), where they
# differ from six weeks after N+2: 1.29's computed end would be 2026-10-01 (1.31.0 + 6 weeks).
ANNOUNCED_END_OF_LIFE: Mapping[str, date] = MappingProxyType({"1.29": date(2026, 10, 15)})

# The day the three tables above were last compared with upstream. Istio ships a minor about every
# three months (FIRST_RELEASES), so after STALE_AFTER a minor whose end the table cannot compute
# (its N+2 is missing) may well be out of support already: that is reported as unknown, not supported.
TABLE_CHECKED = date(2026, 12, 2)
STALE_AFTER = timedelta(days=90)

# `1.24.3`, `1.24`, also `1.24.0-rc.1` or `v1.24.3`: only the major and minor matter here. Whether a
# chart version is an exact pin is the `exact-chart-versions` rule's business, not this module's.
_VERSION = re.compile(r"^v?(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)(?:\.\d+)?(?:[-+][0-9A-Za-z.+-]*)?$")

Minor = tuple[int, int]


def parse_minor(version: str) -> Minor:
    """`"1.24.3"` -> `(1, 24)`; raises ValueError for anything that is not a version."""
    match = _VERSION.match(version.strip())
    if match is None:
        raise ValueError(f"{version!r} is not an Istio version such as 1.24.3")
    return int(match["major"]), int(match["minor"])


def _key(minor: Minor) -> str:
    return f"{minor[0]}.{minor[1]}"


def _table() -> list[Minor]:
    return sorted(parse_minor(minor) for minor in FIRST_RELEASES)


def end_of_support(minor: str) -> date | None:
    """The first day minor `"1.22"` is no longer supported: announced, else six weeks after N+2.0.

    None while upstream has announced nothing and minor N+2 is not in the table.
    """
    major, number = parse_minor(minor)
    announced = ANNOUNCED_END_OF_LIFE.get(_key((major, number)))
    if announced is not None:
        return announced
    successor = FIRST_RELEASES.get(_key((major, number + 2)))
    return None if successor is None else successor + SUPPORT_AFTER_N_PLUS_2


def _why_it_ends(key: str) -> str:
    """How the end of support of minor `key` (which has one) was found, for a human."""
    if key in ANNOUNCED_END_OF_LIFE:
        return "its announced end of life"
    major, number = parse_minor(key)
    successor = _key((major, number + 2))
    return f"six weeks after {successor}.0 of {FIRST_RELEASES[successor].isoformat()}"


@dataclass(frozen=True)
class SupportStatus:
    """Where one Istio version stands on a given day.

    `end_of_support` is the first day without support (`supported` is `today < end_of_support`);
    None means upstream has not fixed the day yet (minor N+2 not released, or the minor is newer
    than the table). `reason` is a sentence for a human, starting with the minor.
    """

    version: str
    minor: str
    supported: bool
    end_of_support: date | None
    in_table: bool
    reason: str


def support_status(version: str, today: date) -> SupportStatus:
    """Whether Istio `version` (e.g. `"1.24.3"`) is inside upstream support on `today`."""
    minor = parse_minor(version)
    key = _key(minor)
    table = _table()
    oldest, newest = table[0], table[-1]
    if minor < oldest:
        return SupportStatus(
            version,
            key,
            supported=False,
            end_of_support=None,
            in_table=False,
            reason=f"{key} is older than {_key(oldest)}, the oldest minor of the support table, "
            "and long out of support",
        )
    if minor > newest:
        # Newer than anything we know: it can only be recent, and upstream supports a new minor at
        # least until N+2 ships, so calling it unsupported would block the newest Istio.
        return SupportStatus(
            version,
            key,
            supported=True,
            end_of_support=None,
            in_table=False,
            reason=f"{key} is newer than {_key(newest)}, the newest minor of the support table; "
            "its end of support is not known yet",
        )
    successor = _key((minor[0], minor[1] + 2))
    eol = end_of_support(key)
    if eol is None:
        return SupportStatus(
            version,
            key,
            supported=True,
            end_of_support=None,
            in_table=key in FIRST_RELEASES,
            reason=f"{key} is supported; its end of support is six weeks after {successor}.0, "
            "which is not in the support table yet",
        )
    if today < eol:
        return SupportStatus(
            version,
            key,
            supported=True,
            end_of_support=eol,
            in_table=True,
            reason=f"{key} is supported until {eol.isoformat()} ({_why_it_ends(key)})",
        )
    return SupportStatus(
        version,
        key,
        supported=False,
        end_of_support=eol,
        in_table=True,
        reason=f"{key} went out of support on {eol.isoformat()} ({_why_it_ends(key)})",
    )


def unknown_reason(version: str, today: date) -> str | None:
    """Why the table cannot vouch for Istio `version` (an exact `x.y.z`) on `today`, or None if it can.

    Unknown: a minor newer than the table, a patch newer than its minor's newest known patch, or a
    minor without a known end of support once the table is older than STALE_AFTER. A minor older than
    the table is known: long out of support (`support_status` says so).
    """
    minor = parse_minor(version)
    key = _key(minor)
    newest = _table()[-1]
    checked = TABLE_CHECKED.isoformat()
    if minor > newest:
        return (
            f"{key} is newer than {_key(newest)}, the newest minor of the support table (checked {checked})"
        )
    if key not in FIRST_RELEASES:
        return None
    patch = int(version.split(".")[2])
    newest_patch = NEWEST_PATCHES[key]
    if patch > newest_patch:
        return (
            f"{version} is newer than {key}.{newest_patch}, the newest {key} patch of the support table "
            f"(checked {checked})"
        )
    if end_of_support(key) is None and today >= TABLE_CHECKED + STALE_AFTER:
        successor = _key((minor[0], minor[1] + 2))
        return (
            f"the support table was last checked on {checked}, {STALE_AFTER.days} or more days ago, and does not "
            f"know when {key} ends (six weeks after {successor}.0, which may have been released since)"
        )
    return None


def oldest_supported_minor(today: date) -> str:
    """The oldest minor of the table still supported on `today` (there always is one: the newest two)."""
    for minor in _table():
        key = _key(minor)
        if support_status(key, today).supported:
            return key
    return _key(_table()[-1])  # unreachable while the table has a minor without a known N+2
