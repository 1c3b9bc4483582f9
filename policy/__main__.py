"""The istio-mesh Pulumi policy pack: each rule of `policy/rules.py` as a stack validation policy.

Pulumi runs this file with `python -m pulumi.policy <engine> <pack dir>`, which executes it through
`runpy.run_path(<pack dir>, run_name="__main__")` (pulumi/policy/__main__.py in the pulumi SDK): the
pack folder is then sys.path[0] and there is no parent package, hence the two import forms below.
Imported as `policy.__main__` (the tests), it only defines the policies: `PolicyPack(...)` starts the
analyzer's gRPC server and blocks forever, so it is built under `if __name__ == "__main__"` only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyPack,
    PolicyResource,
    ReportViolation,
    StackValidationArgs,
    StackValidationPolicy,
)

if __package__:
    from .rules import ADVISORY_RULES, PRODUCTION_MANDATORY_RULES, RULES, Rule, RuleContext, context_for
else:  # pragma: no cover - only under `pulumi ... --policy-pack`
    from rules import (  # type: ignore[no-redef]
        ADVISORY_RULES,
        PRODUCTION_MANDATORY_RULES,
        RULES,
        Rule,
        RuleContext,
        context_for,
    )

PACK_NAME = "istio-mesh"

Applies = Callable[[RuleContext], bool]


@dataclass(frozen=True)
class PolicySpec:
    """One policy of the pack: which rule it runs, how hard it blocks, and on which stacks."""

    name: str
    rule: Rule
    enforcement: EnforcementLevel
    applies: Applies | None = None
    not_applicable: str = ""


def _production(context: RuleContext) -> bool:
    return context.production


def _not_production(context: RuleContext) -> bool:
    return not context.production


# An enforcement level is fixed per policy (the engine reads it from the pack before any stack is
# analyzed), while "production" is only known from the stack's own resources (the istio-system
# Namespace's `istio-mesh/environment` label, see rules.context_for). So the version rule is served by
# two policies, each of which declares itself not applicable on the other kind of stack: a
# mandatory one for production and an advisory one for every other stack. The exposed-anonymous
# Kiali rule is split the same way (rules.PRODUCTION_MANDATORY_RULES, shared with `meshplan check`).
# The production-only rules also say "not applicable" off production, instead of silently passing.
PRODUCTION_ONLY_RULES = frozenset(
    {"production-dashboards-internal", "production-base-protected", "production-ambient-ga"}
)


def _specs_for(rule: Rule) -> tuple[PolicySpec, ...]:
    if rule.id in ADVISORY_RULES:
        # Warns on every stack (rules.ADVISORY_RULES): an Istio version the support table (or the
        # Gateway API table) does not know is a reason to check upstream, not to stop a production deploy.
        return (PolicySpec(rule.id, rule, EnforcementLevel.ADVISORY),)
    if rule.id in PRODUCTION_MANDATORY_RULES:
        return (
            PolicySpec(
                rule.id,
                rule,
                EnforcementLevel.MANDATORY,
                _production,
                f"not a production stack: {rule.id}-advisory reports instead",
            ),
            PolicySpec(
                f"{rule.id}-advisory",
                rule,
                EnforcementLevel.ADVISORY,
                _not_production,
                f"a production stack: {rule.id} (mandatory) reports instead",
            ),
        )
    if rule.id in PRODUCTION_ONLY_RULES:
        return (PolicySpec(rule.id, rule, EnforcementLevel.MANDATORY, _production, "not a production stack"),)
    return (PolicySpec(rule.id, rule, EnforcementLevel.MANDATORY),)


POLICY_SPECS: tuple[PolicySpec, ...] = tuple(spec for rule in RULES for spec in _specs_for(rule))


def plan_resource(resource: PolicyResource) -> dict[str, Any]:
    """A `PolicyResource` in the shape of a `meshplan` plan resource, for the rules.

    `inputs` are the resource's properties as the engine passes them to stack policies (its state,
    which for these resources carries every input under the same camelCase key). They stay the
    SDK's unknown-checking proxies, so a rule that reads a value unknown during preview makes the
    SDK skip that policy with an advisory notice instead of judging a placeholder.
    `retainOnDelete` is left out: PolicyResourceOptions does not expose it, and no rule reads it.
    """
    parent = resource.opts.parent or (resource.parent.urn if resource.parent is not None else None)
    return {
        "urn": resource.urn,
        "type": resource.resource_type,
        "name": resource.name,
        "parent": parent,
        "dependsOn": [dependency.urn for dependency in resource.dependencies],
        "provider": resource.provider.urn if resource.provider is not None else None,
        "protect": bool(resource.opts.protect),
        "ignoreChanges": list(resource.opts.ignore_changes),
        "inputs": resource.props,
    }


def _today() -> date:
    return datetime.now(UTC).date()


def _validator(
    spec: PolicySpec, today: Callable[[], date]
) -> Callable[[StackValidationArgs, ReportViolation], None]:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        resources = [plan_resource(resource) for resource in args.resources]
        context = context_for(resources, today())
        if spec.applies is not None and not spec.applies(context):
            args.not_applicable(spec.not_applicable)  # raises: the SDK records the reason
            return
        for violation in spec.rule.check(resources, context):
            report_violation(violation.message, violation.urn)

    return validate


def build_policies(today: Callable[[], date] = _today) -> list[StackValidationPolicy]:
    """The pack's policies, in rule order; `today` is injectable for tests."""
    return [
        StackValidationPolicy(
            name=spec.name,
            description=spec.rule.description,
            validate=_validator(spec, today),
            enforcement_level=spec.enforcement,
        )
        for spec in POLICY_SPECS
    ]


def main() -> None:
    PolicyPack(name=PACK_NAME, policies=list(build_policies()), enforcement_level=EnforcementLevel.MANDATORY)


if __name__ == "__main__":
    main()
