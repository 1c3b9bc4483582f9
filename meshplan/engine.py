"""Run the real Pulumi program under the SDK's mock engine and record the graph it declares.

One engine for the tests and for `meshplan`: no Pulumi CLI, no plugins, no cluster, no credentials.
`RecordingMonitor` sees exactly what the Pulumi engine would receive for each registration (type,
name, parent, inputs, dependencies, provider and options).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

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
                inputs=normalize(wire),
                wire=wire,
            )
            self.registrations.append(registration)
            if registration.remote and registration.type == CONFIG_GROUP:
                self.registrations.extend(self._constructed_objects(registration))
            return response

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
            added here as the provider names them. One resource per object, of the object's own type,
            child of the group, named `<resourcePrefix>-<namespace>/<name>`, or `<resourcePrefix>-<name>`
            when the manifest gives no namespace; the prefix defaults to the group's name
            (https://github.com/pulumi/pulumi-kubernetes/issues/2870). The provider also orders them
            (CRDs and Namespaces first, `config.kubernetes.io/depends-on`), which is not recorded here:
            `dependsOn` stays the group's, on the group. Protect is inherited from the parent, as
            the SDKs do for every child.
            """
            objects, shown = group.wire.get("objs"), group.inputs.get("objs")
            if not isinstance(objects, list) or not isinstance(shown, list):
                return []  # unknown or secret as a whole: the objects are not known before deploying
            prefix = group.wire.get("resourcePrefix") or group.name
            constructed = []
            # `shown` is `objects` normalized already, as part of the group's inputs.
            for obj, inputs in zip(objects, shown, strict=True):
                if not isinstance(obj, dict) or _SIG_KEY in obj:
                    continue  # an object that is a secret or unknown as a whole: not known before deploying
                metadata = obj.get("metadata") or {}
                api_group, _, version = str(obj.get("apiVersion", "")).rpartition("/")
                type_ = f"kubernetes:{api_group or 'core'}/{version}:{obj.get('kind')}"
                namespace = metadata.get("namespace")
                name = (
                    f"{prefix}-{namespace}/{metadata.get('name')}"
                    if namespace
                    else f"{prefix}-{metadata.get('name')}"
                )
                constructed.append(
                    Registration(
                        urn=self.make_urn(group.urn, type_, name),
                        type=type_,
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
                        inputs=inputs,
                        wire=obj,
                    )
                )
            return constructed

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
    with _young_objects_only():
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
