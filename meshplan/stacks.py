"""A stack's config as the Pulumi CLI would hand it to the program, read from the stack files."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from meshplan import UserError
from meshplan.engine import PROJECT, SECRET

# libyaml when available, as for the addon manifests: the same plain objects, parsed in C.
YAML_LOADER: type[yaml.SafeLoader | yaml.CSafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class StackConfigError(UserError):
    """A stack file or a --config override that cannot be read; the message says which and why."""


@dataclass(frozen=True)
class StackConfig:
    """A stack's config as Pulumi would pass it to the program, with the keys that are secret."""

    stack: str
    values: Mapping[str, Any]  # namespaced keys, e.g. "istio-mesh:istio"
    secret_keys: tuple[str, ...]
    warnings: tuple[str, ...] = field(default=())  # things the program ignores that look like mistakes


def _namespaced(key: str) -> str:
    return key if ":" in key else f"{PROJECT}:{key}"


def project_defaults(project_dir: Path) -> dict[str, Any]:
    """`default:` values of the config keys declared in Pulumi.yaml."""
    project = _read_yaml(project_dir / "Pulumi.yaml")
    declared = project.get("config") or {}
    return {
        _namespaced(key): spec["default"]
        for key, spec in declared.items()
        if isinstance(spec, Mapping) and "default" in spec
    }


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise StackConfigError(f"cannot read {path}: {error.strerror}") from None
    try:
        data = yaml.load(text, Loader=YAML_LOADER)
    except yaml.YAMLError as error:
        raise StackConfigError(f"{path} is not valid YAML: {yaml_error_text(error, str(path))}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise StackConfigError(f"{path}: expected a mapping at the top level")
    return data


def yaml_error_text(error: yaml.YAMLError, source: str) -> str:
    """PyYAML's message with the file (or `--config` value) it came from, not `"<unicode string>"`.

    Parsing text rather than a file object names the input `<unicode string>` in every mark.
    """
    for attribute in ("context_mark", "problem_mark"):
        mark = getattr(error, attribute, None)
        if mark is not None:
            # libyaml's marks are read-only: a pure-Python one with the same place, without the
            # quoted snippet of the line (which could be a secret's ciphertext).
            setattr(error, attribute, yaml.error.Mark(source, mark.index, mark.line, mark.column, None, 0))
    return str(error)


# Pulumi's own namespaces; any other namespace that looks like this project's is probably a typo.
_KNOWN_NAMESPACES = frozenset({"pulumi", "kubernetes", "command", "aws", "gcp", "azure", "meshplan"})
MIN_TYPO_SIMILARITY = 0.75


def looks_like_project(namespace: str) -> bool:
    """`istiomesh`, `istio_mesh`, `Istio-Mesh`, `isito-mesh`: a namespace meant to be this project's."""
    if namespace == PROJECT or namespace in _KNOWN_NAMESPACES:
        return False
    squashed = "".join(c for c in namespace.lower() if c.isalnum())
    if squashed == "".join(c for c in PROJECT if c.isalnum()):
        return True
    return difflib.SequenceMatcher(None, namespace.lower(), PROJECT).ratio() >= MIN_TYPO_SIMILARITY


def _mask_secrets(value: Any) -> tuple[Any, bool]:
    """`secure:` ciphertexts cannot be decrypted offline: they become SECRET, and the key a secret."""
    if isinstance(value, Mapping):
        if set(value) == {"secure"}:
            return SECRET, True
        masked, found = {}, False
        for key, item in value.items():
            masked[key], inner = _mask_secrets(item)
            found = found or inner
        return masked, found
    if isinstance(value, list):
        pairs = [_mask_secrets(item) for item in value]
        return [p[0] for p in pairs], any(p[1] for p in pairs)
    return value, False


def parse_override(text: str) -> tuple[list[str], Any]:
    """`KEY=VALUE`: KEY a dotted path under the project namespace, VALUE parsed as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise StackConfigError(f"--config {text!r}: expected KEY=VALUE, e.g. dashboards.kiali.nodePort=30010")
    try:
        value = yaml.load(raw, Loader=YAML_LOADER) if raw.strip() else ""
    except yaml.YAMLError as error:
        raise StackConfigError(
            f"--config {text!r}: the value is not valid YAML: {yaml_error_text(error, '--config ' + key)}"
        ) from None
    path = key.strip().removeprefix(f"{PROJECT}:").split(".")
    if any(not part for part in path):
        raise StackConfigError(f"--config {text!r}: empty segment in the key path")
    if (
        path[-1].lower().endswith("version")
        and isinstance(value, int | float)
        and not isinstance(value, bool)
    ):
        # A version is text: YAML reads `1.20` as the number 1.2, which is another version.
        value = raw.strip()
    return path, value


def _set_path(config: dict[str, Any], path: Sequence[str], value: Any, original: str) -> None:
    top = f"{PROJECT}:{path[0]}"
    if len(path) == 1:
        config[top] = value
        return
    node = config.setdefault(top, {})
    for index, part in enumerate(path[1:-1], start=1):
        if not isinstance(node, dict):
            raise StackConfigError(f"--config {original!r}: {'.'.join(path[:index])} is not a mapping")
        node = node.setdefault(part, {})
    if not isinstance(node, dict):
        raise StackConfigError(f"--config {original!r}: {'.'.join(path[:-1])} is not a mapping")
    node[path[-1]] = value


def load_stack(
    project_dir: Path,
    stack: str,
    *,
    stack_file: Path | None = None,
    overrides: Sequence[str] = (),
) -> StackConfig:
    """Project defaults, then `Pulumi.<stack>.yaml` (or `stack_file`), then each override in order."""
    path = stack_file or project_dir / f"Pulumi.{stack}.yaml"
    if not path.exists():
        raise StackConfigError(f"no stack file {path}")
    config: dict[str, Any] = project_defaults(project_dir)
    secret_keys: set[str] = set()
    declared = _read_yaml(path).get("config") or {}
    if not isinstance(declared, Mapping):
        raise StackConfigError(f"{path}: `config` must be a mapping")
    warnings = []
    for key, value in declared.items():
        masked, is_secret = _mask_secrets(value)
        name = _namespaced(str(key))
        config[name] = masked
        if is_secret:
            secret_keys.add(name)
        namespace, _, bare = name.partition(":")
        if looks_like_project(namespace):
            warnings.append(
                f"warning: {path}: config key {name} is in namespace {namespace!r}, which the program "
                f"ignores; did you mean {PROJECT}:{bare}?"
            )
    for override in overrides:
        path_parts, value = parse_override(override)
        _set_path(config, path_parts, value, override)
    return StackConfig(
        stack=stack, values=config, secret_keys=tuple(sorted(secret_keys)), warnings=tuple(warnings)
    )
