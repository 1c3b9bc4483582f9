"""Run the real Pulumi program under the SDK's mock engine and record the graph it declares.

One engine for the tests and for `meshplan`: no Pulumi CLI, no plugins, no cluster, no credentials.
`RecordingMonitor` sees exactly what the Pulumi engine would receive for each registration (type,
name, parent, inputs, dependencies, provider and options).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from meshplan.provider_check import checked_inputs

if TYPE_CHECKING:
    import concurrent.futures

    from pulumi.runtime import mocks

# The Pulumi SDK is imported when something is rendered, not when this module is: `meshplan diff`
# renders both sides in child processes, and its parent (which imports this module for the constants
# and dataclasses below, through meshplan.stacks and meshplan.diff) must not pay for the SDK.

PROJECT = "istio-mesh"
SECRET = "[secret]"
UNKNOWN = "[unknown]"

# Special values of Pulumi's wire format (sdk/go/common/resource/sig).
_SIG_KEY = "4dabf18193072939515e22adb298388d"
_SIG_SECRET = "1b47061264138c4ac30d75fd1eb44270"
_SIG_RESOURCE = "5cf8f73096256a8f31e491e813e4eb8e"
_UNKNOWN_VALUE = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"

_P = ParamSpec("_P")
_T = TypeVar("_T")

CONFIG_GROUP = "kubernetes:yaml/v2:ConfigGroup"
RELEASE_TYPE = "kubernetes:helm.sh/v3:Release"
STACK_TYPE = "pulumi:pulumi:Stack"

# Provider arguments the kubernetes SDK fills from the environment when the program leaves them
# unset; cleared while rendering so a plan depends on the repository alone, not on the shell.
_AMBIENT_ENV = ("KUBECONFIG", "PULUMI_CONFIG", "PULUMI_K8S_")


def stackless(urn: str) -> str:
    """`urn:pulumi:<stack>::<project>::<type>::<name>` -> `<project>::<type>::<name>`.

    The root stack resource is also named after the stack (`<project>-<stack>`), so its name goes
    too: otherwise every top-level resource of `dev` would seem re-parented in `prod`.
    """
    if not urn.startswith("urn:pulumi:"):
        return urn
    _, _, rest = urn.partition("::")
    parts = rest.split("::", 2)
    if len(parts) == 3 and parts[1] == STACK_TYPE:
        return f"{parts[0]}::{STACK_TYPE}"
    return rest


def short_ref(urn: str) -> str:
    """`Release istiod` for a URN: its own type token (not its parents' chain) and its name."""
    parts = stackless(urn).split("::", 2)
    if len(parts) < 2:
        return urn
    type_ = parts[1].rsplit("$", 1)[-1]
    return f"{type_} {parts[2]}" if len(parts) == 3 else type_


@dataclass(frozen=True)
class Registration:
    """One resource as the Pulumi engine would receive it: identity, options and inputs."""

    urn: str
    type: str
    name: str
    custom: bool
    remote: bool  # a component its provider constructs (kubernetes:yaml/v2:ConfigGroup)
    parent: str | None
    dependencies: tuple[str, ...]
    provider: str | None
    providers: Mapping[str, str]
    protect: bool
    retain_on_delete: bool
    ignore_changes: tuple[str, ...]
    delete_before_replace: bool
    inputs: Mapping[str, Any]  # wire values, secrets shown as SECRET
    wire: Mapping[str, Any] = field(repr=False)  # the request's inputs as JSON, secrets still wrapped
    # The URNs the resource had before (its `aliases`), as the engine derives them: a resource
    # found under one of them in the old plan is the same resource, moved, not a delete and a create.
    aliases: tuple[str, ...] = ()

    @functools.cached_property
    def raw_inputs(self) -> Mapping[str, Any]:
        """Wire values with secrets revealed: tests only, so worked out when first asked for."""
        return normalize(self.wire, reveal=True)

    def to_plan(self) -> dict[str, Any]:
        return {
            "urn": self.urn,
            "type": self.type,
            "name": self.name,
            "custom": self.custom,
            "remote": self.remote,
            "parent": self.parent,
            "dependsOn": sorted(set(self.dependencies)),
            "provider": self.provider,
            "protect": self.protect,
            "retainOnDelete": self.retain_on_delete,
            "ignoreChanges": sorted(self.ignore_changes),
            "inputs": self.inputs,
            # Only when there are some, so plans of stacks without aliases keep their shape.
            **({"aliases": sorted(self.aliases)} if self.aliases else {}),
        }


@dataclass
class Render:
    """What one evaluation of the program declared, or the config error that stopped it."""

    project: str
    stack: str
    registrations: list[Registration]
    outputs: dict[str, Any]
    error: str | None = None

    def by_urn(self) -> dict[str, Registration]:
        return {r.urn: r for r in self.registrations}

    def plan(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "stack": self.stack,
            "resources": [r.to_plan() for r in sorted(self.registrations, key=lambda r: r.urn)],
            "outputs": self.outputs,
        }


def _strip_id(reference: str) -> str:
    """Provider references are `<urn>::<id>`; the URN is what identifies the provider."""
    return reference.rsplit("::", 1)[0] if reference else reference


def normalize(value: Any, *, reveal: bool = False) -> Any:
    """Wire-format value -> plain JSON value: secrets masked, resource references as URNs."""
    if isinstance(value, dict):
        signature = value.get(_SIG_KEY)
        if signature == _SIG_SECRET:
            return normalize(value.get("value"), reveal=reveal) if reveal else SECRET
        if signature == _SIG_RESOURCE:
            return value.get("urn")
        return {key: normalize(item, reveal=reveal) for key, item in value.items()}
    if isinstance(value, list):
        return [normalize(item, reveal=reveal) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)  # protobuf Struct carries every number as a double
    if value == _UNKNOWN_VALUE:
        return UNKNOWN
    return value


def _release_status(inputs: Mapping[str, Any], name: str) -> dict[str, Any]:
    """What a freshly installed Helm release reports; the program reads `status.name` back."""
    return {
        "name": inputs.get("name", name),
        "namespace": inputs.get("namespace", ""),
        "version": inputs.get("version", ""),
        "status": "deployed",
    }


# Kinds of the built-in API groups that have no namespace; every other built-in kind has one.
CLUSTER_SCOPED_KINDS = frozenset(
    {
        "APIService", "CSIDriver", "CSINode", "CertificateSigningRequest", "ClusterRole",
        "ClusterRoleBinding", "ClusterTrustBundle", "ComponentStatus", "CustomResourceDefinition",
        "DeviceClass", "FlowSchema", "IPAddress", "IngressClass", "MutatingAdmissionPolicy",
        "MutatingAdmissionPolicyBinding", "MutatingWebhookConfiguration", "Namespace", "Node",
        "PersistentVolume", "PriorityClass", "PriorityLevelConfiguration", "ResourceSlice",
        "RuntimeClass", "SelfSubjectAccessReview", "SelfSubjectReview", "SelfSubjectRulesReview",
        "ServiceCIDR", "StorageClass", "StorageVersion", "StorageVersionMigration",
        "SubjectAccessReview", "TokenReview", "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding", "ValidatingWebhookConfiguration",
        "VolumeAttachment", "VolumeAttributesClass",
    }
)  # fmt: skip
_DEPENDS_ON = "config.kubernetes.io/depends-on"

ObjectKey = tuple[str, str, str, str]  # API group, kind, namespace, name: what cli-utils matches on


# The API groups of Kubernetes itself (not of CRDs: gateway.networking.k8s.io is a CRD's group).
BUILTIN_GROUPS = frozenset(
    {
        "", "apps", "autoscaling", "batch", "policy", "admissionregistration.k8s.io",
        "apiextensions.k8s.io", "apiregistration.k8s.io", "authentication.k8s.io",
        "authorization.k8s.io", "certificates.k8s.io", "coordination.k8s.io", "discovery.k8s.io",
        "events.k8s.io", "flowcontrol.apiserver.k8s.io", "internal.apiserver.k8s.io",
        "networking.k8s.io", "node.k8s.io", "rbac.authorization.k8s.io", "resource.k8s.io",
        "scheduling.k8s.io", "storage.k8s.io", "storagemigration.k8s.io",
    }
)  # fmt: skip


@dataclass
class _GroupObject:
    """One object of a yaml/v2 ConfigGroup on its way to becoming a resource, as the provider sees it."""

    api_group: str
    kind: str
    namespace: str
    name: str
    type: str
    inputs: Any
    wire: Any

    @classmethod
    def of(cls, wire: dict[str, Any], inputs: Any) -> _GroupObject:
        metadata = wire.get("metadata") or {}
        api_version = str(wire.get("apiVersion", ""))
        api_group, _, version = api_version.rpartition("/")
        api_group = "" if api_group == "core" else api_group  # the provider canonicalizes core/v1 to v1
        kind = str(wire.get("kind"))
        if (api_group, version, kind) == ("", "v1", "Secret") and isinstance(inputs, dict):
            # register(): "Always mark these fields as secret to avoid leaking sensitive values".
            secret_fields = [key for key in ("data", "stringData") if key in wire]
            wire = {**wire, **{k: {_SIG_KEY: _SIG_SECRET, "value": wire[k]} for k in secret_fields}}
            inputs = {**inputs, **dict.fromkeys(secret_fields, SECRET)}
        return cls(
            api_group=api_group,
            kind=kind,
            namespace=str(metadata.get("namespace") or ""),
            name=str(metadata.get("name")),
            type=f"kubernetes:{api_group or 'core'}/{version}:{kind}",
            inputs=inputs,
            wire=wire,
        )

    @property
    def key(self) -> ObjectKey:
        return self.api_group, self.kind, self.namespace, self.name

    def set_namespace(self, namespace: str) -> None:
        self.namespace = namespace
        for attribute in ("inputs", "wire"):
            value = getattr(self, attribute)
            if isinstance(value, dict) and isinstance(value.get("metadata", {}), dict):
                setattr(
                    self,
                    attribute,
                    {**value, "metadata": {**value.get("metadata", {}), "namespace": namespace}},
                )

    def needs(self, group: Sequence[_GroupObject]) -> list[ObjectKey]:
        """What the provider makes this object depend on (cli-utils' object graph): its Namespace,
        the CRD that defines its kind and its `config.kubernetes.io/depends-on` objects."""
        needed: list[ObjectKey] = []
        if self.namespace:
            needed.append(("", "Namespace", "", self.namespace))
        for other in group:
            if other.kind == "CustomResourceDefinition" and other.api_group == "apiextensions.k8s.io":
                spec = other.inputs.get("spec") if isinstance(other.inputs, dict) else None
                names = spec.get("names") if isinstance(spec, dict) else None
                if (
                    isinstance(spec, dict)
                    and isinstance(names, dict)
                    and (spec.get("group"), names.get("kind")) == (self.api_group, self.kind)
                ):
                    needed.append(other.key)
        annotations = _annotations(self.inputs)
        for reference in str(annotations.get(_DEPENDS_ON, "")).split(","):
            parts = reference.strip().split("/")
            if len(parts) == 5 and parts[1] == "namespaces":
                needed.append((parts[0], parts[3], parts[2], parts[4]))
            elif len(parts) == 3:
                needed.append((parts[0], parts[1], "", parts[2]))
        return [key for key in dict.fromkeys(needed) if key != self.key]


def _annotations(inputs: Any) -> dict[str, Any]:
    metadata = inputs.get("metadata") if isinstance(inputs, dict) else None
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    return annotations if isinstance(annotations, dict) else {}


def _apply_default_namespace(objects: Sequence[_GroupObject], default: str) -> None:
    """Normalize(): a namespaced object without a namespace goes to the provider's default one.

    The provider asks the cluster whether a kind is namespaced unless a CRD of the group says;
    offline, built-in kinds are known, and a custom kind without its CRD here keeps its manifest's
    namespace (or none), as nothing offline can tell.
    """
    crd_scopes: dict[tuple[str, str], bool] = {}
    for obj in objects:
        spec = obj.inputs.get("spec") if isinstance(obj.inputs, dict) else None
        if obj.kind == "CustomResourceDefinition" and isinstance(spec, dict):
            names = spec.get("names")
            if isinstance(names, dict):
                crd_scopes[(str(spec.get("group")), str(names.get("kind")))] = spec.get("scope") != "Cluster"
    for obj in objects:
        if obj.namespace:
            continue
        if (obj.api_group, obj.kind) in crd_scopes:
            namespaced = crd_scopes[(obj.api_group, obj.kind)]
        else:
            namespaced = obj.api_group in BUILTIN_GROUPS and obj.kind not in CLUSTER_SCOPED_KINDS
        if namespaced:
            obj.set_namespace(default)


@functools.cache
def _monitor_class() -> Callable[[list[Registration]], mocks.MockMonitor]:
    """RecordingMonitor, defined on first use so that importing this module does not load the SDK."""
    import pulumi
    from google.protobuf import json_format, struct_pb2
    from pulumi.runtime import mocks
    from pulumi.runtime.proto import resource_pb2
    from pulumi.runtime.settings import get_project, get_stack

    class _Mocks(pulumi.runtime.Mocks):
        """What MockMonitor asks for the requests RecordingMonitor leaves to it: invokes and reads.

        Registrations never get here: RecordingMonitor answers them itself (`_created`), with the
        same echo `new_resource` gives a resource read with `Resource.get`.
        """

        def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict]:
            outputs = dict(args.inputs)
            if args.typ == RELEASE_TYPE:
                outputs["status"] = _release_status(args.inputs, args.name)
            return f"{args.name}-id", outputs

        def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list[tuple[str, str]] | None]:
            return {}, []  # no result and no failures: MockMonitor iterates the failures

    class RecordingMonitor(mocks.MockMonitor):
        """A MockMonitor that keeps every registration request, as the engine would receive it."""

        def __init__(self, registrations: list[Registration]) -> None:
            super().__init__(_Mocks())
            self.registrations = registrations

        def make_urn(self, parent: str, type_: str, name: str) -> str:
            """The URN the Pulumi engine would assign: the parent's whole type chain, minus the stack.

            The SDK's MockMonitor keeps only the parent's last type, so nested components would get
            URNs no real deployment has, and plans could not be compared with `pulumi preview`.
            """
            if parent:
                parent_type = parent.split("::")[2]
                if parent_type != STACK_TYPE:
                    type_ = f"{parent_type}${type_}"
            return "urn:pulumi:" + "::".join([get_stack(), get_project(), type_, name])

        def RegisterResource(self, request: Any) -> Any:
            if request.type == STACK_TYPE:
                return super().RegisterResource(request)
            urn = self.make_urn(request.parent, request.type, request.name)
            wire = json_format.MessageToDict(request.object)
            if request.custom:
                response = self._created(urn, request, wire)
            else:
                # A component has nothing to mock: the engine answers with its URN (a remote one's
                # Construct outputs, a yaml/v2 ConfigGroup's `resources`, are not read by the
                # program).
                response = resource_pb2.RegisterResourceResponse(urn=urn)
            shown = checked_inputs(
                request.type,
                normalize(wire),
                remote=bool(request.remote),
                unknown=UNKNOWN,
                secret=SECRET,
                default_namespace=self._default_namespace(_strip_id(request.provider) or None),
            )
            if request.type.startswith("pulumi:providers:") and request.version:
                # The engine records the plugin version the SDK asks for as the provider's input.
                shown = {**shown, "version": request.version}
            registration = Registration(
                urn=response.urn,
                type=request.type,
                name=request.name,
                custom=bool(request.custom),
                remote=bool(request.remote),
                parent=request.parent or None,
                dependencies=tuple(request.dependencies),
                provider=_strip_id(request.provider) or None,
                providers={k: _strip_id(v) for k, v in sorted(request.providers.items())},
                protect=bool(request.protect),
                retain_on_delete=bool(request.retainOnDelete),
                ignore_changes=tuple(request.ignoreChanges),
                delete_before_replace=bool(request.deleteBeforeReplace),
                inputs=shown,
                wire=wire,
                aliases=tuple(self._alias_urns(request)),
            )
            self.registrations.append(registration)
            if registration.remote and registration.type == CONFIG_GROUP:
                self.registrations.extend(self._constructed_objects(registration))
            return response

        def _alias_urns(self, request: Any) -> list[str]:
            """The URNs the engine derives from the request's aliases (pulumi `alias.go`): a full
            URN as it is; a spec's unset name, type, stack and project are the resource's own, and
            its parent is `parentUrn` (or none with `noParent`, else the resource's own parent)."""
            urns = []
            for alias in request.aliases:
                if alias.WhichOneof("alias") == "urn":
                    urns.append(alias.urn)
                    continue
                spec = alias.spec
                parent = "" if spec.noParent else (spec.parentUrn or request.parent)
                urn = self.make_urn(parent, spec.type or request.type, spec.name or request.name)
                if spec.stack or spec.project:
                    _, _, rest = urn.partition("urn:pulumi:")
                    _stack, project, tail = rest.split("::", 2)
                    urn = f"urn:pulumi:{spec.stack or _stack}::{spec.project or project}::{tail}"
                urns.append(urn)
            return urns

        def _created(self, urn: str, request: Any, wire: Mapping[str, Any]) -> Any:
            """A freshly created custom resource: its outputs are its inputs, as the request carried them.

            This is the answer MockMonitor gets from `Mocks.new_resource` echoing its inputs, without
            MockMonitor's round trip (decode the Struct into Python values, ask the mocks, encode
            them again by running an event loop): the Struct is copied as it is, so secrets,
            unknowns and resource references come back exactly as they were sent.
            """
            outputs = struct_pb2.Struct()
            outputs.CopyFrom(request.object)
            if request.type == RELEASE_TYPE:
                outputs.update({"status": _release_status(wire, request.name)})
            return resource_pb2.RegisterResourceResponse(urn=urn, id=f"{request.name}-id", object=outputs)

        def _constructed_objects(self, group: Registration) -> list[Registration]:
            """The resources the kubernetes provider's Construct registers for a yaml/v2 ConfigGroup.

            The program never registers these itself, so the mock engine would not see them: they are
            added here as the provider does it (pulumi-kubernetes provider/pkg/provider/yaml/v2:
            `Normalize`, `Register`, `register`). One resource per object, of the object's own type,
            child of the group (so the group's provider and protect are inherited, as the SDKs do
            for every child), named `<resourcePrefix>:<namespace>/<name>`, or
            `<resourcePrefix>:<name>` for an object without a namespace; the prefix defaults to the
            group's name. A namespaced object without a namespace gets the provider's default one
            first, in its inputs too. Each object depends on the Namespace, the
            CustomResourceDefinition and the `config.kubernetes.io/depends-on` objects of the same
            group that it needs, as the provider orders them. A v1 Secret's `data` and `stringData`
            are always secret.
            """
            # The engine records no inputs for the group (provider_check.py): the objects come
            # from what the program sent.
            objects = group.wire.get("objs")
            shown = normalize(objects)
            if not isinstance(objects, list) or not isinstance(shown, list):
                return []  # unknown or secret as a whole: the objects are not known before deploying
            prefix = group.wire.get("resourcePrefix") or group.name
            # `shown` is `objects` normalized already, as part of the group's inputs.
            known = [
                _GroupObject.of(obj, inputs)
                for obj, inputs in zip(objects, shown, strict=True)
                if isinstance(obj, dict) and _SIG_KEY not in obj  # secret or unknown as a whole
            ]
            default_namespace = self._default_namespace(group.provider)
            _apply_default_namespace(known, default_namespace)
            urns: dict[tuple[str, str, str, str], str] = {}
            constructed = []
            for item in known:
                name = f"{prefix}:{item.namespace}/{item.name}" if item.namespace else f"{prefix}:{item.name}"
                urn = self.make_urn(group.urn, item.type, name)
                urns[item.key] = urn
                constructed.append(
                    Registration(
                        urn=urn,
                        type=item.type,
                        name=name,
                        custom=True,
                        remote=False,
                        parent=group.urn,
                        dependencies=(),
                        provider=group.provider,
                        providers={},
                        protect=group.protect,
                        retain_on_delete=False,
                        ignore_changes=(),
                        delete_before_replace=False,
                        inputs=checked_inputs(
                            item.type,
                            item.inputs,
                            unknown=UNKNOWN,
                            secret=SECRET,
                            default_namespace=default_namespace,
                        ),
                        wire=item.wire,
                    )
                )
            return [
                dataclasses.replace(r, dependencies=tuple(urns[k] for k in item.needs(known) if k in urns))
                for r, item in zip(constructed, known, strict=True)
            ]

        def _default_namespace(self, provider: str | None) -> str:
            """The provider's `namespace`, else `default`, as the provider would apply it.

            A real provider without `namespace` takes its kubeconfig context's namespace, which
            only the cluster's kubeconfig knows; `default` is what most contexts say.
            """
            for registration in self.registrations:
                if registration.urn == provider:
                    namespace = registration.inputs.get("namespace")
                    return namespace if isinstance(namespace, str) and namespace else "default"
            return "default"

    return RecordingMonitor


@contextlib.contextmanager
def _program_environment(project_dir: Path) -> Iterator[None]:
    saved_env = {k: v for k, v in os.environ.items() if k.startswith(_AMBIENT_ENV)}
    for key in saved_env:
        del os.environ[key]
    saved_path = list(sys.path)
    sys.path.insert(0, str(project_dir))
    # A program from another directory (another git revision) must not reuse our modules.
    for name in [m for m in sys.modules if m == "components" or m.startswith("components.")]:
        module_file = getattr(sys.modules[name], "__file__", None) or ""
        if not Path(module_file).resolve().is_relative_to(project_dir):
            del sys.modules[name]
    try:
        yield
    finally:
        sys.path[:] = saved_path
        os.environ.update(saved_env)


def config_strings(config: Mapping[str, Any]) -> dict[str, str]:
    """Pulumi hands a program its config as strings: objects and scalars as JSON, strings as-is."""
    return {key: value if isinstance(value, str) else json.dumps(value) for key, value in config.items()}


def render(
    project_dir: Path,
    stack: str,
    config: Mapping[str, Any],
    *,
    secret_keys: Sequence[str] = (),
    preview: bool = True,
) -> Render:
    """Evaluate `<project_dir>/__main__.py` for `stack` with `config` (keys like `istio-mesh:istio`)."""
    import pulumi
    from pulumi.runtime.settings import ROOT
    from pulumi.runtime.stack import run_pulumi_func
    from pulumi.runtime.sync_await import _ensure_event_loop, _sync_await

    project_dir = project_dir.resolve()
    # The loop _sync_await runs the program on: its monitor calls go to this executor.
    _ensure_event_loop().set_default_executor(_inline_executor())
    registrations: list[Registration] = []
    monitor = _monitor_class()(registrations)
    # set_mocks keeps an existing root Stack resource; a fresh one per render keeps one render's
    # exports and stack URN out of the next (tests render several stacks in one process).
    ROOT.set(None)
    pulumi.runtime.set_mocks(monitor.mocks, project=PROJECT, stack=stack, preview=preview, monitor=monitor)
    pulumi.runtime.set_all_config(config_strings(config), list(secret_keys))
    error: str | None = None
    with _young_objects_only(), _no_stack_traces():
        with _program_environment(project_dir):
            try:
                _sync_await(run_pulumi_func(lambda: _run_program(project_dir)))
            except pulumi.RunError as run_error:
                error = str(run_error)
        outputs = {} if error else _sync_await(_resolve_outputs())
    return Render(PROJECT, stack, list(registrations), outputs, error)


@functools.cache
def _inline_executor() -> concurrent.futures.ThreadPoolExecutor:
    """The executor that runs each call at once, on the calling thread (one, made on first use).

    The SDK hands every call to the monitor to the event loop's default executor, because a real
    monitor is a blocking gRPC call to the Pulumi engine. RecordingMonitor answers in-process and
    never blocks, so a worker thread would add only thread start-ups and hand-offs of the GIL
    (about a tenth of a render, measured with bench/preview.py). asyncio takes nothing but a
    ThreadPoolExecutor as a loop's default executor, hence the base class; this one never starts
    a thread.
    """
    import concurrent.futures

    class InlineExecutor(concurrent.futures.ThreadPoolExecutor):
        def submit(
            self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs
        ) -> concurrent.futures.Future[_T]:
            future: concurrent.futures.Future[_T] = concurrent.futures.Future()
            try:
                result = fn(*args, **kwargs)
            except BaseException as error:  # as a worker thread would: the caller gets it when awaiting
                future.set_exception(error)
            else:
                future.set_result(result)
            return future

    return InlineExecutor()


@contextlib.contextmanager
def _no_stack_traces() -> Iterator[None]:
    """Registrations without the caller's stack trace, which a plan never records.

    For each registration the SDK captures the whole Python stack (`traceback.extract_stack`, which
    reads every source file on it) and turns each frame into a source position for the engine's
    diagnostics. A plan keeps none of it, and it was about a fifth of each render in a fleet
    (bench/fleet.py). Restored after the render, so a real `pulumi` run in the same process (there
    is none) would be unaffected.
    """
    from pulumi.runtime import resource
    from pulumi.runtime.proto import source_pb2

    saved = resource._get_stack_trace
    resource._get_stack_trace = source_pb2.StackTrace
    try:
        yield
    finally:
        resource._get_stack_trace = saved


@contextlib.contextmanager
def _young_objects_only() -> Iterator[None]:
    """Keep the garbage collector to the objects the render creates.

    By the time a program runs, the SDK's modules have left some 100 000 objects on the heap that
    live as long as the process. The render allocates enough to trigger a full collection, and
    that collection (about a quarter of the render's time) would scan all of them to find none
    unreachable. `gc.freeze()` sets them aside for the render; `gc.unfreeze()` hands them back
    to the collector, so it only changes when garbage older than the render is found, never what
    is. A caller that froze objects itself (or disabled the collector) is left to its own plan.
    """
    if not gc.isenabled() or gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _run_program(project_dir: Path) -> None:
    import runpy

    runpy.run_path(str(project_dir / "__main__.py"), run_name="__main__")


async def _resolve_outputs() -> dict[str, Any]:
    import pulumi
    from pulumi.runtime.settings import get_root_resource

    root = get_root_resource()
    exported: Mapping[str, Any] = getattr(root, "outputs", {})
    resolved: dict[str, Any] = {}
    for name in sorted(exported):
        output = pulumi.Output.from_input(exported[name])
        value = await output.future()
        if await output.is_secret():
            resolved[name] = SECRET
        elif not await output.is_known():
            resolved[name] = UNKNOWN
        else:
            resolved[name] = json.loads(json.dumps(value, sort_keys=True, default=str))
    return resolved
