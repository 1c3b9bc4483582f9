"""Mutation testing: change the program one small way at a time and count the changes a test notices.

Usage (`make mutate`, `make mutate MODULE=components/revision_tags.py`):

    python hack/mutate.py [MODULE ...] [--list] [--timeout SECONDS] [--limit N] [--verbose]

For each module (by default every one in COVERING_TESTS), the script

1. copies the checkout (without .git, .venv and caches) to a scratch directory, next to a link to
   `../shared`, so mutants never touch the working tree other people run tests in;
2. runs the module's covering tests there unmutated; tests that already fail are deselected (and
   named), since a failing test would "kill" every mutant;
3. enumerates the mutants of the module from its syntax tree, in source order (deterministic: the
   same source gives the same mutants, numbered the same way), and runs the covering tests against
   each with `pytest -x`: a mutant is killed when a test fails or the run times out;
4. prints the survivors (line, what changed) and a table per module: mutants, killed, killed %.

Mutation operators: comparisons flipped (`==`/`!=`, `<`/`>=`, `>`/`<=`, `in`/`not in`, `is`/`is not`),
`and`/`or` swapped, constants changed (strings emptied or filled, numbers +1, booleans negated,
`None` made a value), conditions negated (`if`, `while`, conditional expressions, comprehension
filters), statements deleted (replaced by `pass`), and `return <value>` made `return None`.
Docstrings, annotations and imports are not mutated: changing them says nothing about behaviour.

Each test run is a child forked from a runner that has imported pytest, pulumi and the other
third-party modules once (the project's own modules are imported by the child, from the scratch
copy). Mutated source is compiled from `ast.unparse` and no bytecode is written, so no stale .pyc
can stand in for a mutant. Survivors that are equivalent (no test could tell them apart, because the
behaviour is the same) are listed in EQUIVALENT with the reason; the table counts them separately.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import copy
import importlib
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

# The tests that exercise each module, fastest and most specific first (runs stop at the first
# failure, so a killing test early keeps the run short).
COVERING_TESTS: dict[str, list[str]] = {
    "components/revision_tags.py": [
        "tests/test_revision_tags.py",
        "tests/test_oracle_charts.py::test_tag_webhook_equals_the_istiod_charts",
        "tests/test_revisions.py",
    ],
    "components/values.py": [
        "tests/test_values.py",
        "tests/test_ambient.py",
        "tests/test_ambient_example.py",
        "tests/test_graph.py",
        "tests/test_revisions.py",
        "tests/test_oracle_charts.py",
    ],
    "components/injection.py": [
        "tests/test_ambient.py",
        "tests/test_outputs.py",
        "tests/test_graph.py",
        "tests/test_revisions.py",
        "tests/test_mtls.py",
    ],
    "components/control_plane.py": [
        "tests/test_control_plane.py",
        "tests/test_ambient.py",
        "tests/test_ambient_example.py",
        "tests/test_outputs.py",
        "tests/test_graph.py",
        "tests/test_revisions.py",
        "tests/test_cli_lines.py",
        "tests/test_tag_ca_bundle.py",
        "tests/test_release_recovery.py",
        "tests/test_cluster_claim.py",
        "tests/test_mtls.py",
    ],
    "components/release_recovery.py": ["tests/test_release_recovery.py"],
    "components/cluster_claim.py": ["tests/test_cluster_claim.py"],
    "components/adoption.py": ["tests/test_adoption.py"],
    "components/gateway_api_source.py": ["tests/test_gateway_api_source.py", "tests/test_gateway_api.py"],
    "components/gateway_api.py": ["tests/test_gateway_api.py", "tests/test_ambient_example.py"],
    "components/gateway_api_versions.py": [
        "tests/test_ambient_config.py",
        "tests/test_gateway_api_source.py",
        "tests/test_config.py",
        "tests/test_gateway_api.py",
        "tests/test_policy_kinds.py",
        "tests/test_policy_cases.py",
        "tests/test_policy.py",
    ],
    "meshplan/provider_check.py": ["tests/test_provider_check.py", "tests/test_graph.py"],
    "components/dashboards.py": ["tests/test_graph.py", "tests/test_hardening.py", "tests/test_config.py"],
    "components/config.py": [
        "tests/test_ambient_config.py",
        "tests/test_config.py",
        "tests/test_graph.py",
        "tests/test_revisions.py",
    ],
    "policy/rules.py": [
        "tests/test_policy_cases.py",
        "tests/test_policy_kinds.py",
        "tests/test_policy.py",
        "tests/test_istio_releases.py",
    ],
    "policy/istio_releases.py": [
        "tests/test_istio_releases.py",
        "tests/test_policy.py",
        "tests/test_policy_cases.py",
    ],
    "meshplan/diff.py": ["tests/test_diff_text.py", "tests/test_diff_plans.py", "tests/test_meshplan.py"],
}

# Survivors no test can kill because the program behaves the same, keyed by module and by
# `equivalence_key` (printed with each survivor), with the reason. They are reported, and counted
# apart from the killed.
_UNUSED_OPTS = "the default of `opts` is never used: the program passes opts to every resource it makes"
_NARROWING = "the assert only narrows the type for pyright: config validation guarantees it (test_config.py)"
_UNREAD = (
    "an attribute kept for callers that nothing in the program reads; the resource is registered either way"
)
_NO_REPLACES = (
    "delete_before_replace says how to replace; with `replaces` always empty, nothing is ever replaced"
)
_NO_SUCH_OWNER = (
    "the default is only compared with a claim's owner, which is always <project>/<stack> (with a "
    "slash), never the text 'mutant'"
)
_NOT_PENDING = "an empty history's status: None and 'mutant' are both not pending, so nothing is recovered"
_NO_FLOATS = "no built-in Kubernetes type has a float field (meshplan/kube_types.json has none)"
_DECIMAL_IS_THE_REST = (
    "a quantity's form is binary, exponent, or else decimal: any other text prints as decimal"
)
_FALSY = "the last `return False` of a predicate: None, which deleting it returns, is as false"
_BOOL_IS_NO_QUANTITY = "a bool is no quantity either way: as True or as 'True' it matches no quantity"
_BEYOND_INT64 = "amounts beyond an int64 (which apimachinery clamps) are not modelled"
_PRECISION = "60 digits or 61: both hold exa with nano precision, and nothing larger is modelled"
_DEBUG_REPR = "MISSING's repr is for debugging only: show_value prints (none) for MISSING itself"
_UNREAD_STRATEGY = (
    "the strategy returned with a reason it cannot be read: the Kiali rule reports the reason and never "
    "reads that strategy"
)
_UNREAD_FIRST_RELEASE = (
    "nothing reads the first release of 1.20 or 1.21 but the table's order (which a changed year breaks): "
    "an end of support reads minor N+2's, and 1.18 and 1.19 are older than the table"
)
_EVERY_MINIMUM_A_RELEASE = (
    "the fallback key of a text that is no release: every minimum in the table is one (v1.0.0 to v1.6.0), "
    "so the fallback is never taken"
)
_ALWAYS_PASSED = (
    "a default that is never used: the only maker of an Injection (components/mesh.py) passes mtls, "
    "node_agents and gateway_api, None where there are none"
)
_TYPE_ONLY_IMPORT = (
    "an import only annotations name, and `from __future__ import annotations` never evaluates them: "
    "imported at run time too (components.config does not import this module) or not at all, it is the same"
)
EQUIVALENT: dict[str, dict[str, str]] = {
    "components/gateway_api_versions.py": {
        "return max((BASE_MINIMUM, *self.minimums.values()), key=lambda v: parse_release(v) or (0, 0, 0)) :: "
        "0  ->  1": _EVERY_MINIMUM_A_RELEASE,
    },
    "components/gateway_api.py": {
        "return pulumi.dynamic.DiffResult(changes=changed, replaces=[], delete_before_replace=False) :: "
        "False  ->  True": _NO_REPLACES,
        "opts: pulumi.ResourceOptions | None = None, :: None  ->  'mutant'": _UNUSED_OPTS,
        'if str(parsed.get("kind", "")).endswith("List") :: \'\'  ->  \'mutant\'': (
            "the default kind of what kubectl prints, which always has one; without one, neither '' nor "
            "'mutant' ends in List, so it is read as one object either way"
        ),
        "return parse_release(text) or (0, 0, 0) :: 0  ->  1": (
            "the fallback key of a text that is no release: `_bundle_key` only keys the stack's "
            "gatewayApi.version, which config validation holds to a release tag (test_gateway_api.py)"
        ),
    },
    "components/gateway_api_source.py": {
        "{v for (v, a) in checksums if a == artifact}, key=lambda v: parse_release(v) or (0, 0, 0) :: 0  ->  1": (
            "the fallback key of a locked version that is no release: the program's sums are gateway-api.lock's, "
            "and `read_lock` refuses a line whose version is no release tag, so the fallback is never taken"
        ),
        "return None :: delete: return None": (
            "`_lock_line_problem` returns None without its last statement; deleting the other `return None`s "
            "(a CRD or a policy that passes `_object_problem`) reports them, and those die"
        ),
        "if TYPE_CHECKING: :: if TYPE_CHECKING  ->  not (...)": _TYPE_ONLY_IMPORT,
        "if TYPE_CHECKING: :: delete: if TYPE_CHECKING:     from components.config import Gatew...": (
            _TYPE_ONLY_IMPORT
        ),
    },
    "policy/istio_releases.py": {
        '"1.20": date(2023, 11, 13), :: 11  ->  12': _UNREAD_FIRST_RELEASE,
        '"1.20": date(2023, 11, 13), :: 13  ->  14': _UNREAD_FIRST_RELEASE,
        '"1.21": date(2024, 3, 12), :: 3  ->  4': _UNREAD_FIRST_RELEASE,
        '"1.21": date(2024, 3, 12), :: 12  ->  13': _UNREAD_FIRST_RELEASE,
        "Minor = tuple[int, int] :: delete: Minor = tuple[int, int]": (
            "a type alias that only annotations name, and `from __future__ import annotations` never evaluates them"
        ),
        "@dataclass(frozen=True) :: True  ->  False": (
            "nothing assigns to a SupportStatus or hashes one: frozen only guards against a mistake"
        ),
        "return None :: delete: return None": (
            "`unknown_reason` returns None without its last statement; its other `return None` (a minor "
            "older than the table) dies without it"
        ),
    },
    "policy/rules.py": {
        "@dataclass(frozen=True) :: True  ->  False": (
            "nothing assigns to a Violation, RuleContext or Rule, or hashes one (meshplan check copies each "
            "violation into its own Finding): frozen only guards against a mistake"
        ),
        "RuleCheck = Callable[[Resources, RuleContext], list[Violation]] :: "
        "delete: RuleCheck = Callable[[Resources, RuleContext], list[Viola...": (
            "a type alias that only annotations name, and `from __future__ import annotations` never evaluates them"
        ),
        "DEFAULT_SERVICE_TYPE = \"ClusterIP\" :: 'ClusterIP'  ->  ''": (
            "the default type is only compared with NodePort and LoadBalancer, never shown: '' is not exposed either"
        ),
        'return chart.rstrip("/").rsplit("/", 1)[-1] :: 1  ->  2': (
            "rsplit from the right gives the same last part whatever its maxsplit"
        ),
        'return str(resource.get("name") or _urn(resource).rsplit("::", 1)[-1]) :: 1  ->  2': (
            "rsplit from the right gives the same last part whatever its maxsplit"
        ),
        "type_ = str(resource.get(\"type\") or \"\") :: ''  ->  'mutant'": (
            "a resource without a type is skipped either way: neither '' nor 'mutant' starts with kubernetes:"
        ),
        "KIALI_DEFAULT_STRATEGY = \"token\" :: 'token'  ->  ''": (
            "Kiali's default strategy is only compared with anonymous, never shown: '' is not anonymous either"
        ),
        "return None, \"config.yaml is not visible in the plan\" :: None  ->  'mutant'": _UNREAD_STRATEGY,
        "return None, \"config.yaml is not text\" :: None  ->  'mutant'": _UNREAD_STRATEGY,
        "return None, f\"config.yaml is not YAML: {str(error).splitlines()[0]}\" :: None  ->  'mutant'": _UNREAD_STRATEGY,
        "return None, \"config.yaml is not a mapping\" :: None  ->  'mutant'": _UNREAD_STRATEGY,
        "return None, \"auth is not a mapping\" :: None  ->  'mutant'": _UNREAD_STRATEGY,
        "return None, f\"auth.strategy is {_show(strategy)}\" :: None  ->  'mutant'": _UNREAD_STRATEGY,
        "return None :: delete: return None": (
            "where `return None` is a function's last statement (`_as_int`, `_program_index`), the function "
            "returns None without it; deleting the others changes what the rules report, and those die"
        ),
    },
    "meshplan/diff.py": {
        "return \"(none)\" :: return '(none)'  ->  return None": _DEBUG_REPR,
        "return \"(none)\" :: delete: return '(none)'": _DEBUG_REPR,
        "return \"(none)\" :: '(none)'  ->  ''": _DEBUG_REPR,
        "return json.dumps(old, sort_keys=True) == json.dumps(new, sort_keys=True) :: True  ->  False": (
            "_same_scalar compares leaves and option values: two mappings never reach it (changed_paths "
            "recurses into them), so the order of keys in its JSON never matters"
        ),
        "rendered: bool = False  # whether either plan had rendered releases :: "
        "delete: rendered: bool = False": (
            "diff_plans, the only maker of a PlanDiff, always sets `rendered` (diff_rendered) before "
            "anything reads it"
        ),
        "@dataclass(frozen=True) :: True  ->  False": (
            "nothing assigns to these records (Change, ResourceDiff, ObjectDiff) or hashes them: frozen "
            "only guards against a mistake"
        ),
    },
    "components/control_plane.py": {
        "opts: pulumi.ResourceOptions | None = None, :: None  ->  'mutant'": _UNUSED_OPTS,
        "assert revision is not None  # validated: revisions always have a default :: "
        "delete: assert revision is not None": _NARROWING,
        "assert revision is not None  # validated: revisions always have a default :: None  ->  'mutant'": (
            _NARROWING
        ),
    },
    "meshplan/provider_check.py": {
        "if spec in (\"int\", \"float\"): :: 'float'  ->  ''": _NO_FLOATS,
        "amount, form = number.scaleb(exponent), \"decimal\" :: 'decimal'  ->  ''": _DECIMAL_IS_THE_REST,
        'form = "decimal"  # small or fractional binary amounts print as decimal, without rounding :: '
        "'decimal'  ->  ''": _DECIMAL_IS_THE_REST,
        "return False :: delete: return False": _FALSY,
        "return False :: return False  ->  return None": _FALSY,
        "text = str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value :: "
        "isinstance(value, int | float) and (not isinstance(value,...  ->  or": _BOOL_IS_NO_QUANTITY,
        "_INT64_MAX = 2**63 - 1 :: 63  ->  64": _BEYOND_INT64,
        "scale >= -9 :: 9  ->  10": "between -9 and -10 lies only -10, no multiple of 3, so nothing more is kept",
        "while exponent > 18:  # no suffix above E: the mantissa grows instead :: delete: while exponent > 18:     "
        "mantissa, exponent = (mantissa *...": _BEYOND_INT64,
        "mantissa, exponent = mantissa * 1000, exponent - 3 :: delete: mantissa, exponent = (mantissa * 1000, "
        "exponent - 3)": _BEYOND_INT64,
        "with localcontext(prec=60):  # exa with nano precision needs more than the default 28 digits :: "
        "60  ->  61": _PRECISION,
    },
    "components/cluster_claim.py": {
        "return pulumi.dynamic.DiffResult(changes=changed, replaces=[], delete_before_replace=False) :: "
        "False  ->  True": _NO_REPLACES,
        "def _write(props: dict[str, Any], previous: str | None = None) -> None: :: None  ->  'mutant'": (
            _NO_SUCH_OWNER
        ),
        "self, name: str, *, owner: str, cluster: ClusterConfig, opts: pulumi.ResourceOptions | None = None :: "
        "None  ->  'mutant'": _UNUSED_OPTS,
    },
    "components/release_recovery.py": {
        "return pulumi.dynamic.DiffResult(changes=changed, replaces=[], delete_before_replace=False) :: "
        "False  ->  True": _NO_REPLACES,
        "status = revisions[-1].get(\"status\") if revisions else None :: None  ->  'mutant'": _NOT_PENDING,
        "opts: pulumi.ResourceOptions | None = None, :: None  ->  'mutant'": _UNUSED_OPTS,
    },
    "components/injection.py": {
        "manifest = shlex.quote(json.dumps(policy, sort_keys=True)) :: True  ->  False": (
            "the PeerAuthentication is written with its keys in sorted order already (apiVersion, kind, "
            "metadata, spec; name, namespace), so sorting them changes nothing"
        ),
        "gateway_api: pulumi.Resource | None = None, :: None  ->  'mutant'": _ALWAYS_PASSED,
        "node_agents: pulumi.Resource | None = None, :: None  ->  'mutant'": _ALWAYS_PASSED,
        "mtls: str | None = None, :: None  ->  'mutant'": _ALWAYS_PASSED,
        "opts: pulumi.ResourceOptions | None = None, :: None  ->  'mutant'": _UNUSED_OPTS,
        "self.uninjects.append(uninject) :: delete: self.uninjects.append(uninject)": _UNREAD,
        "assert revision is not None  # validated: revisions always have a default revision :: "
        "delete: assert revision is not None": _NARROWING,
        "assert revision is not None  # validated: revisions always have a default revision :: "
        "None  ->  'mutant'": _NARROWING,
    },
}

COPY_IGNORE = shutil.ignore_patterns(
    ".git", ".venv", "__pycache__", ".pytest_cache", ".ruff_cache", ".pulumi-state", "node_modules", "*.pyc"
)

FLIPPED_COMPARISONS: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Lt: ast.GtE,
    ast.GtE: ast.Lt,
    ast.Gt: ast.LtE,
    ast.LtE: ast.Gt,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}


@dataclass(frozen=True)
class Mutant:
    """One change to a module: where, what, and how to apply it to a fresh copy of the tree."""

    number: int
    line: int
    description: str
    apply: Callable[[ast.Module], None]


def _skipped_nodes(tree: ast.Module) -> set[int]:
    """ids of nodes never mutated: docstrings, annotations, imports and everything under them."""
    skipped: set[int] = set()

    def skip(node: ast.AST | None) -> None:
        if node is not None:
            skipped.update(id(n) for n in ast.walk(node))

    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                skip(body[0])
        if isinstance(node, ast.Import | ast.ImportFrom):
            skip(node)
        if isinstance(node, ast.AnnAssign):
            skip(node.annotation)
        if isinstance(node, ast.arg):
            skip(node.annotation)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            skip(node.returns)
    return skipped


def _locate(tree: ast.Module, path: tuple[tuple[str, int | None], ...]) -> ast.AST:
    node: ast.AST = tree
    for field, index in path:
        value = getattr(node, field)
        node = value[index] if index is not None else value
    return node


def _paths(tree: ast.Module) -> Iterator[tuple[ast.AST, tuple[tuple[str, int | None], ...]]]:
    """Every node with the field path that finds it again in a deep copy, in source order."""
    stack: list[tuple[ast.AST, tuple[tuple[str, int | None], ...]]] = [(tree, ())]
    found: list[tuple[ast.AST, tuple[tuple[str, int | None], ...]]] = []
    while stack:
        node, path = stack.pop()
        found.append((node, path))
        for field, value in ast.iter_fields(node):
            if isinstance(value, list):
                for index, item in enumerate(value):
                    if isinstance(item, ast.AST):
                        stack.append((item, (*path, (field, index))))
            elif isinstance(value, ast.AST):
                stack.append((value, (*path, (field, None))))

    def order(entry: tuple[ast.AST, tuple[tuple[str, int | None], ...]]) -> tuple[int, int, str]:
        node, path = entry
        return (getattr(node, "lineno", 0), getattr(node, "col_offset", 0), repr(path))

    yield from sorted(found, key=order)


def _short(node: ast.AST) -> str:
    text = ast.unparse(node).replace("\n", " ")
    return text if len(text) <= 60 else text[:57] + "..."


def mutants(source: str) -> list[Mutant]:
    """The module's mutants, numbered in source order."""
    tree = ast.parse(source)
    skipped = _skipped_nodes(tree)
    found: list[tuple[int, str, Callable[[ast.Module], None]]] = []

    def add(line: int, description: str, change: Callable[[ast.AST], None], path: tuple) -> None:
        found.append((line, description, lambda copy_: change(_locate(copy_, path))))

    for node, path in _paths(tree):
        if id(node) in skipped:
            continue
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Compare):
            for index, op in enumerate(node.ops):
                flipped = FLIPPED_COMPARISONS.get(type(op))
                if flipped is None:
                    continue

                def flip(n: ast.AST, index: int = index, flipped: type[ast.cmpop] = flipped) -> None:
                    assert isinstance(n, ast.Compare)
                    n.ops[index] = flipped()

                mutated = copy.deepcopy(node)
                mutated.ops[index] = flipped()
                add(line, f"{_short(node)}  ->  {_short(mutated)}", flip, path)
        elif isinstance(node, ast.BoolOp):
            other = ast.Or if isinstance(node.op, ast.And) else ast.And

            def swap(n: ast.AST, other: type[ast.boolop] = other) -> None:
                assert isinstance(n, ast.BoolOp)
                n.op = other()

            add(line, f"{_short(node)}  ->  {'or' if other is ast.Or else 'and'}", swap, path)
        elif isinstance(node, ast.Constant):
            replacement = _changed_constant(node.value)
            if replacement is _NO_CHANGE:
                continue

            def change(n: ast.AST, replacement: Any = replacement) -> None:
                assert isinstance(n, ast.Constant)
                n.value = replacement

            add(line, f"{node.value!r}  ->  {replacement!r}", change, path)
        elif isinstance(node, ast.If | ast.While | ast.IfExp):

            def negate(n: ast.AST) -> None:
                assert isinstance(n, ast.If | ast.While | ast.IfExp)
                n.test = ast.UnaryOp(op=ast.Not(), operand=n.test)

            add(line, f"{type(node).__name__.lower()} {_short(node.test)}  ->  not (...)", negate, path)
        elif isinstance(node, ast.comprehension):
            for index, condition in enumerate(node.ifs):

                def negate_filter(n: ast.AST, index: int = index) -> None:
                    assert isinstance(n, ast.comprehension)
                    n.ifs[index] = ast.UnaryOp(op=ast.Not(), operand=n.ifs[index])

                add(
                    getattr(condition, "lineno", line),
                    f"filter {_short(condition)}  ->  not (...)",
                    negate_filter,
                    path,
                )
        if (
            isinstance(node, ast.Return)
            and node.value is not None
            and not (isinstance(node.value, ast.Constant) and node.value.value is None)
        ):

            def return_none(n: ast.AST) -> None:
                assert isinstance(n, ast.Return)
                n.value = ast.Constant(value=None)

            add(line, f"return {_short(node.value)}  ->  return None", return_none, path)
        if isinstance(node, ast.stmt) and not isinstance(
            node,
            ast.Pass | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Import | ast.ImportFrom,
        ):
            parent_path, (field, index) = path[:-1], path[-1]
            if index is None:
                continue

            def delete(n: ast.AST, field: str = field, index: int = index) -> None:
                getattr(n, field)[index] = ast.Pass()

            found.append(
                (
                    line,
                    f"delete: {_short(node)}",
                    lambda copy_, parent_path=parent_path, delete=delete: delete(_locate(copy_, parent_path)),
                )
            )
    return [
        Mutant(number, line, description, apply) for number, (line, description, apply) in enumerate(found, 1)
    ]


_NO_CHANGE = object()


def _changed_constant(value: object) -> object:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1
    if isinstance(value, str):
        return "" if value else "mutant"
    if value is None:
        return "mutant"
    return _NO_CHANGE


def equivalence_key(source: str, mutant: Mutant) -> str:
    """How EQUIVALENT names a mutant: its source line, stripped, and what changes; not the line number,
    which moves whenever code above it changes."""
    return f"{source.splitlines()[mutant.line - 1].strip()} :: {mutant.description}"


def mutated_source(source: str, mutant: Mutant) -> str:
    tree = ast.parse(source)
    mutant.apply(tree)
    return ast.unparse(ast.fix_missing_locations(tree))


# --- running ---------------------------------------------------------------------------------------


def scratch_copy() -> Path:
    """A copy of the checkout, placed so that its `../shared` is the real one."""
    base = Path(tempfile.mkdtemp(prefix="istio-mesh-mutate-"))
    shared = ROOT.parent / "shared"
    if shared.exists():
        (base / "shared").symlink_to(shared)
    target = base / ROOT.name
    shutil.copytree(ROOT, target, ignore=COPY_IGNORE, symlinks=True)
    return target


# Imported once by the runner and shared by every forked test run: they take most of a run's start-up.
PRELOAD = (
    "pytest",
    "yaml",
    "grpc",
    "google.protobuf",
    "pulumi",
    "pulumi.runtime",
    "pulumi_kubernetes",
    "jsonschema",
)


def preload() -> None:
    """Import the third-party modules the tests use; never the project's own, which forked runs import
    from the scratch copy, mutated."""
    for name in PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


def run_tests(
    tree: Path, tests: list[str], deselect: list[str], timeout: float, *, first_failure: bool
) -> tuple[str, str]:
    """("passed" | "failed" | "timeout", output) of pytest over `tests` in `tree`, in a forked child.

    The child runs in its own process group, so a timeout ends it with everything it started.
    """
    import pytest

    argv = ["-q", "-p", "no:cacheprovider", *tests]
    argv += [arg for nodeid in deselect for arg in ("--deselect", nodeid)]
    argv += ["-x"] if first_failure else ["-rf"]
    with tempfile.TemporaryFile(mode="w+") as output:
        pid = os.fork()
        if pid == 0:  # the child: run pytest in the scratch tree and leave without cleanup
            code = 3
            try:
                os.setpgid(0, 0)
                os.dup2(output.fileno(), 1)
                os.dup2(output.fileno(), 2)
                os.chdir(tree)
                # The checkout itself (and this script's folder) must not shadow the scratch copy.
                shadowing = {str(ROOT), str(ROOT / "hack"), "", "."}
                sys.path[:] = [str(tree), *(p for p in sys.path if p not in shadowing)]
                sys.dont_write_bytecode = True
                os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
                code = int(pytest.main(argv))
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        deadline = time.monotonic() + timeout
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.killpg(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return "timeout", ""
            time.sleep(0.05)
        output.seek(0)
        text = output.read()
    return ("passed" if os.waitstatus_to_exitcode(status) == 0 else "failed"), text


def baseline_failures(output: str) -> list[str]:
    return sorted(set(re.findall(r"^FAILED (\S+?)(?: - .*)?$", output, flags=re.MULTILINE)))


@dataclass
class Outcome:
    module: str
    total: int = 0
    killed: int = 0
    equivalent: int = 0
    not_run: int = 0

    @property
    def percent(self) -> float:
        scored = self.total - self.equivalent - self.not_run
        return 100.0 * self.killed / scored if scored else 100.0


def mutate_module(
    module: str, *, timeout: float, limit: int | None, sample: int, only: set[int], verbose: bool
) -> Outcome:
    tests = COVERING_TESTS.get(module)
    if tests is None:
        raise SystemExit(f"{module}: no covering tests listed in COVERING_TESTS (hack/mutate.py)")
    tests = [t for t in tests if (ROOT / t.split("::")[0]).exists()]
    tree = scratch_copy()
    preload()
    try:
        status, output = run_tests(tree, tests, [], timeout * 3, first_failure=False)
        deselect = baseline_failures(output) if status == "failed" else []
        if status == "failed" and not deselect:
            raise SystemExit(
                f"{module}: the unmutated tests fail and no failing test could be named:\n{output[-3000:]}"
            )
        for nodeid in deselect:
            print(f"  {module}: deselected, already failing unmutated: {nodeid}", flush=True)
        source = (ROOT / module).read_text()
        found = mutants(source)
        outcome = Outcome(module, total=len(found))
        equivalent = EQUIVALENT.get(module, {})
        started = time.monotonic()
        for mutant in found:
            skipped = (limit is not None and mutant.number > limit) or (mutant.number - 1) % sample
            if skipped or (only and mutant.number not in only):
                outcome.not_run += 1
                continue
            (tree / module).write_text(mutated_source(source, mutant))
            # One covering test file at a time, stopping at the first that fails: most mutants die in
            # the first, and collecting the others (their imports, their module-level graphs) is skipped.
            for group in tests:
                status, _ = run_tests(tree, [group], deselect, timeout, first_failure=True)
                if status != "passed":
                    break
            if status != "passed":
                outcome.killed += 1
                if verbose:
                    print(
                        f"  {status:8} #{mutant.number} {module}:{mutant.line} {mutant.description}",
                        flush=True,
                    )
            elif (key := equivalence_key(source, mutant)) in equivalent:
                outcome.equivalent += 1
                print(
                    f"  equivalent #{mutant.number} {module}:{mutant.line} {mutant.description}", flush=True
                )
                print(f"             ({equivalent[key]})", flush=True)
            else:
                print(f"  SURVIVED #{mutant.number} {module}:{mutant.line} {mutant.description}", flush=True)
                print(f"             key: {key!r}", flush=True)
        elapsed = time.monotonic() - started
        print(f"  {module}: {len(found)} mutants in {elapsed:.0f} s", flush=True)
        return outcome
    finally:
        shutil.rmtree(tree.parent, ignore_errors=True)


def table(outcomes: list[Outcome]) -> str:
    rows = ["| module | mutants | killed | equivalent | killed % |", "|---|---|---|---|---|"]
    for o in outcomes:
        extra = f" ({o.not_run} not run)" if o.not_run else ""
        rows.append(f"| {o.module} | {o.total}{extra} | {o.killed} | {o.equivalent} | {o.percent:.0f} % |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help="modules to mutate (default: every one in COVERING_TESTS)")
    parser.add_argument("--list", action="store_true", help="print the mutants and exit, running nothing")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per mutant run (a timeout kills)")
    parser.add_argument("--limit", type=int, help="run only the first N mutants of each module")
    parser.add_argument(
        "--only",
        type=lambda v: {int(n) for n in v.split(",")},
        default=set(),
        help="run these mutants: 31,34",
    )
    parser.add_argument(
        "--sample",
        type=int,
        default=1,
        help="run every Nth mutant (1st, N+1th, ...): a bounded, repeatable estimate",
    )
    parser.add_argument("--verbose", action="store_true", help="print killed mutants too")
    args = parser.parse_args(argv)
    modules = args.modules or list(COVERING_TESTS)
    if args.list:
        for module in modules:
            for mutant in mutants((ROOT / module).read_text()):
                print(f"{module} #{mutant.number} {mutant.line}: {mutant.description}")
                print(f"    key: {equivalence_key((ROOT / module).read_text(), mutant)!r}")
        return 0
    outcomes = []
    for module in modules:
        print(f"== {module}", flush=True)
        outcomes.append(
            mutate_module(
                module,
                timeout=args.timeout,
                limit=args.limit,
                sample=args.sample,
                only=args.only,
                verbose=args.verbose,
            )
        )
    print(table(outcomes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
