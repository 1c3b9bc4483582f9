"""`python -m meshplan show|diff|graph|check`: a stack's graph without a cluster, a backend or credentials.

Exit codes: 0 fine, 1 changes (`diff --exit-code`) or policy violations (`check`), 2 any mistake in
the command line, the stack's config, `--against` or git; mistakes print one clear message, never a
traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from meshplan import UserError, show
from meshplan.engine import SECRET, render, short_ref
from meshplan.stacks import YAML_LOADER, load_stack

if TYPE_CHECKING:
    from meshplan.revisions import RenderRequest

# The modules only some verbs use (diff, graph, git checkouts) are imported by those verbs, so
# `show` pays for none of them.

EXIT_OK, EXIT_FOUND, EXIT_ERROR = 0, 1, 2

_STACK_FILE_NAME = re.compile(r"Pulumi\.(?P<stack>[^/\\]+)\.ya?ml")
_STACK_NAME = re.compile(r"[A-Za-z0-9_.-]+")
# Pulumi's passphrase ciphertext (`v1:<nonce>:<ciphertext>`), masked wherever it might turn up,
# e.g. quoted by a YAML parser error from a stack file that could not be read as a whole.
_CIPHERTEXT = re.compile(r"\bv1:[A-Za-z0-9+/]+={0,2}:[A-Za-z0-9+/]+={0,2}")
# Runs of base64 long enough that matching part of a known ciphertext is no coincidence.
_CIPHERTEXT_PIECE = re.compile(r"[A-Za-z0-9+/=]{6,}")
MIN_CIPHERTEXT_CHARS = 16
_SECURE_LINE = re.compile(r"\bsecure:[ \t]*[\"']?(?P<value>[^\s\"'#]+)")


class UsageError(UserError):
    """A mistake on the command line or in the stack; the message says what to do instead."""


class Redactor:
    """Masks the `secure:` values of every stack file the command read, in everything it prints.

    The engine already masks secrets in plans; this covers text from anywhere else (error messages,
    child process output), so a ciphertext never reaches a terminal or a CI log, not even the cut
    piece of one that a YAML parser error quotes from a stack file it could not read.
    """

    def __init__(self) -> None:
        self._secrets: set[str] = set()

    def add_stack_file(self, path: Path) -> None:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return  # the stack loader reports it; nothing of the file can be printed either
        # Line by line as well as parsed: a file the YAML parser rejects still has its secrets.
        self._add(m["value"] for m in _SECURE_LINE.finditer(text))
        with contextlib.suppress(yaml.YAMLError):
            self._collect(yaml.load(text, Loader=YAML_LOADER))

    def _add(self, values: Iterable[str]) -> None:
        # Ciphertexts are long; a short `secure:` value (a `secure: false` under some chart's values)
        # is no secret, and masking "false" everywhere would garble the output.
        self._secrets.update(v for v in values if len(v) >= MIN_CIPHERTEXT_CHARS)

    def _collect(self, value: Any) -> None:
        if isinstance(value, Mapping):
            secure = value.get("secure")
            if len(value) == 1 and isinstance(secure, str):
                self._add([secure])
                return
            for item in value.values():
                self._collect(item)
        elif isinstance(value, list):
            for item in value:
                self._collect(item)

    def _mask_piece(self, match: re.Match[str]) -> str:
        piece = match.group()
        return SECRET if any(piece in secret for secret in self._secrets) else piece

    def __call__(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, SECRET)
        text = _CIPHERTEXT.sub(SECRET, text)
        return _CIPHERTEXT_PIECE.sub(self._mask_piece, text) if self._secrets else text


@dataclass(frozen=True)
class ChartOptions:
    """How Helm releases are rendered: `--charts`, `--fetch-charts`, `--kube-version`, `--api-versions`."""

    mode: str = "never"  # auto: where the chart is at hand; always: every Release or an error; never
    fetch: bool = False
    kube_version: str | None = None
    api_versions: tuple[str, ...] = ()
    chart_dir: Path | None = None

    def argv(self) -> list[str]:
        """The same options for a child `meshplan show --json`."""
        args = ["--charts", self.mode] + (["--fetch-charts"] if self.fetch else [])
        if self.chart_dir is not None:
            args += ["--chart-dir", str(self.chart_dir)]
        if self.kube_version:
            args += ["--kube-version", self.kube_version]
        for api_version in self.api_versions:
            args += ["--api-versions", api_version]
        return args


@dataclass(frozen=True)
class Target:
    """The stack this command is about, as the command line names it."""

    project_dir: Path
    stack: str
    stack_file: Path | None
    overrides: tuple[str, ...]
    charts: ChartOptions = ChartOptions()

    @property
    def stack_path(self) -> Path:
        return self.stack_file or self.project_dir / f"Pulumi.{self.stack}.yaml"

    @property
    def label(self) -> str:
        return f"stack {self.stack}" + (f" ({self.stack_file})" if self.stack_file else "")

    def request(self, label: str = "") -> RenderRequest:
        from meshplan.revisions import RenderRequest

        return RenderRequest(
            label, self.project_dir, self.stack, self.stack_file, self.overrides, tuple(self.charts.argv())
        )


@dataclass
class Context:
    """What every verb shares: the redactor that keeps secret values out of anything printed."""

    redact: Redactor = field(default_factory=Redactor)

    def warn(self, text: str) -> None:
        if text.strip():
            sys.stderr.write(self.redact(text.rstrip("\n") + "\n"))


def find_project_dir(given: str | None) -> Path:
    """`--project-dir`, or the nearest directory from here up that holds a Pulumi.yaml (as `pulumi` does)."""
    if given is not None:
        project_dir = Path(given).resolve()
        if not (project_dir / "Pulumi.yaml").is_file():
            raise UsageError(f"--project-dir {given}: {project_dir} is not a Pulumi project (no Pulumi.yaml)")
        return project_dir
    here = Path.cwd().resolve()
    for directory in (here, *here.parents):
        if (directory / "Pulumi.yaml").is_file():
            return directory
    raise UsageError(f"no Pulumi.yaml in {here} or any directory above it: pass --project-dir DIR")


def stack_names(project_dir: Path) -> list[str]:
    """The stacks with a stack file in the project, `Pulumi.<stack>.yaml`, sorted."""
    names = []
    for path in project_dir.glob("Pulumi.*.y*ml"):
        match = _STACK_FILE_NAME.fullmatch(path.name)
        if match is not None and _STACK_NAME.fullmatch(match["stack"]):
            names.append(match["stack"])
    return sorted(set(names))


def _default_stack(project_dir: Path) -> str:
    names = stack_names(project_dir)
    if len(names) == 1:
        return names[0]
    if not names:
        raise UsageError(f"--stack is required: {project_dir} has no stack file Pulumi.<stack>.yaml")
    raise UsageError(f"--stack is required when a project has several stacks; stacks: {', '.join(names)}")


def _target(args: argparse.Namespace, context: Context) -> Target:
    project_dir = find_project_dir(args.project_dir)
    if not (project_dir / "__main__.py").is_file():
        raise UsageError(f"{project_dir} has no __main__.py, so there is no program to render")
    stack_file = Path(args.stack_file).resolve() if args.stack_file else None
    stack = args.stack
    if stack is None and stack_file is not None:
        match = _STACK_FILE_NAME.fullmatch(stack_file.name)
        if match is None:
            raise UsageError(
                f"--stack-file {args.stack_file}: not named Pulumi.<stack>.yaml, so pass --stack"
            )
        stack = match["stack"]
    if stack is None:
        stack = _default_stack(project_dir)
    if not _STACK_NAME.fullmatch(stack):
        raise UsageError(f"--stack {stack!r}: a stack name has only letters, digits, '-', '_' and '.'")
    if stack_file is None and not (project_dir / f"Pulumi.{stack}.yaml").is_file():
        names = stack_names(project_dir)
        raise UsageError(
            f"--stack {stack}: no stack file Pulumi.{stack}.yaml in {project_dir}; "
            + (f"stacks: {', '.join(names)}" if names else "the project has no stack files")
        )
    shared = tuple(getattr(args, "shared_config", None) or ())
    charts = ChartOptions(
        getattr(args, "charts", "never"),
        bool(getattr(args, "fetch_charts", False)),
        getattr(args, "kube_version", None),
        tuple(getattr(args, "api_versions", None) or ()),
        Path(args.chart_dir).resolve() if getattr(args, "chart_dir", None) else None,
    )
    if charts.chart_dir is not None and not charts.chart_dir.is_dir():
        raise UsageError(f"--chart-dir {args.chart_dir}: not a directory")
    target = Target(project_dir, stack, stack_file, shared + tuple(args.config or ()), charts)
    context.redact.add_stack_file(target.stack_path)
    return target


# What every error about a source that cannot be reached adds: how to work without the network.
OFFLINE_HINT = (
    "to render offline, point the sources at local directories: --config addons.source=DIR "
    "(a directory holding <addon>.yaml, such as istio-<version>/samples/addons) and, for the charts, "
    "--chart-dir DIR (a directory of <chart>-<version>.tgz); istio.chartRepository takes a Helm "
    "repository URL, e.g. http://127.0.0.1:PORT of `python3 -m http.server` in such a directory; "
    "--config gatewayApi.source=DIR (a directory holding <channel>-install.yaml of the stack's Gateway "
    "API release, {version} allowed in DIR), or gatewayApi.enabled=false"
)
_UNREACHABLE = re.compile(
    r"could not download|name or service not known|temporary failure in name resolution|"
    r"connection refused|network is unreachable|timed out|no route to host|urlopen error",
    re.IGNORECASE,
)


def with_offline_hint(message: str) -> str:
    """`message`, plus how to point the sources at local directories when a source was unreachable."""
    if _UNREACHABLE.search(message) and "--config addons.source=DIR" not in message:
        return f"{message}\n{OFFLINE_HINT}"
    return message


def render_here(target: Target, context: Context | None = None) -> dict[str, Any]:
    """The target's plan, rendered in this process."""
    config = load_stack(
        target.project_dir, target.stack, stack_file=target.stack_file, overrides=target.overrides
    )
    for warning in config.warnings:
        (context or Context()).warn(warning)
    # Whatever the program prints must not end up inside a `--json` plan on stdout.
    with contextlib.redirect_stdout(sys.stderr):
        try:
            result = render(target.project_dir, target.stack, config.values, secret_keys=config.secret_keys)
        except Exception as error:
            # The program's own bug (or a config value its validation let through), not meshplan's.
            if os.environ.get("MESHPLAN_DEBUG"):
                raise
            raise UsageError(
                f"{target.label}: the Pulumi program failed: {type(error).__name__}: {error} "
                "(MESHPLAN_DEBUG=1 shows the traceback)"
            ) from None
    if result.error is not None:
        raise UsageError(with_offline_hint(f"{target.label}: {result.error}"))
    plan = result.plan()
    if target.charts.mode == "never":
        return plan
    from meshplan import charts

    def stack_value(key: str) -> Any:
        return config.values.get(f"meshplan:{key}")

    api_versions = target.charts.api_versions or stack_value("apiVersions") or ()
    cluster = charts.ClusterInfo(
        target.charts.kube_version or stack_value("kubeVersion"),
        tuple(str(v) for v in api_versions) if isinstance(api_versions, list | tuple) else (),
    )
    plan = charts.render_plan(
        plan,
        target.project_dir,
        cluster,
        fetch=target.charts.fetch,
        strict=target.charts.mode == "always",
        chart_dir=target.charts.chart_dir,
    )
    for urn, entry in plan["rendered"].items():
        if "error" in entry:
            (context or Context()).warn(
                f"warning: {target.label}: {short_ref(urn)} not rendered: {entry['error']}"
            )
    return plan


def _dump_json(document: Any) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


# --- verbs ---------------------------------------------------------------------------------------


def run_show(args: argparse.Namespace, context: Context) -> tuple[int, str]:
    if args.all is not None:
        from meshplan import fleet

        return fleet.run("show", args, context)
    plan = render_here(_target(args, context), context)
    return EXIT_OK, _dump_json(plan) if args.json else show.format_tree(plan)


def run_graph(args: argparse.Namespace, context: Context) -> tuple[int, str]:
    from meshplan import graph

    plan = render_here(_target(args, context), context)
    return EXIT_OK, graph.dot(plan) if args.format == "dot" else graph.mermaid(plan)


def policy_findings(project_dir: Path, plan: Mapping[str, Any], today: datetime.date) -> list[Any]:
    """The policy rules' findings on a plan (meshplan.checks.Finding), advisory ones marked."""
    # The rules of the project being checked (an installed `meshplan` runs from anywhere), imported
    # here: the other verbs must keep working while the policy package is being changed.
    if str(project_dir) not in sys.path:
        sys.path.insert(0, str(project_dir))
    try:
        from policy.rules import check_plan, is_advisory, plan_context
    except ImportError as error:
        raise UsageError(f"cannot load the policy rules (policy/rules.py): {error}") from None
    from meshplan.checks import Finding

    violations = list(check_plan(plan, today))
    if not violations:
        return []
    # As in the policy pack: some rules only warn off production.
    rule_context = plan_context(plan, today)
    return [Finding(v.rule, is_advisory(v.rule, rule_context), v.urn, v.message) for v in violations]


def run_check(args: argparse.Namespace, context: Context) -> tuple[int, str]:
    if args.all is not None:
        from meshplan import fleet

        return fleet.run("check", args, context)
    target = _target(args, context)
    findings = policy_findings(target.project_dir, render_here(target, context), args.today)
    if not findings:
        return EXIT_OK, "no policy violations\n"
    from meshplan.checks import format_findings

    # Advisory lines say so, and alone they do not fail the check.
    lines = "".join(line + "\n" for line in format_findings(findings))
    return (EXIT_OK if all(f.advisory for f in findings) else EXIT_FOUND), lines


def run_lock_charts(args: argparse.Namespace, context: Context) -> tuple[int, str]:
    from meshplan import charts

    target = _target(args, context)
    plan = render_here(dataclasses.replace(target, charts=ChartOptions("never")), context)
    added = charts.lock_charts(plan, target.project_dir)
    lock = os.environ.get(charts.LOCK_ENV) or target.project_dir / charts.LOCK_NAME
    if not added:
        return EXIT_OK, f"{lock}: every chart of {target.label} is locked already\n"
    lines = "".join(f"  {line}\n" for line in added)
    return EXIT_OK, f"added to {lock} (review each sum against a second source before committing):\n{lines}"


def _against_plans(
    target: Target, against: str, old_overrides: tuple[str, ...], context: Context
) -> tuple[dict[str, Any], dict[str, Any], str]:
    """(old plan, new plan, label of the old side) for `--against`; `old_overrides` are the old side's."""
    from meshplan import diff as plan_diff
    from meshplan.revisions import checkout, render_all

    if against.startswith("git:"):
        rev = against.removeprefix("git:")
        with checkout(target.project_dir, rev) as tree:
            old_target = Target(
                tree.moved(target.project_dir),
                target.stack,
                tree.moved(target.stack_file) if target.stack_file else None,
                old_overrides,
                target.charts,
            )
            context.redact.add_stack_file(old_target.stack_path)
            new, old = render_all([target.request(), old_target.request(against)])
        for side in (new, old):
            context.warn(side.stderr)
        return old.plan, new.plan, f"{against} ({target.label})"
    path = Path(against)
    if path.exists():
        if not path.is_file():
            raise UsageError(f"--against {against}: a directory, not a plan file")
        if set(old_overrides) - set(target.overrides):  # --against-config: a saved plan has no config
            raise UsageError(f"--against-config: --against {against} is a saved plan, which has no config")
        old_plan = plan_diff.load_plan_file(path)
        return old_plan, render_here(target, context), f"plan file {against}"
    stack_file = target.project_dir / f"Pulumi.{against}.yaml"
    if not _STACK_NAME.fullmatch(against) or not stack_file.is_file():
        raise UsageError(
            f"--against {against}: no such plan file, and no stack of that name (no {stack_file}); "
            "expected a stack name, a plan file saved by `show --json`, or git:REV"
        )
    context.redact.add_stack_file(stack_file)
    other = Target(target.project_dir, against, None, old_overrides, target.charts)
    new, old = render_all([target.request(), other.request()])
    for side in (new, old):
        context.warn(side.stderr)
    return old.plan, new.plan, other.label


def run_diff(args: argparse.Namespace, context: Context) -> tuple[int, str]:
    from meshplan import diff as plan_diff

    if args.all is not None:
        from meshplan import fleet

        return fleet.run("diff", args, context)
    target = _target(args, context)
    old_overrides = tuple(args.shared_config or ()) + tuple(args.against_config or ())
    old, new, old_label = _against_plans(target, args.against, old_overrides, context)
    result = plan_diff.diff_plans(old, new)
    if args.json:
        text = plan_diff.format_json(result)
    else:
        text = plan_diff.format_text(result, old_label=old_label, new_label=target.label)
    return (EXIT_FOUND if args.exit_code and result.has_changes else EXIT_OK), text


# --- command line --------------------------------------------------------------------------------


def _date(text: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {text!r}") from None


def _verb(
    verbs: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    common: argparse.ArgumentParser,
    summary: str,
) -> argparse.ArgumentParser:
    return verbs.add_parser(name, parents=[common], help=summary, description=f"{name}: {summary}.")


def _all_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--all",
        nargs="?",
        const="Pulumi.*.yaml",
        metavar="GLOB",
        help="every stack of the project (its Pulumi.*.yaml, or the stack files GLOB matches) in one "
        "process: a summary table, then each stack",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        metavar="N",
        help="with --all: render in N forked workers, the SDK imported once before (default: the CPUs)",
    )


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--stack",
        help="stack name: reads Pulumi.<stack>.yaml of the project; needed only when it has several stacks",
    )
    common.add_argument("--stack-file", metavar="PATH", help="read this stack file instead")
    common.add_argument(
        "--config",
        metavar="KEY=VALUE",
        action="append",
        help="override one config value (dotted key, YAML value; a *version stays text); repeatable. "
        "In diff: the new side only",
    )
    common.add_argument(
        "--charts",
        choices=("auto", "always", "never"),
        default="auto",
        help="render each Helm Release with its real chart: where the chart is at hand (auto, the "
        "default), every Release or fail (always), or not at all (never)",
    )
    common.add_argument(
        "--fetch-charts",
        action="store_true",
        help="download charts missing from the cache (each verified against charts.lock)",
    )
    common.add_argument(
        "--chart-dir",
        metavar="DIR",
        help="render charts from this directory of <chart>-<version>.tgz (a local mirror of the "
        "stack's chart repository), offline",
    )
    common.add_argument(
        "--kube-version", metavar="X.Y.Z", help="helm template --kube-version (default: meshplan:kubeVersion)"
    )
    common.add_argument(
        "--api-versions",
        metavar="GROUP/VERSION",
        action="append",
        help="helm template --api-versions, repeatable (default: meshplan:apiVersions)",
    )
    common.add_argument(
        "--project-dir",
        metavar="DIR",
        help="the Pulumi project (default: the nearest directory from here up with a Pulumi.yaml)",
    )

    parser = argparse.ArgumentParser(
        prog="meshplan",
        description="Preview, diff and draw a stack's graph offline, from its code and config.",
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    show_parser = _verb(verbs, "show", common, "the desired graph as a tree")
    show_parser.add_argument("--json", action="store_true", help="the whole plan as JSON")
    _all_option(show_parser)
    show_parser.set_defaults(run=run_show)

    diff_parser = _verb(verbs, "diff", common, "what would change, against REF")
    diff_parser.add_argument(
        "--against",
        required=True,
        metavar="REF",
        help="a stack name, a plan file from `show --json`, or git:REV",
    )
    diff_parser.add_argument(
        "--against-config",
        metavar="KEY=VALUE",
        action="append",
        help="override one config value of the old side (a stack or git:REV) only; repeatable",
    )
    diff_parser.add_argument(
        "--shared-config",
        metavar="KEY=VALUE",
        action="append",
        help="override one config value on both sides, e.g. addons.source=DIR; repeatable",
    )
    diff_parser.add_argument("--json", action="store_true", help="the changes as JSON")
    diff_parser.add_argument("--exit-code", action="store_true", help="exit 1 when anything would change")
    _all_option(diff_parser)
    diff_parser.set_defaults(run=run_diff)

    graph_parser = _verb(verbs, "graph", common, "the dependency graph")
    graph_parser.add_argument("--format", choices=("mermaid", "dot"), default="mermaid")
    graph_parser.set_defaults(run=run_graph)

    lock_parser = _verb(
        verbs, "lock-charts", common, "download the stack's charts and add their sha256 to charts.lock"
    )
    lock_parser.set_defaults(run=run_lock_charts)

    check_parser = _verb(verbs, "check", common, "the policy rules, offline")
    check_parser.add_argument(
        "--today", type=_date, default=datetime.date.today(), metavar="YYYY-MM-DD", help="date the rules see"
    )
    _all_option(check_parser)
    check_parser.set_defaults(run=run_check)
    return parser


Verb = Callable[[argparse.Namespace, Context], tuple[int, str]]


def _error(context: Context, message: str) -> None:
    sys.stderr.write(context.redact(f"meshplan: error: {message}\n"))


def main(argv: Sequence[str] | None = None) -> int:
    context = Context()
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # --help (0) or a usage error, already printed (2)
        return stop.code if isinstance(stop.code, int) else EXIT_ERROR
    run: Verb = args.run
    try:
        code, output = run(args, context)
    except UserError as error:
        _error(context, str(error))
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        if os.environ.get("MESHPLAN_DEBUG"):
            raise
        _error(context, f"internal error: {type(error).__name__}: {error} (MESHPLAN_DEBUG=1 shows where)")
        return EXIT_ERROR
    sys.stdout.write(context.redact(output))
    return code


def run() -> None:
    """The `meshplan` command (and `python -m meshplan`): main(), then exit without teardown."""
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:
        # `meshplan show | head`: the reader left; point stdout at /dev/null so the final flush is quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
    sys.stderr.flush()
    # Skip interpreter teardown: freeing the ~100 000 objects the SDK's modules leave on the heap
    # takes about 100 ms (bench/preview.py) and produces nothing, and collecting asyncio loops the
    # SDK leaves open could print an "Exception ignored ... Invalid file descriptor" trace after a
    # clean run.
    os._exit(code)
