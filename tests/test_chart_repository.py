"""The chart repository: the default after Istio's move off Google Cloud, and the retired hosts.

https://istio.io/latest/blog/2026/retirement-of-gcp/: every chart of every version is at
https://blob.istio.io/istio-release/charts (and oci://ghcr.io/istio/release/charts); 1.30 is the last
minor on https://istio-release.storage.googleapis.com/charts and oci://gcr.io/istio-release/charts.
"""

from __future__ import annotations

from typing import Any

import pytest

from components.config import ConfigError, parse_config
from tests.harness import ROOT

OLD = "https://istio-release.storage.googleapis.com/charts"
NEW = "https://blob.istio.io/istio-release/charts"


def raw(istio: dict[str, Any], **rest: Any) -> dict[str, Any]:
    return {"cluster": {"context": "c"}, "istio": istio, "grafanaAdminPassword": "set", **rest}


def problems(config: dict[str, Any]) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as caught:
        parse_config(config, base_dir=ROOT)
    return caught.value.problems


@pytest.mark.parametrize("version", ["1.20.8", "1.30.5", "1.31.1"])
def test_the_default_is_istios_new_repository_for_every_version(version: str) -> None:
    config = parse_config(raw({"version": version}), base_dir=ROOT)
    assert config.istio.chart_repository == NEW


@pytest.mark.parametrize(
    "repository",
    [OLD, f"{OLD}/", "oci://gcr.io/istio-release/charts", NEW, "oci://ghcr.io/istio/release/charts"],
)
def test_any_repository_still_serves_1_30(repository: str) -> None:
    config = parse_config(raw({"version": "1.30.5", "chartRepository": repository}), base_dir=ROOT)
    assert config.istio.chart_repository == repository


@pytest.mark.parametrize("repository", [OLD, f"{OLD}/", "oci://gcr.io/istio-release/charts"])
def test_a_retired_repository_is_refused_for_1_31(repository: str) -> None:
    assert problems(raw({"version": "1.31.0", "chartRepository": repository})) == (
        f"istio.chartRepository: got {repository!r}; Istio 1.31.0 is not published there (1.30 is the last "
        "minor on Istio's retired Google Cloud repositories); use https://blob.istio.io/istio-release/charts "
        "(the default) or oci://ghcr.io/istio/release/charts",
    )


def test_a_canary_revision_on_1_31_needs_the_new_repository_too() -> None:
    istio = {
        "version": "1.30.5",
        "chartRepository": OLD,
        "revisions": {"1-30-5": {"version": "1.30.5"}, "1-31-1": {"version": "1.31.1"}},
        "defaultRevision": "1-30-5",
    }
    assert problems(raw(istio)) == (
        f"istio.chartRepository: got {OLD!r}; Istio 1.31.1 is not published there (1.30 is the last minor on "
        "Istio's retired Google Cloud repositories); use https://blob.istio.io/istio-release/charts "
        "(the default) or oci://ghcr.io/istio/release/charts",
    )


def test_the_retired_repository_is_reported_with_every_other_mistake() -> None:
    found = problems(raw({"version": "1.31.1", "chartRepository": OLD, "profile": "tiny"}, protect="yes"))
    assert [p.split(":")[0] for p in found] == ["istio.profile", "istio.chartRepository", "protect"]
