"""`meshplan check` lines: one per finding, the resource by type and name, near-duplicates folded.

The policy rules report one violation per resource with the resource's URN, which makes lines of
300 characters and four near-identical lines for four Releases of one Istio version. A reader needs
the rule, the resources by kind and name, and the message once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from meshplan.engine import stackless

# Messages fold when what they share (a common start and end) is at least this share of each one.
MIN_SHARED = 0.6


@dataclass(frozen=True)
class Finding:
    """One violation as `check` prints it: its rule, whether it only warns, the resource and message."""

    rule: str
    advisory: bool
    urn: str
    message: str


def resource_label(urn: str) -> tuple[str, str]:
    """(kind, name) of a URN: `Service`, `kiali:istio-system/kiali`; a provider is `provider:<pkg>`."""
    parts = stackless(urn).split("::", 2)
    if len(parts) < 3:
        return "", urn
    type_ = parts[1].rsplit("$", 1)[-1]
    if type_.startswith("pulumi:providers:"):
        return "provider:" + type_.removeprefix("pulumi:providers:"), parts[2]
    return type_.rsplit(":", 1)[-1], parts[2]


def _common_prefix(texts: Sequence[str]) -> str:
    shortest = min(texts, key=len)
    for index, char in enumerate(shortest):
        if any(text[index] != char for text in texts):
            return shortest[:index]
    return shortest


def _word_prefix(texts: Sequence[str]) -> str:
    prefix = _common_prefix(texts)
    if all(len(t) == len(prefix) for t in texts):
        return prefix
    # Cut back to a word boundary, so `(chart base` and `(chart gateway` share `(chart `.
    cut = max(prefix.rfind(" "), prefix.rfind("("), prefix.rfind("/"))
    return prefix[: cut + 1] if cut >= 0 else ""


def _word_suffix(texts: Sequence[str], prefix_length: int) -> str:
    rests = [t[prefix_length:][::-1] for t in texts]
    suffix = _word_prefix([r.replace(")", "(") for r in rests])  # a closing bracket is a boundary too
    return texts[0][len(texts[0]) - len(suffix) :] if suffix else ""


def fold_messages(messages: Sequence[str]) -> str | None:
    """One message for several that differ in one place (`(chart {base|istiod})`), or None."""
    distinct = list(dict.fromkeys(messages))
    if len(distinct) == 1:
        return distinct[0]
    prefix = _word_prefix(distinct)
    suffix = _word_suffix(distinct, len(prefix))
    middles = [m[len(prefix) : len(m) - len(suffix)] for m in distinct]
    shared = len(prefix) + len(suffix)
    if any(shared < MIN_SHARED * len(m) for m in distinct):
        return None
    return prefix + "{" + "|".join(middles) + "}" + suffix


def _resources(findings: Sequence[Finding]) -> str:
    labels = [resource_label(f.urn) for f in findings]
    kinds = list(dict.fromkeys(kind for kind, _ in labels))
    names = list(dict.fromkeys(f"{kind} {name}" if kind else name for kind, name in labels))
    if len(kinds) == 1 and kinds[0]:
        return f"{kinds[0]} " + ", ".join(dict.fromkeys(name for _, name in labels))
    return ", ".join(names)


def format_findings(findings: Sequence[Finding]) -> list[str]:
    """Lines for `check`: findings of one rule whose messages fold are one line, in first-seen order."""
    groups: list[list[Finding]] = []
    for finding in findings:
        for group in groups:
            head = group[0]
            if (head.rule, head.advisory) == (finding.rule, finding.advisory) and fold_messages(
                [f.message for f in group] + [finding.message]
            ):
                group.append(finding)
                break
        else:
            groups.append([finding])
    lines = []
    for group in groups:
        head = group[0]
        message = fold_messages([f.message for f in group]) or head.message
        prefix = "advisory: " if head.advisory else ""
        lines.append(f"{prefix}{head.rule}: {_resources(group)}: {message}")
    return lines
