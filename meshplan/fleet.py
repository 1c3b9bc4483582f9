"""`meshplan show|diff|check --all`: every stack of the project in one process, one summary table.

A repository that keeps many clusters in step has one stack file per cluster. Rendering each in a
process of its own would import the Pulumi SDK once per stack; here the SDK is imported once and
every stack is rendered in turn (the engine starts each render from a fresh root stack), so 50
stacks cost little more than one (bench/fleet.py).

The table says, per stack: the cluster context, the Istio version, what a deployment would create,
update and delete (`diff`), and how many policy findings there are; then each stack's details as
the single-stack verb prints them. Every verb also applies the fleet's own rule: one cluster, one
stack (two stack files with the same context and kubeconfig would fight over one cluster); `show`
and `diff` count the findings in the table and list them after each stack's details.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meshplan import UserError
from meshplan.checks import Finding, format_findings
from meshplan.engine import PROJECT

if TYPE_CHECKING:
    from meshplan.cli import Context, Target
    from meshplan.diff import PlanDiff

SAME_CLUSTER_RULE = "one-cluster-one-stack"
EMPTY_PLAN: dict[str, Any] = {"resources": [], "outputs": {}}


@dataclass
class StackReport:
    """What `--all` found for one stack: its cluster, its plan's summary, findings, and details."""

    stack: str
    path: Path
    context: str = ""
    kubeconfig: str = ""
    istio: str = ""
    counts: tuple[int, int, int] | None = None  # create, update, delete (diff only)
    findings: list[Finding] = field(default_factory=list)
    details: str = ""
    error: str | None = None
    changed: bool = False


def stack_files(project_dir: Path, pattern: str) -> list[tuple[str, Path]]:
    """(stack, file) for every file `pattern` matches under the project, named Pulumi.<stack>.yaml."""
    from meshplan.cli import _STACK_FILE_NAME, _STACK_NAME

    found = []
    for path in sorted(project_dir.glob(pattern)):
        match = _STACK_FILE_NAME.fullmatch(path.name)
        if path.is_file() and match is not None and _STACK_NAME.fullmatch(match["stack"]):
            found.append((match["stack"], path.resolve()))
    names = [name for name, _ in found]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise UserError(f"--all {pattern}: more than one stack file for stack {', '.join(duplicates)}")
    if not found:
        raise UserError(f"--all {pattern}: no stack file Pulumi.<stack>.yaml matches in {project_dir}")
    return found


def cluster_of(values: Mapping[str, Any], project_dir: Path) -> tuple[str, str]:
    """The stack's cluster as its config names it: (context, kubeconfig), the path made absolute."""
    cluster = values.get(f"{PROJECT}:cluster")
    if not isinstance(cluster, Mapping):
        return "", ""
    context, kubeconfig = str(cluster.get("context") or ""), str(cluster.get("kubeconfig") or "")
    if kubeconfig:
        path = Path(os.path.expanduser(kubeconfig))
        kubeconfig = str(path if path.is_absolute() else (project_dir / path).resolve())
    return context, kubeconfig


def same_cluster_findings(reports: Sequence[StackReport]) -> list[Finding]:
    """Two stacks that target one cluster (same context, same kubeconfig): each stack's finding."""
    by_cluster: dict[tuple[str, str], list[StackReport]] = {}
    for report in reports:
        if report.context:
            by_cluster.setdefault((report.context, report.kubeconfig), []).append(report)
    findings = []
    for (context, kubeconfig), owners in sorted(by_cluster.items()):
        if len(owners) < 2:
            continue
        names = ", ".join(r.stack for r in owners)
        where = f"context {context}" + (
            f" of kubeconfig {kubeconfig}" if kubeconfig else " (default kubeconfig)"
        )
        for report in owners:
            message = f"stacks {names} all target {where}; a cluster belongs to one stack"
            finding = Finding(SAME_CLUSTER_RULE, False, f"stack {report.stack}", message)
            report.findings.append(finding)
            findings.append(finding)
    return findings


def _istio_version(values: Mapping[str, Any]) -> str:
    istio = values.get(f"{PROJECT}:istio")
    version = istio.get("version") if isinstance(istio, Mapping) else None
    return str(version) if version is not None else ""


@contextlib.contextmanager
def _checkout_if(project_dir: Path, against: str | None) -> Iterator[Any]:
    if against is None or not against.startswith("git:"):
        yield None
        return
    from meshplan.revisions import checkout

    with checkout(project_dir, against.removeprefix("git:")) as tree:
        yield tree


def run(verb: str, args: argparse.Namespace, context: Context) -> tuple[int, str]:
    """`VERB --all`: the summary table, then each stack's details; exit code as the worst stack's."""
    from meshplan import cli

    if args.stack or args.stack_file:
        raise cli.UsageError("--all renders every stack: leave out --stack and --stack-file")
    against = getattr(args, "against", None)
    if verb == "diff" and not str(against).startswith("git:"):
        raise cli.UsageError(
            f"--all --against {against}: with --all, --against is git:REV (each stack at REV)"
        )
    if getattr(args, "json", False):
        raise cli.UsageError(
            "--all prints a table and each stack's text; for JSON, run each stack with --stack"
        )
    if args.jobs < 1:
        raise cli.UsageError(f"--jobs {args.jobs}: expected 1 or more")
    project_dir = cli.find_project_dir(args.project_dir)
    files = stack_files(project_dir, args.all)
    for _, path in files:
        context.redact.add_stack_file(path)
    with _checkout_if(project_dir, against) as tree:
        job = functools.partial(_one_stack, verb, args, context, project_dir, tree)
        # The first stack in this process: the program's modules and the SDK's lazily imported
        # ones are loaded by then, and forked workers inherit them instead of each loading them.
        reports = [job(files[0])]
        if args.jobs == 1 or len(files) <= 2:
            reports += [job(item) for item in files[1:]]
        else:
            reports += _in_workers(job, files[1:], args.jobs)
    # The fleet's own rule, in every verb's table; `check` lists it with the policy's findings.
    same_cluster_findings(reports)
    for report in reports:
        if report.error is not None or (not report.findings and verb != "check"):
            continue
        lines = "".join(f"{line}\n" for line in format_findings(report.findings))
        report.details = lines if verb == "check" else f"{report.details}\npolicy:\n{lines}"
    text = summary_table(reports, diff=verb == "diff") + "".join(_details(report, verb) for report in reports)
    if any(r.error for r in reports):
        return cli.EXIT_ERROR, text
    if verb == "check" and any(not f.advisory for r in reports for f in r.findings):
        return cli.EXIT_FOUND, text
    if verb == "diff" and args.exit_code and any(r.changed for r in reports):
        return cli.EXIT_FOUND, text
    return cli.EXIT_OK, text


def _in_workers(
    job: Callable[[tuple[str, Path]], StackReport], files: Sequence[tuple[str, Path]], jobs: int
) -> list[StackReport]:
    """The stacks rendered by `jobs` forked workers, in order.

    The workers are forked after a render in this process, so each starts with the SDK and the
    program loaded (once, as in one process) and renders its share of the stacks one after another.
    A render keeps its state in the process, so workers never share one.
    """
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(min(jobs, len(files))) as pool:
        return pool.map(job, files, chunksize=1)


def _one_stack(
    verb: str,
    args: argparse.Namespace,
    context: Context,
    project_dir: Path,
    tree: Any,
    item: tuple[str, Path],
) -> StackReport:
    from meshplan import cli, show
    from meshplan.stacks import load_stack

    stack, path = item
    report = StackReport(stack, path)
    base = (project_dir / f"Pulumi.{stack}.yaml").resolve()
    target = cli.Target(
        project_dir,
        stack,
        None if path == base else path,
        tuple(getattr(args, "shared_config", None) or ()) + tuple(args.config or ()),
        cli.ChartOptions(
            args.charts,
            args.fetch_charts,
            args.kube_version,
            tuple(args.api_versions or ()),
            Path(args.chart_dir).resolve() if args.chart_dir else None,
        ),
    )
    try:
        config = load_stack(project_dir, stack, stack_file=target.stack_file, overrides=target.overrides)
        report.context, report.kubeconfig = cluster_of(config.values, project_dir)
        report.istio = _istio_version(config.values)
        plan = cli.render_here(target, context)
        if verb == "diff":
            report.details, report.counts, report.changed = _diff(target, plan, tree, args, context)
        elif verb == "show":
            report.details = show.format_tree(plan)
        report.findings = cli.policy_findings(project_dir, plan, getattr(args, "today", None) or _today())
    except UserError as error:
        report.error = context.redact(str(error))
    return report


def _today() -> Any:
    import datetime

    return datetime.date.today()


def _diff(
    target: Target, plan: dict[str, Any], tree: Any, args: argparse.Namespace, context: Context
) -> tuple[str, tuple[int, int, int], bool]:
    """The stack against itself at the git revision, rendered in this process too."""
    from meshplan import cli
    from meshplan import diff as plan_diff

    old_target = cli.Target(
        tree.moved(target.project_dir),
        target.stack,
        tree.moved(target.stack_file) if target.stack_file else None,
        tuple(args.shared_config or ()) + tuple(args.against_config or ()),
        target.charts,
    )
    if old_target.stack_path.is_file():
        context.redact.add_stack_file(old_target.stack_path)
        old = cli.render_here(old_target, context)
        label = f"{args.against} ({target.label})"
    else:
        old, label = EMPTY_PLAN, f"{args.against} (no stack {target.stack} there)"
    result: PlanDiff = plan_diff.diff_plans(old, plan)
    counts = tuple(len(result.of_kind(kind)) for kind in ("create", "update", "delete"))
    text = plan_diff.format_text(result, old_label=label, new_label=target.label)
    return text, (counts[0], counts[1], counts[2]), result.has_changes


def summary_table(reports: Sequence[StackReport], *, diff: bool) -> str:
    """One line per stack, aligned: stack, context, Istio, create/update/delete, policy findings."""
    header = ["stack", "context", "istio", "create", "update", "delete", "violations"]
    rows = [header]
    for report in reports:
        # Counted as `check` prints them: the same finding on several resources is one.
        mandatory = len(format_findings([f for f in report.findings if not f.advisory]))
        advisory = len(format_findings([f for f in report.findings if f.advisory]))
        violations = f"{mandatory}" + (f" (+{advisory} advisory)" if advisory else "")
        if report.error is not None:
            counts, violations = ["-", "-", "-"], "error"
        elif diff and report.counts is not None:
            counts = [str(n) for n in report.counts]
        else:
            counts = ["-", "-", "-"]
        rows.append([report.stack, report.context or "-", report.istio or "-", *counts, violations])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    return "\n".join(lines) + "\n"


def _details(report: StackReport, verb: str) -> str:
    body = f"error: {report.error}\n" if report.error is not None else report.details
    if verb == "check" and not body:
        body = "no policy violations\n"
    return f"\n=== {report.stack} ({report.path.name}) ===\n{body}"
