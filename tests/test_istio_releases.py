"""The support table as of 2026-12-02, and the two version rules on it, message for message.

Facts (https://istio.io/latest/news/releases/): 1.31.0 released 2026-08-20, 1.31.1 and 1.30.5 on
2026-09-21; 1.29 reached its end of life on 2026-10-15. Each test starts from a plan every rule
accepts on that day (all charts on 1.31.1), changes one thing and asserts the exact lines.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from pulumi_policy import EnforcementLevel, StackValidationArgs

import policy.__main__ as pack
from policy import istio_releases, rules
from policy.istio_releases import (
    ANNOUNCED_END_OF_LIFE,
    FIRST_RELEASES,
    NEWEST_PATCHES,
    STALE_AFTER,
    TABLE_CHECKED,
    SupportStatus,
    end_of_support,
    support_status,
    unknown_reason,
)
from policy.rules import check_plan
from tests.test_policy import BASE_URN, GATEWAY_URN, ISTIOD_URN, engine_resources, find, good_plan

DAY = date(2026, 12, 2)
UPSTREAM = "https://istio.io/latest/docs/releases/supported-releases/"


def plan_on(version: str, environment: str = "production") -> dict[str, Any]:
    plan = good_plan(environment)
    for name in ("istio-base", "istiod", "istio-ingressgateway"):
        find(plan, name)["inputs"]["version"] = version
    return plan


def lines(plan: dict[str, Any], today: date = DAY) -> list[str]:
    return [str(v) for v in check_plan(plan, today)]


def unknown(urn: str, version: str, chart: str, reason: str) -> str:
    return (
        f"istio-version-known: {urn}: Istio {version} (chart {chart}) is unknown to the support table: "
        f"{reason}; check upstream ({UPSTREAM}) and update policy/istio_releases.py"
    )


@pytest.mark.parametrize("version", ["1.31.1", "1.31.0", "1.30.5", "1.30.0"])
def test_the_supported_known_versions_pass(version: str) -> None:
    assert lines(plan_on(version)) == []


def test_1_29_is_out_of_support_since_its_announced_end_of_life() -> None:
    plan = plan_on("1.31.1")
    find(plan, "istiod")["inputs"]["version"] = "1.29.6"
    assert lines(plan) == [
        f"istio-version-supported: {ISTIOD_URN}: Istio 1.29.6 (chart istiod) is out of support: 1.29 went out "
        "of support on 2026-10-15 (its announced end of life); on 2026-12-02 use 1.30 or newer"
    ]


def test_1_29_is_supported_the_day_before_its_end_of_life() -> None:
    assert lines(plan_on("1.29.6"), date(2026, 10, 14)) == []
    assert support_status("1.29.6", date(2026, 10, 14)).reason == (
        "1.29 is supported until 2026-10-15 (its announced end of life)"
    )


def test_1_28_ended_six_weeks_after_1_30() -> None:
    plan = plan_on("1.31.1")
    find(plan, "istio-base")["inputs"]["version"] = "1.28.10"
    assert lines(plan) == [
        f"istio-version-supported: {BASE_URN}: Istio 1.28.10 (chart base) is out of support: 1.28 went out of "
        "support on 2026-06-26 (six weeks after 1.30.0 of 2026-05-15); on 2026-12-02 use 1.30 or newer"
    ]


def test_a_minor_newer_than_the_table_is_unknown_not_silently_supported() -> None:
    plan = plan_on("1.31.1")
    find(plan, "istiod")["inputs"]["version"] = "1.32.0"
    assert lines(plan) == [
        unknown(
            ISTIOD_URN,
            "1.32.0",
            "istiod",
            "1.32 is newer than 1.31, the newest minor of the support table (checked 2026-12-02)",
        )
    ]


@pytest.mark.parametrize(("version", "newest"), [("1.31.2", "1.31.1"), ("1.30.6", "1.30.5")])
def test_a_patch_newer_than_the_table_is_unknown(version: str, newest: str) -> None:
    plan = plan_on("1.31.1")
    find(plan, "istio-ingressgateway")["inputs"]["version"] = version
    minor = version.rsplit(".", 1)[0]
    assert lines(plan) == [
        unknown(
            GATEWAY_URN,
            version,
            "gateway",
            f"{version} is newer than {newest}, the newest {minor} patch of the support table (checked 2026-12-02)",
        )
    ]


def test_a_stale_table_makes_a_minor_without_a_known_end_unknown() -> None:
    stale = TABLE_CHECKED + STALE_AFTER
    assert stale == date(2027, 3, 2)
    assert lines(plan_on("1.31.1"), stale - timedelta(days=1)) == []
    reason = (
        "the support table was last checked on 2026-12-02, 90 or more days ago, and does not know when 1.31 ends "
        "(six weeks after 1.33.0, which may have been released since)"
    )
    assert lines(plan_on("1.31.1"), stale) == [
        unknown(urn, "1.31.1", chart, reason)
        for chart, urn in (("base", BASE_URN), ("gateway", GATEWAY_URN), ("istiod", ISTIOD_URN))
    ]


def test_a_minor_older_than_the_table_is_known_and_out_of_support() -> None:
    assert unknown_reason("1.19.9", DAY) is None
    assert support_status("1.19.9", DAY).supported is False


def test_unknown_versions_only_warn_even_on_production() -> None:
    plan = plan_on("1.32.0")
    context = rules.plan_context(plan, DAY)
    assert context.production is True
    assert [(v.rule, rules.is_advisory(v.rule, context)) for v in check_plan(plan, DAY)] == [
        ("istio-version-known", True)
    ] * 3


def test_the_pack_reports_unknown_versions_as_advisory_on_production() -> None:
    policy = next(p for p in pack.build_policies(lambda: DAY) if p.name == "istio-version-known")
    assert policy.enforcement_level == EnforcementLevel.ADVISORY
    reported: list[tuple[str, str | None]] = []
    plan = plan_on("1.31.1")
    find(plan, "istiod")["inputs"]["version"] = "1.31.2"
    policy.validate(StackValidationArgs(engine_resources(plan)), lambda m, u=None: reported.append((m, u)))
    assert reported == [
        (
            "Istio 1.31.2 (chart istiod) is unknown to the support table: 1.31.2 is newer than 1.31.1, the newest "
            f"1.31 patch of the support table (checked 2026-12-02); check upstream ({UPSTREAM}) and update "
            "policy/istio_releases.py",
            ISTIOD_URN,
        )
    ]


def test_status_of_each_minor_on_the_day() -> None:
    assert {minor: support_status(f"{minor}.0", DAY).supported for minor in FIRST_RELEASES} == {
        **{f"1.{n}": False for n in range(20, 30)},
        "1.30": True,
        "1.31": True,
    }
    assert istio_releases.oldest_supported_minor(DAY) == "1.30"
    assert support_status("1.31.1", DAY).reason == (
        "1.31 is supported; its end of support is six weeks after 1.33.0, which is not in the support table yet"
    )
    assert end_of_support("1.29") == date(2026, 10, 15)


def test_the_tables_agree() -> None:
    assert list(NEWEST_PATCHES) == list(FIRST_RELEASES)
    assert set(ANNOUNCED_END_OF_LIFE) <= set(FIRST_RELEASES)
    assert FIRST_RELEASES["1.31"] == date(2026, 8, 20)
    assert (NEWEST_PATCHES["1.30"], NEWEST_PATCHES["1.31"]) == (5, 1)
    assert max(FIRST_RELEASES.values()) <= TABLE_CHECKED


# Each minor's end of support and why, as the version rule says it: six weeks (42 days) after the
# x.y.0 tag of minor N+2, or the end of life upstream announced.
ENDS = {
    "1.20": ("2024-06-21", "six weeks after 1.22.0 of 2024-05-10"),
    "1.21": ("2024-09-22", "six weeks after 1.23.0 of 2024-08-11"),
    "1.22": ("2024-12-17", "six weeks after 1.24.0 of 2024-11-05"),
    "1.23": ("2025-04-08", "six weeks after 1.25.0 of 2025-02-25"),
    "1.24": ("2025-06-17", "six weeks after 1.26.0 of 2025-05-06"),
    "1.25": ("2025-09-19", "six weeks after 1.27.0 of 2025-08-08"),
    "1.26": ("2025-12-11", "six weeks after 1.28.0 of 2025-10-30"),
    "1.27": ("2026-03-24", "six weeks after 1.29.0 of 2026-02-10"),
    "1.28": ("2026-06-26", "six weeks after 1.30.0 of 2026-05-15"),
    "1.29": ("2026-10-15", "its announced end of life"),
}


@pytest.mark.parametrize(("minor", "end", "why"), [(m, e, w) for m, (e, w) in ENDS.items()])
def test_each_minors_end_of_support(minor: str, end: str, why: str) -> None:
    eol = date.fromisoformat(end)
    assert end_of_support(minor) == eol
    assert (
        support_status(f"{minor}.0", eol - timedelta(days=1)).reason
        == f"{minor} is supported until {end} ({why})"
    )
    assert support_status(f"{minor}.0", eol).reason == f"{minor} went out of support on {end} ({why})"


def test_the_minors_without_a_known_end_are_the_newest_two() -> None:
    assert [minor for minor in FIRST_RELEASES if end_of_support(minor) is None] == ["1.30", "1.31"]
    assert set(ENDS) | {"1.30", "1.31"} == set(FIRST_RELEASES)


# The newest patch of each minor (the istio/istio tags as of 2026-12-02): known, and the next one not.
NEWEST = {
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


@pytest.mark.parametrize(("minor", "patch"), NEWEST.items())
def test_each_minors_newest_patch_is_known_and_the_next_is_not(minor: str, patch: int) -> None:
    assert unknown_reason(f"{minor}.{patch}", DAY) is None
    assert unknown_reason(f"{minor}.{patch + 1}", DAY) == (
        f"{minor}.{patch + 1} is newer than {minor}.{patch}, the newest {minor} patch of the support table "
        "(checked 2026-12-02)"
    )


@pytest.mark.parametrize(
    ("version", "status"),
    [
        (
            "1.29.6",
            SupportStatus(
                "1.29.6",
                "1.29",
                supported=True,
                end_of_support=date(2026, 10, 15),
                in_table=True,
                reason="1.29 is supported until 2026-10-15 (its announced end of life)",
            ),
        ),
    ],
)
def test_the_whole_status_of_a_version_before_its_end(version: str, status: SupportStatus) -> None:
    assert support_status(version, date(2026, 10, 14)) == status


@pytest.mark.parametrize(
    ("version", "status"),
    [
        (
            "1.19.9",
            SupportStatus(
                "1.19.9",
                "1.19",
                supported=False,
                end_of_support=None,
                in_table=False,
                reason="1.19 is older than 1.20, the oldest minor of the support table, and long out of support",
            ),
        ),
        (
            "1.32.0",
            SupportStatus(
                "1.32.0",
                "1.32",
                supported=True,
                end_of_support=None,
                in_table=False,
                reason="1.32 is newer than 1.31, the newest minor of the support table; its end of support is not "
                "known yet",
            ),
        ),
        (
            "1.30.5",
            SupportStatus(
                "1.30.5",
                "1.30",
                supported=True,
                end_of_support=None,
                in_table=True,
                reason="1.30 is supported; its end of support is six weeks after 1.32.0, which is not in the "
                "support table yet",
            ),
        ),
        (
            "1.29.6",
            SupportStatus(
                "1.29.6",
                "1.29",
                supported=False,
                end_of_support=date(2026, 10, 15),
                in_table=True,
                reason="1.29 went out of support on 2026-10-15 (its announced end of life)",
            ),
        ),
    ],
)
def test_the_whole_status_of_each_kind_of_version(version: str, status: SupportStatus) -> None:
    assert support_status(version, DAY) == status


def test_when_every_minor_of_the_table_has_ended_the_newest_is_the_oldest_supported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only an announced end of life can end the newest minors; the table then still names its newest."""
    ended = {"1.30": date(2026, 11, 1), "1.31": date(2026, 11, 1)}
    monkeypatch.setattr(istio_releases, "ANNOUNCED_END_OF_LIFE", ended)
    assert [support_status(f"{m}.0", DAY).supported for m in ("1.30", "1.31")] == [False, False]
    assert istio_releases.oldest_supported_minor(DAY) == "1.31"
