"""Each policy rule's cases one by one: what it reads, what it skips, and the exact line it reports.

As in tests/test_policy.py, every test starts from `good_plan()` (which every rule accepts), changes
one thing and asserts the exact violation lines (or none), so a rule that reads one thing wrong, or
says it differently, fails here.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

import policy.__main__ as pack
from policy import rules
from policy.rules import RULES, RuleContext, check_plan, context_for, rule_by_id
from tests.test_policy import (
    APPS_URN,
    BASE_URN,
    BEFORE_AMBIENT_GA,
    CNI_URN,
    CONTEXT,
    DEFAULT_K8S_PROVIDER,
    GATEWAY_URN,
    GRAFANA_URN,
    ISTIOD_URN,
    KIALI_URN,
    KUBECONFIG,
    RESTART_URN,
    TARGET,
    TODAY,
    ZTUNNEL_URN,
    ambient_plan,
    crd_urn,
    find,
    gateway_api_crd,
    good_plan,
    lines,
    namespace_patch,
    release,
    resource,
    restart_with,
    urn,
)

ADVICE = "ResourceOptions(provider=...) or providers=..."
SAFE = "an exposed Kiali needs token, openid, openshift or header"


def no_context(call: str, field: str = "create") -> str:
    return (
        f"commands-name-cluster: {RESTART_URN}: {field}: kubectl call `{call}` has no --context; "
        f"expected --context {CONTEXT}"
    )


def no_kubeconfig(call: str, field: str = "create") -> str:
    return (
        f"commands-name-cluster: {RESTART_URN}: {field}: kubectl call `{call}` has no --kubeconfig; "
        f"expected --kubeconfig {KUBECONFIG}"
    )


def bare(call: str, field: str = "create") -> list[str]:
    """The two lines for a kubectl call that names neither the context nor the kubeconfig."""
    return [no_context(call, field), no_kubeconfig(call, field)]


# --- commands-name-cluster: where the shell runs kubectl ---------------------------------------------


@pytest.mark.parametrize("shell", ["sh", "bash", "dash", "zsh", "ash", "/bin/bash", "/usr/bin/zsh"])
def test_kubectl_inside_each_shells_c_script_is_checked(shell: str) -> None:
    assert lines(restart_with(f"{shell} -c 'kubectl get ns'")) == bare("kubectl get ns")


@pytest.mark.parametrize("flags", ["-c", "-ec", "-xc", "-e -c", "-o pipefail -c"])
def test_a_shells_c_flag_may_be_combined_or_follow_other_options(flags: str) -> None:
    assert lines(restart_with(f"bash {flags} 'kubectl get ns'")) == bare("kubectl get ns")


def test_a_long_shell_option_containing_c_is_not_the_c_flag() -> None:
    """`--rcfile FILE`: FILE is not a script; the script is the one after `-c`."""
    assert lines(restart_with("bash --rcfile /etc/kubectl.rc -c 'kubectl get ns'")) == bare("kubectl get ns")


def test_a_shell_running_a_script_file_runs_no_kubectl_the_rule_can_see() -> None:
    assert lines(restart_with("bash -e /opt/kubectl-restart.sh")) == []
    assert lines(restart_with("cat /opt/kubectl-restart.sh | sh")) == []


def test_a_c_flag_without_a_script_is_not_a_call() -> None:
    assert lines(restart_with(f"kubectl {TARGET} get ns; bash -c")) == []


@pytest.mark.parametrize(
    ("script", "call"),
    [
        ("sudo kubectl get ns", "kubectl get ns"),
        ("sudo -E kubectl get ns", "kubectl get ns"),
        ("env KUBE_EDITOR=true kubectl get ns", "kubectl get ns"),
        ("exec kubectl get ns", "kubectl get ns"),
        ("command kubectl get ns", "kubectl get ns"),
        ("time kubectl get ns", "kubectl get ns"),
        ("time -p kubectl get ns", "kubectl get ns"),
        ("nohup kubectl get ns", "kubectl get ns"),
        ("timeout 60 kubectl get ns", "kubectl get ns"),
        ("timeout -k 5 60s kubectl get ns", "kubectl get ns"),
        ("timeout 5s kubectl get ns", "kubectl get ns"),
        ("timeout --kill-after=1m 2m kubectl get ns", "kubectl get ns"),
        ("xargs -r kubectl get ns", "kubectl get ns"),
        ("watch kubectl get ns", "kubectl get ns"),
        ("/usr/bin/sudo /usr/local/bin/kubectl get ns", "/usr/local/bin/kubectl get ns"),
        ("nohup sudo env A=1 kubectl get ns", "kubectl get ns"),
        ("KUBECONFIG=/tmp/x kubectl get ns", "kubectl get ns"),
    ],
)
def test_kubectl_behind_a_wrapper_is_checked(script: str, call: str) -> None:
    assert lines(restart_with(script)) == bare(call)


def test_a_program_named_like_a_number_after_a_wrapper_other_than_timeout_is_the_program() -> None:
    """Only `timeout` takes a number before its program: after `sudo`, `60` is what runs, not kubectl."""
    assert lines(restart_with("sudo 60 kubectl get ns")) == []


@pytest.mark.parametrize(
    "script",
    [
        "while kubectl get ns x; do sleep 1; done",
        "until kubectl get ns x; do sleep 1; done",
        "! kubectl get ns x",
        "{ kubectl get ns x; }",
        "if true; then :; elif kubectl get ns x; then :; fi",
        "if false; then :; else kubectl get ns x; fi",
        "for i in 1 2; do kubectl get ns x; done",
    ],
)
def test_kubectl_after_a_reserved_word_is_checked(script: str) -> None:
    assert lines(restart_with(script)) == bare("kubectl get ns x")


@pytest.mark.parametrize(
    "script",
    [
        "echo kubectl get ns",
        f"sudo; A=1; kubectl {TARGET} get ns",  # a wrapper and an assignment with nothing to run
        "grep -q kubectl /etc/hosts || echo none",
        "kubectl-neat get ns",
    ],
)
def test_kubectl_as_an_argument_is_not_a_call(script: str) -> None:
    assert lines(restart_with(script)) == []


def test_calls_are_split_at_each_control_operator() -> None:
    script = "kubectl get a; kubectl get b && kubectl get c || kubectl get d | kubectl get e & kubectl get f\nkubectl get g"
    assert lines(restart_with(script)) == [line for x in "abcdefg" for line in bare(f"kubectl get {x}")]


def test_the_update_script_is_checked_and_reported_after_create_and_before_delete() -> None:
    plan = restart_with("kubectl get a")
    inputs = find(plan, "restart-default")["inputs"]
    inputs["delete"] = "kubectl get c"
    inputs["update"] = "kubectl get b"
    assert lines(plan) == [
        *bare("kubectl get a", "create"),
        *bare("kubectl get b", "update"),
        *bare("kubectl get c", "delete"),
    ]


@pytest.mark.parametrize("script", ["[secret]", "[unknown]", 42, None, "echo 'unterminated"])
def test_scripts_the_rule_cannot_see_or_without_kubectl_are_skipped(script: Any) -> None:
    assert lines(restart_with(script)) == []


def test_an_unparseable_update_script_is_reported() -> None:
    plan = good_plan()
    find(plan, "restart-default")["inputs"]["update"] = 'kubectl get ns "x'
    assert lines(plan) == [
        f"commands-name-cluster: {RESTART_URN}: update: cannot be parsed to check its kubectl calls "
        "(No closing quotation)"
    ]


def test_only_commands_are_read() -> None:
    """A ConfigMap's data holding a bare kubectl line is data, not a script that runs."""
    plan = good_plan()
    plan["resources"].append(
        resource(
            "kubernetes:core/v1:ConfigMap",
            "istio-system/scripts",
            {"metadata": {"name": "scripts"}, "create": "kubectl get ns"},
        )
    )
    assert lines(plan) == []


def test_a_backslash_newline_joins_the_words_around_it_as_the_shell_does() -> None:
    assert lines(restart_with(f"kubectl {TARGET} \\\n  get ns \\\n--output name")) == []
    call = f"kubectl --context=kind-other --kubeconfig {KUBECONFIG} get ns"
    assert lines(restart_with(f"kubectl --context=kind-\\\nother --kubeconfig {KUBECONFIG} get ns")) == [
        f"commands-name-cluster: {RESTART_URN}: create: kubectl call `{call}` uses --context kind-other; "
        f"expected --context {CONTEXT}"
    ]


@pytest.mark.parametrize(
    "context",
    [
        "arn:aws:eks:eu-west-1:123456789012:cluster/prod",
        "admin@prod",
        "gke_project_europe-west1_prod",
        "a,b+c%d",
    ],
)
def test_a_context_is_one_word_whatever_characters_it_holds(context: str) -> None:
    """EKS names contexts by ARN, kubeadm `user@cluster`: each is one shell word, compared whole."""
    plan = good_plan()
    find(plan, "cluster")["inputs"]["context"] = context
    find(plan, "restart-default")["inputs"]["create"] = (
        f"kubectl --context {context} --kubeconfig {KUBECONFIG} get ns"
    )
    assert lines(plan) == []


# --- commands-name-cluster: the flags ----------------------------------------------------------------


def test_flags_at_the_end_of_a_call_are_read() -> None:
    assert lines(restart_with(f"kubectl get ns {TARGET}")) == []
    call = f"kubectl get ns --kubeconfig {KUBECONFIG} --context kind-other"
    assert lines(restart_with(call)) == [
        f"commands-name-cluster: {RESTART_URN}: create: kubectl call `{call}` uses --context kind-other; "
        f"expected --context {CONTEXT}"
    ]


def test_a_context_flag_without_a_value_is_a_wrong_context() -> None:
    call = f"kubectl --kubeconfig {KUBECONFIG} get ns --context"
    assert lines(restart_with(call)) == [
        f"commands-name-cluster: {RESTART_URN}: create: kubectl call `{call}` uses --context ; "
        f"expected --context {CONTEXT}"
    ]


def test_a_kubeconfig_flag_without_a_value_is_a_wrong_kubeconfig() -> None:
    call = f"kubectl --context {CONTEXT} get ns --kubeconfig"
    assert lines(restart_with(call)) == [
        f"commands-name-cluster: {RESTART_URN}: create: kubectl call `{call}` uses --kubeconfig ; "
        f"expected --kubeconfig {KUBECONFIG}"
    ]


@pytest.mark.parametrize("flag", ["--kubeconfig /home/me/.kube/config", "--kubeconfig=/home/me/.kube/config"])
def test_another_kubeconfig_is_reported(flag: str) -> None:
    call = f"kubectl --context {CONTEXT} {flag} get ns"
    assert lines(restart_with(call)) == [
        f"commands-name-cluster: {RESTART_URN}: create: kubectl call `{call}` uses --kubeconfig "
        f"/home/me/.kube/config; expected --kubeconfig {KUBECONFIG}"
    ]


def test_the_last_context_flag_wins_as_with_kubectl() -> None:
    assert lines(restart_with(f"kubectl --context kind-other {TARGET} get ns")) == []
    call = f"kubectl {TARGET} --context=kind-other get ns"
    assert lines(restart_with(call)) == [
        f"commands-name-cluster: {RESTART_URN}: create: kubectl call `{call}` uses --context kind-other; "
        f"expected --context {CONTEXT}"
    ]


def test_a_flag_that_only_starts_like_context_is_not_context() -> None:
    call = f"kubectl --contexts {CONTEXT} --kubeconfig {KUBECONFIG} get ns"
    assert lines(restart_with(call)) == [no_context(call)]


def test_without_a_provider_context_no_call_can_be_checked() -> None:
    plan = good_plan()
    del find(plan, "cluster")["inputs"]["context"]
    assert lines(plan) == [
        f"commands-name-cluster: {RESTART_URN}: create: kubectl call `{call}` cannot be checked: the stack "
        "has no explicit kubernetes provider with a context"
        for call in (
            f"kubectl {TARGET} rollout restart deployment --namespace default",
            f"kubectl --context={CONTEXT} --kubeconfig={KUBECONFIG} rollout status deployment --namespace "
            "default --timeout 5m",
        )
    ]


# --- the stack's provider among several --------------------------------------------------------------


def provider(name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    return resource("pulumi:providers:kubernetes", name, inputs)


def context_of(plan: dict[str, Any]) -> RuleContext:
    return context_for(plan["resources"], TODAY)


def test_the_provider_named_cluster_is_the_stacks_among_several() -> None:
    plan = good_plan()
    plan["resources"].insert(0, provider("other", {"context": "kind-other", "kubeconfig": "/other"}))
    plan["resources"].append(provider("zz", {"context": "kind-zz"}))
    context = context_of(plan)
    assert (context.cluster_provider, context.kube_context, context.kubeconfig) == (
        "cluster",
        CONTEXT,
        KUBECONFIG,
    )
    assert lines(plan) == []


def test_the_only_explicit_provider_is_the_stacks_whatever_its_name() -> None:
    plan = good_plan()
    find(plan, "cluster")["name"] = "k8s"
    context = context_of(plan)
    assert (context.cluster_provider, context.kube_context) == ("k8s", CONTEXT)


def test_no_provider_is_the_stacks_among_several_none_named_cluster() -> None:
    plan = good_plan()
    find(plan, "cluster")["name"] = "east"
    plan["resources"].append(provider("west", {"context": "kind-west"}))
    context = context_of(plan)
    assert (context.cluster_provider, context.kube_context, context.kubeconfig) == (None, None, None)
    find(plan, "istio-system/grafana")["provider"] = None
    assert lines(plan)[0] == (
        f"explicit-provider: {GRAFANA_URN}: has no explicit provider, so it would use the ambient kubeconfig; "
        f"pass the stack's kubernetes provider with {ADVICE}"
    )


@pytest.mark.parametrize("name", ["default", "default_4_34_2"])
def test_default_providers_never_are_the_stacks(name: str) -> None:
    plan = good_plan()
    plan["resources"].append(provider(name, {"context": "kind-default"}))
    assert context_of(plan).kube_context == CONTEXT
    find(plan, "cluster")["name"] = "k8s"
    assert (context_of(plan).cluster_provider, context_of(plan).kube_context) == ("k8s", CONTEXT)
    plan["resources"].remove(find(plan, "k8s"))
    assert (context_of(plan).cluster_provider, context_of(plan).kube_context) == (None, None)


def test_a_default_provider_is_known_by_its_urn_before_its_name() -> None:
    plan = good_plan()
    cluster = find(plan, "cluster")
    cluster["name"] = "default"  # the URN says `cluster`
    assert context_of(plan).cluster_provider == "default"
    cluster["urn"] = ""  # only the name is left
    assert context_of(plan).cluster_provider is None


@pytest.mark.parametrize("value", ["", None, 7])
def test_an_empty_or_non_text_context_and_kubeconfig_are_none(value: Any) -> None:
    plan = good_plan()
    find(plan, "cluster")["inputs"] = {"context": value, "kubeconfig": value}
    context = context_of(plan)
    assert (context.cluster_provider, context.kube_context, context.kubeconfig) == ("cluster", None, None)


def test_an_empty_stack_has_the_default_context() -> None:
    """No resources: not production, no environment, no provider, no context or kubeconfig."""
    assert context_for([], TODAY) == RuleContext(today=TODAY)
    assert RuleContext(today=TODAY) == RuleContext(TODAY, False, None, None, None, None)


def test_the_environment_is_read_from_istio_system_only() -> None:
    plan = good_plan("development")
    plan["resources"].append(
        resource(
            "kubernetes:core/v1:Namespace",
            "apps",
            {"metadata": {"name": "apps", "labels": {"istio-mesh/environment": "production"}}},
        )
    )
    assert (context_of(plan).environment, context_of(plan).production) == ("development", False)


def test_an_environment_label_that_is_not_text_is_no_environment() -> None:
    plan = good_plan()
    find(plan, "istio-system")["inputs"]["metadata"]["labels"]["istio-mesh/environment"] = True
    assert (context_of(plan).environment, context_of(plan).production) == (None, False)


# --- explicit-provider -------------------------------------------------------------------------------


def test_explicit_provider_reads_kubernetes_resources_only() -> None:
    plan = good_plan()
    find(plan, "restart-default")["provider"] = None
    plan["resources"].append(resource("random:index/randomId:RandomId", "id", {}, provider=None))
    plan["resources"].append({"urn": urn("x", "typeless"), "inputs": {}})
    assert lines(plan) == []


def test_a_kubernetes_resource_marked_custom_needs_a_provider() -> None:
    plan = good_plan()
    find(plan, "istio-system/grafana").update(provider=None, custom=True)
    assert lines(plan) == [
        f"explicit-provider: {GRAFANA_URN}: has no explicit provider, so it would use the ambient kubeconfig; "
        f"pass cluster with {ADVICE}"
    ]


@pytest.mark.parametrize("reference", [DEFAULT_K8S_PROVIDER, f"{DEFAULT_K8S_PROVIDER}::4f2a", "default"])
def test_a_default_provider_is_named_by_its_name(reference: str) -> None:
    plan = good_plan()
    find(plan, "istio-system/grafana")["provider"] = reference
    name = "default" if reference == "default" else "default_4_34_2"
    assert lines(plan) == [
        f"explicit-provider: {GRAFANA_URN}: uses the default provider {name}; pass cluster with {ADVICE}"
    ]


# --- kiali-not-anonymous-when-exposed ----------------------------------------------------------------


def exposed_kiali(config: Any, service_type: str = "NodePort") -> dict[str, Any]:
    plan = good_plan("development")
    find(plan, "istio-system/kiali")["inputs"]["spec"]["type"] = service_type
    find(plan, "istio-system/kiali", "kubernetes:core/v1:ConfigMap")["inputs"]["data"]["config.yaml"] = config
    return plan


def unreadable(problem: str, service_type: str = "NodePort") -> list[str]:
    return [
        f"kiali-not-anonymous-when-exposed: {KIALI_URN}: Kiali Service istio-system/kiali has type {service_type} "
        f"and the auth strategy in ConfigMap istio-system/kiali cannot be read ({problem}); {SAFE}"
    ]


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ("[unknown]", "config.yaml is not visible in the plan"),
        (42, "config.yaml is not text"),
        ({"auth": {"strategy": "anonymous"}}, "config.yaml is not text"),
        ("auth: [\n", "config.yaml is not YAML: while parsing a flow node"),
        ("auth: {strategy: token\n", "config.yaml is not YAML: while parsing a flow mapping"),
        ("- auth\n", "config.yaml is not a mapping"),
        ("anonymous\n", "config.yaml is not a mapping"),
        ("auth: anonymous\n", "auth is not a mapping"),
        ("auth: [strategy, anonymous]\n", "auth is not a mapping"),
        ("auth:\n  strategy: 1\n", "auth.strategy is 1"),
        ("auth:\n  strategy: 1.0\n", "auth.strategy is 1"),
        ("auth:\n  strategy: [anonymous]\n", 'auth.strategy is ["anonymous"]'),
        ("auth:\n  strategy: false\n", "auth.strategy is false"),
    ],
)
def test_why_kialis_auth_strategy_cannot_be_read(config: Any, problem: str) -> None:
    assert lines(exposed_kiali(config)) == unreadable(problem)


def test_an_unreadable_config_is_reported_for_a_load_balancer_too() -> None:
    assert lines(exposed_kiali("- auth\n", "LoadBalancer")) == unreadable(
        "config.yaml is not a mapping", "LoadBalancer"
    )


@pytest.mark.parametrize(
    "config", ["auth:\n", "auth:\n  strategy:\n", "auth:\n  strategy: header\n", "# only\n"]
)
def test_an_empty_auth_or_strategy_is_kialis_default_token(config: str) -> None:
    assert lines(exposed_kiali(config)) == []


@pytest.mark.parametrize("strategy", ["Anonymous", " ANONYMOUS ", "anonymous"])
def test_anonymous_is_read_whatever_its_case_and_spaces(strategy: str) -> None:
    assert lines(exposed_kiali(f"auth:\n  strategy: '{strategy}'\n")) == [
        f"kiali-not-anonymous-when-exposed: {KIALI_URN}: Kiali Service istio-system/kiali has type NodePort and "
        f"ConfigMap istio-system/kiali sets auth.strategy anonymous; {SAFE}"
    ]


def test_a_kiali_config_without_config_yaml_is_kialis_default() -> None:
    plan = exposed_kiali("")
    find(plan, "istio-system/kiali", "kubernetes:core/v1:ConfigMap")["inputs"]["data"] = {"other": "x"}
    assert lines(plan) == []


def test_an_unreadable_config_of_an_internal_kiali_is_no_violation() -> None:
    assert lines(exposed_kiali("- auth\n", "ClusterIP")) == []


def test_the_kiali_config_of_another_namespace_is_not_this_kialis() -> None:
    plan = exposed_kiali("auth:\n  strategy: anonymous\n")
    config_map = find(plan, "istio-system/kiali", "kubernetes:core/v1:ConfigMap")
    config_map["inputs"]["metadata"]["namespace"] = "kiali-operator"
    assert lines(plan) == []


def test_a_config_map_of_another_name_is_not_kialis() -> None:
    plan = exposed_kiali("auth:\n  strategy: anonymous\n")
    config_map = find(plan, "istio-system/kiali", "kubernetes:core/v1:ConfigMap")
    config_map["inputs"]["metadata"]["name"] = "kiali-dashboards"
    assert lines(plan) == []


def test_another_exposed_service_is_not_kiali() -> None:
    plan = good_plan("development")
    find(plan, "istio-system/grafana")["inputs"]["spec"]["type"] = "NodePort"
    assert lines(plan) == []


@pytest.mark.parametrize("namespace", ["", 7])
def test_an_empty_or_non_text_namespace_is_no_namespace(namespace: Any) -> None:
    """The Service's namespace `""` (or 7) is the ConfigMap's missing one: the same object place."""
    plan = exposed_kiali("auth:\n  strategy: anonymous\n")
    find(plan, "istio-system/kiali")["inputs"]["metadata"]["namespace"] = namespace
    del find(plan, "istio-system/kiali", "kubernetes:core/v1:ConfigMap")["inputs"]["metadata"]["namespace"]
    assert lines(plan) == [
        f"kiali-not-anonymous-when-exposed: {KIALI_URN}: Kiali Service kiali has type NodePort and ConfigMap "
        f"kiali sets auth.strategy anonymous; {SAFE}"
    ]


def test_a_kiali_without_a_namespace_is_named_without_one() -> None:
    plan = exposed_kiali("auth:\n  strategy: anonymous\n")
    del find(plan, "istio-system/kiali")["inputs"]["metadata"]["namespace"]
    del find(plan, "istio-system/kiali", "kubernetes:core/v1:ConfigMap")["inputs"]["metadata"]["namespace"]
    assert lines(plan) == [
        f"kiali-not-anonymous-when-exposed: {KIALI_URN}: Kiali Service kiali has type NodePort and ConfigMap "
        f"kiali sets auth.strategy anonymous; {SAFE}"
    ]


# --- node-ports-valid --------------------------------------------------------------------------------


def gateway_ports(plan: dict[str, Any]) -> list[Any]:
    return find(plan, "istio-ingressgateway")["inputs"]["values"]["service"]["ports"]


def test_engine_numbers_are_floats_and_count_as_the_same_port() -> None:
    """The engine hands numbers over as floats (protobuf Struct): 31080.0 is port 31080."""
    plan = good_plan()
    gateway_ports(plan)[1]["nodePort"] = 31080.0
    assert lines(plan) == [
        f"node-ports-valid: {GATEWAY_URN}: nodePort 31080 is used twice by istio-ingressgateway"
    ]
    gateway_ports(plan)[1]["nodePort"] = 29999.0
    assert lines(plan) == [f"node-ports-valid: {GATEWAY_URN}: nodePort 29999 is outside 30000-32767"]


@pytest.mark.parametrize(
    ("value", "shown"), [(31080.5, "31080.5"), (True, "true"), ("31080x", '"31080x"'), ([31080], "[31080]")]
)
def test_a_node_port_that_is_no_whole_number_is_reported(value: Any, shown: str) -> None:
    plan = good_plan()
    gateway_ports(plan)[0]["nodePort"] = value
    assert lines(plan) == [
        f"node-ports-valid: {GATEWAY_URN}: nodePort {shown} is not an integer in 30000-32767"
    ]


@pytest.mark.parametrize("value", ["31443", " 31443 "])
def test_a_node_port_written_as_digits_is_that_port(value: str) -> None:
    plan = good_plan()
    gateway_ports(plan)[0]["nodePort"] = value
    assert lines(plan) == [
        f"node-ports-valid: {GATEWAY_URN}: nodePort 31443 is used twice by istio-ingressgateway"
    ]


@pytest.mark.parametrize(
    ("port", "inside"), [(30000, True), (32767, True), (30000 - 1, False), (32767 + 1, False)]
)
def test_the_node_port_range_includes_both_ends(port: int, inside: bool) -> None:
    plan = good_plan()
    gateway_ports(plan)[0]["nodePort"] = port
    expected = [] if inside else [f"node-ports-valid: {GATEWAY_URN}: nodePort {port} is outside 30000-32767"]
    assert lines(plan) == expected


def test_a_port_outside_the_range_used_twice_is_reported_twice() -> None:
    plan = good_plan()
    gateway_ports(plan)[0]["nodePort"] = 29999
    gateway_ports(plan)[1]["nodePort"] = 29999
    assert lines(plan) == [
        f"node-ports-valid: {GATEWAY_URN}: nodePort 29999 is outside 30000-32767",
        f"node-ports-valid: {GATEWAY_URN}: nodePort 29999 is outside 30000-32767",
        f"node-ports-valid: {GATEWAY_URN}: nodePort 29999 is used twice by istio-ingressgateway",
    ]


@pytest.mark.parametrize("value", [0, 0.0, None, "[unknown]"])
def test_a_node_port_left_to_kubernetes_or_unknown_is_not_judged(value: Any) -> None:
    plan = good_plan()
    gateway_ports(plan)[0]["nodePort"] = value
    gateway_ports(plan)[1]["nodePort"] = value
    assert lines(plan) == []


def test_ports_without_a_node_port_are_not_judged() -> None:
    plan = good_plan()
    gateway_ports(plan)[0] = {"name": "http2", "port": 80}
    gateway_ports(plan)[1] = "https"
    assert lines(plan) == []


def test_only_a_gateway_releases_values_ask_for_node_ports() -> None:
    plan = good_plan()
    find(plan, "istiod")["inputs"]["values"]["service"] = {"ports": [{"name": "x", "nodePort": 31080}]}
    assert lines(plan) == []


def test_a_gateway_chart_by_repository_path_asks_for_node_ports() -> None:
    plan = good_plan()
    find(plan, "istio-ingressgateway")["inputs"]["chart"] = "oci://registry.example/istio/charts/gateway/"
    gateway_ports(plan)[0]["nodePort"] = 29999
    assert lines(plan) == [f"node-ports-valid: {GATEWAY_URN}: nodePort 29999 is outside 30000-32767"]


@pytest.mark.parametrize("ports", [{"http2": {"nodePort": 29999}}, "29999", None])
def test_ports_that_are_not_a_list_ask_for_nothing(ports: Any) -> None:
    plan = good_plan()
    find(plan, "istio-ingressgateway")["inputs"]["values"]["service"]["ports"] = ports
    assert lines(plan) == []


def test_a_services_node_ports_are_judged_with_the_gateways() -> None:
    plan = good_plan("development")
    find(plan, "istio-system/kiali")["inputs"]["spec"]["ports"][1]["nodePort"] = 31443
    assert lines(plan) == [
        f"node-ports-valid: {GATEWAY_URN}: nodePort 31443 is used by both istio-system/kiali and istio-ingressgateway"
    ]


def test_a_config_maps_ports_are_no_node_ports() -> None:
    plan = good_plan()
    config_map = find(plan, "istio-system/kiali", "kubernetes:core/v1:ConfigMap")
    config_map["inputs"]["spec"] = {"ports": [{"nodePort": 29999}]}
    assert lines(plan) == []


# --- production-dashboards-internal ------------------------------------------------------------------


@pytest.mark.parametrize(("name", "service_type"), [("tracing", "NodePort"), ("prometheus", "LoadBalancer")])
def test_each_dashboard_is_internal_on_production(name: str, service_type: str) -> None:
    plan = good_plan()
    find(plan, f"istio-system/{name}")["inputs"]["spec"]["type"] = service_type
    assert lines(plan) == [
        f"production-dashboards-internal: {urn('kubernetes:core/v1:Service', f'istio-system/{name}')}: dashboard "
        f"Service istio-system/{name} has type {service_type}; on production dashboards must be ClusterIP"
    ]


def test_a_dashboard_named_service_outside_istio_system_is_not_a_dashboard() -> None:
    plan = good_plan()
    grafana = find(plan, "istio-system/grafana")["inputs"]
    grafana["metadata"]["namespace"] = "monitoring"
    grafana["spec"]["type"] = "LoadBalancer"
    assert lines(plan) == []


def test_an_exposed_service_that_is_no_dashboard_is_allowed_on_production() -> None:
    plan = good_plan()
    plan["resources"].append(
        resource(
            "kubernetes:core/v1:Service",
            "istio-system/loki",
            {"metadata": {"name": "loki", "namespace": "istio-system"}, "spec": {"type": "LoadBalancer"}},
        )
    )
    assert lines(plan) == []


@pytest.mark.parametrize("service_type", ["ClusterIP", "", None, ["NodePort"]])
def test_a_cluster_ip_or_untyped_dashboard_is_internal(service_type: Any) -> None:
    """A type that is no text is no type: Kubernetes' default, ClusterIP (and no crash)."""
    plan = good_plan()
    find(plan, "istio-system/grafana")["inputs"]["spec"]["type"] = service_type
    assert lines(plan) == []


@pytest.mark.parametrize("metadata", [{}, {"name": ""}, {"name": 7}])
def test_a_dashboard_named_by_its_pulumi_name_alone(metadata: dict[str, Any]) -> None:
    """Without metadata.name (or an empty or non-text one) the object is named from the Pulumi name
    (auto-naming starts there)."""
    plan = good_plan()
    tracing = resource(
        "kubernetes:core/v1:Service",
        "tracing",
        {"metadata": {"namespace": "istio-system"} | metadata, "spec": {"type": "NodePort"}},
    )
    plan["resources"].append(tracing)
    assert lines(plan) == [
        f"production-dashboards-internal: {tracing['urn']}: dashboard Service istio-system/tracing has type "
        "NodePort; on production dashboards must be ClusterIP"
    ]


# --- the version rules -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "shown"), [(1.28, "1.28"), (28.0, "28"), (1, "1"), ({"min": "1.28.0"}, '{"min": "1.28.0"}')]
)
def test_a_version_that_is_not_text_is_shown_as_json(version: Any, shown: str) -> None:
    plan = good_plan()
    find(plan, "istiod")["inputs"]["version"] = version
    assert lines(plan) == [
        f"exact-chart-versions: {ISTIOD_URN}: chart istiod version {shown} is not an exact x.y.z version "
        "(no ranges, ^, ~, *, x, pre-releases or empty)"
    ]


def test_a_version_json_cannot_show_is_shown_as_python_does() -> None:
    plan = good_plan()
    find(plan, "istiod")["inputs"]["version"] = date(2026, 1, 15)
    assert lines(plan) == [
        f"exact-chart-versions: {ISTIOD_URN}: chart istiod version datetime.date(2026, 1, 15) is not an exact "
        "x.y.z version (no ranges, ^, ~, *, x, pre-releases or empty)"
    ]


def test_an_unknown_version_is_not_judged() -> None:
    plan = good_plan()
    find(plan, "istiod")["inputs"]["version"] = "[unknown]"
    assert lines(plan) == []


@pytest.mark.parametrize(("chart", "shown"), [("istio/istiod", "istiod"), ("", "istiod"), (None, "istiod")])
def test_a_chart_is_named_by_its_last_path_part_else_by_the_release(chart: Any, shown: str) -> None:
    plan = good_plan()
    find(plan, "istiod")["inputs"].update(chart=chart, version="1.28")
    assert lines(plan) == [
        f'exact-chart-versions: {ISTIOD_URN}: chart {shown} version "1.28" is not an exact x.y.z version '
        "(no ranges, ^, ~, *, x, pre-releases or empty)"
    ]


def test_a_release_without_a_name_is_named_by_its_urn() -> None:
    plan = good_plan()
    base = find(plan, "istio-base")
    base["protect"] = False
    del base["name"]
    assert lines(plan) == [
        f"production-base-protected: {BASE_URN}: base release istio-base holds Istio's CRDs and has "
        "protect: false; production requires protect: true"
    ]


@pytest.mark.parametrize("protect", [None, 1, "true"])
def test_only_protect_true_protects_the_base(protect: Any) -> None:
    plan = good_plan()
    find(plan, "istio-base")["protect"] = protect
    assert lines(plan) == [
        f"production-base-protected: {BASE_URN}: base release istio-base holds Istio's CRDs and has "
        "protect: false; production requires protect: true"
    ]


def test_only_the_base_chart_must_be_protected() -> None:
    plan = good_plan()
    assert find(plan, "istiod")["protect"] is False
    assert lines(plan) == []


@pytest.mark.parametrize("chart", ["cni", "ztunnel", "base", "gateway", "istiod"])
def test_every_istio_chart_is_held_to_upstream_support(chart: str) -> None:
    plan = good_plan()
    plan["resources"].append(release(f"istio-{chart}-old", chart, {}, protect=True))
    find(plan, f"istio-{chart}-old")["inputs"]["version"] = "1.26.3"
    name = urn("kubernetes:helm.sh/v3:Release", f"istio-{chart}-old")
    assert lines(plan) == [
        f"istio-version-supported: {name}: Istio 1.26.3 (chart {chart}) is out of support: 1.26 went out of "
        "support on 2025-12-11 (six weeks after 1.28.0 of 2025-10-30); on 2026-01-15 use 1.27 or newer"
    ]


def test_another_chart_is_not_held_to_istios_support_or_table() -> None:
    plan = good_plan()
    plan["resources"].append(release("kiali-server", "kiali-server", {}))
    find(plan, "kiali-server")["inputs"]["version"] = "1.26.3"
    plan["resources"].append(release("cert-manager", "cert-manager", {}))
    find(plan, "cert-manager")["inputs"]["version"] = "1.40.0"
    assert lines(plan) == []


@pytest.mark.parametrize("version", ["1.26", "~1.26.3", 1.26])
def test_an_inexact_old_version_is_only_exact_chart_versions_business(version: Any) -> None:
    plan = good_plan()
    find(plan, "istiod")["inputs"]["version"] = version
    assert [line.split(":")[0] for line in lines(plan)] == ["exact-chart-versions"]


@pytest.mark.parametrize("version", ["1.40", "^1.40.0"])
def test_an_inexact_new_version_is_not_unknown_to_the_table(version: str) -> None:
    plan = good_plan()
    find(plan, "istiod")["inputs"]["version"] = version
    assert [line.split(":")[0] for line in lines(plan)] == ["exact-chart-versions"]


def test_the_known_rule_names_each_unknown_release() -> None:
    plan = good_plan()
    for name in ("istiod", "istio-ingressgateway"):
        find(plan, name)["inputs"]["version"] = "1.40.0"
    reason = (
        "is unknown to the support table: 1.40 is newer than 1.31, the newest minor of the support table "
        "(checked 2026-12-02); check upstream (https://istio.io/latest/docs/releases/supported-releases/) and "
        "update policy/istio_releases.py"
    )
    assert lines(plan) == [
        f"istio-version-known: {GATEWAY_URN}: Istio 1.40.0 (chart gateway) {reason}",
        f"istio-version-known: {ISTIOD_URN}: Istio 1.40.0 (chart istiod) {reason}",
    ]


# --- production-ambient-ga ---------------------------------------------------------------------------

GA = "on production ambient needs Istio 1.24.0 or newer, where it is GA"


@pytest.mark.parametrize(("version", "below"), [("1.24.0", False), ("1.23.6", True), ("1.22.0", True)])
def test_ambient_ga_starts_at_1_24_0(version: str, below: bool) -> None:
    plan = ambient_plan()
    find(plan, "ztunnel")["inputs"]["version"] = version
    expected = [
        f"production-ambient-ga: {ZTUNNEL_URN}: ztunnel release ztunnel runs ambient mode at Istio {version}; {GA}"
    ]
    assert lines(plan, BEFORE_AMBIENT_GA) == (expected if below else [])


@pytest.mark.parametrize(
    ("values", "setting"),
    [
        ({}, None),
        ({"profile": "default"}, None),
        ({"ambient": {"enabled": False}}, None),
        ({"ambient": {"enabled": "true"}}, None),
        ({"ambient": {"enabled": True}}, "ambient.enabled: true"),
        ({"cni": {"ambient": {"enabled": True}}}, "cni.ambient.enabled: true"),
        ({"profile": "ambient", "ambient": {"enabled": True}}, "profile ambient"),
    ],
)
def test_istio_cni_is_ambient_only_when_set_so(values: dict[str, Any], setting: str | None) -> None:
    """istio-cni also serves sidecars alone (the CNI plugin instead of istio-init): that is not ambient."""
    plan = ambient_plan()
    find(plan, "istio-cni")["inputs"].update(values=values, version="1.23.6")
    expected = [
        f"production-ambient-ga: {CNI_URN}: cni release istio-cni runs ambient mode ({setting}) at Istio 1.23.6; {GA}"
    ]
    assert lines(plan, BEFORE_AMBIENT_GA) == ([] if setting is None else expected)


def test_an_old_istiod_without_the_ambient_profile_is_judged_by_its_ambient_namespaces_only() -> None:
    plan = ambient_plan()
    istiod = find(plan, "istiod")["inputs"]
    del istiod["values"]["profile"]
    istiod["version"] = "1.23.6"
    assert lines(plan, BEFORE_AMBIENT_GA) == [
        f"production-ambient-ga: {APPS_URN}: namespace apps is ambient (istio.io/dataplane-mode=ambient) and "
        f"istiod release istiod is at Istio 1.23.6; {GA}"
    ]
    find(plan, "apps-ambient")["inputs"]["metadata"]["labels"]["istio.io/dataplane-mode"] = "none"
    assert lines(plan, BEFORE_AMBIENT_GA) == []


def test_an_ambient_namespace_names_every_old_istiod() -> None:
    plan = good_plan()
    find(plan, "istiod")["inputs"]["version"] = "1.23.6"
    plan["resources"].append(release("istiod-canary", "istiod", {}))
    find(plan, "istiod-canary")["inputs"]["version"] = "1.22.8"
    plan["resources"].append(release("istiod-next", "istiod", {}))  # at 1.28.2: newer than GA, not named
    plan["resources"].append(
        resource(
            "kubernetes:core/v1:Namespace",
            "apps",
            {"metadata": {"name": "apps", "labels": {"istio.io/dataplane-mode": "ambient"}}},
        )
    )
    assert lines(plan, BEFORE_AMBIENT_GA) == [
        f"production-ambient-ga: {urn('kubernetes:core/v1:Namespace', 'apps')}: namespace apps is ambient "
        "(istio.io/dataplane-mode=ambient) and istiod release istiod is at Istio 1.23.6 and istiod release "
        f"istiod-canary is at Istio 1.22.8; {GA}"
    ]


@pytest.mark.parametrize("version", ["1.23", "^1.23.0", "[unknown]"])
def test_an_inexact_or_unknown_ambient_version_is_not_judged(version: str) -> None:
    plan = ambient_plan()
    find(plan, "ztunnel")["inputs"]["version"] = version
    assert [line.split(":")[0] for line in lines(plan, BEFORE_AMBIENT_GA)] == (
        [] if version == "[unknown]" else ["exact-chart-versions"]
    )


# --- gateway-api-crds-minimum and gateway-api-crds-known ----------------------------------------------


def crd_annotations(plan: dict[str, Any], plural: str) -> dict[str, Any]:
    return find(plan, f"gateway-api-crds:{plural}.gateway.networking.k8s.io")["inputs"]["metadata"][
        "annotations"
    ]


NEEDS = "Istio 1.28.2 (chart istiod) needs v1.0.0 or newer"


@pytest.mark.parametrize(
    ("bundle", "says"),
    [
        (None, "has no gateway.networking.k8s.io/bundle-version annotation"),
        ("v1.3.0-rc.1", 'has bundle-version "v1.3.0-rc.1", no release like v1.2.1'),
        ("1.4.1", 'has bundle-version "1.4.1", no release like v1.2.1'),
        (1.4, "has bundle-version 1.4, no release like v1.2.1"),
        ("v0.99.0", "has bundle-version v0.99.0"),
    ],
)
def test_a_bundle_version_that_is_missing_or_no_release_is_reported(bundle: Any, says: str) -> None:
    plan = ambient_plan()
    annotations = crd_annotations(plan, "gateways")
    if bundle is None:
        del annotations["gateway.networking.k8s.io/bundle-version"]
    else:
        annotations["gateway.networking.k8s.io/bundle-version"] = bundle
    assert lines(plan) == [
        f"gateway-api-crds-minimum: {crd_urn('gateways')}: Gateway API CRD gateways.gateway.networking.k8s.io "
        f"{says}; {NEEDS}"
    ]


@pytest.mark.parametrize("bundle", ["v1.0.0", "v1.10.0", "[unknown]", "[secret]"])
def test_a_crd_at_the_minimum_or_unknown_passes(bundle: str) -> None:
    plan = ambient_plan()
    crd_annotations(plan, "gateways")["gateway.networking.k8s.io/bundle-version"] = bundle
    assert lines(plan) == []


def test_only_gateway_api_crds_are_held_to_the_table() -> None:
    plan = ambient_plan()
    other = gateway_api_crd("httproutes", "v0.1.0")
    other["inputs"]["metadata"]["name"] = "httproutes.example.com"
    other["urn"] = urn(
        "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition", "httproutes.example.com"
    )
    plan["resources"].append(other)
    assert lines(plan) == []


def test_the_newest_of_istiod_and_base_sets_the_minimum() -> None:
    """A base chart newer than istiod (mid-upgrade: base first) already asks for its minimums."""
    plan = ambient_plan()
    plan["resources"].insert(-1, gateway_api_crd("tlsroutes"))
    assert lines(plan) == []
    find(plan, "istio-base")["inputs"]["version"] = "1.30.3"
    assert lines(plan) == [
        f"gateway-api-crds-minimum: {crd_urn('tlsroutes')}: Gateway API CRD tlsroutes.gateway.networking.k8s.io "
        "has bundle-version v1.4.1; Istio 1.30.3 (chart base) needs v1.5.0 or newer"
    ]


def test_without_an_exact_control_plane_version_the_crds_are_not_judged() -> None:
    plan = ambient_plan()
    crd_annotations(plan, "gateways")["gateway.networking.k8s.io/bundle-version"] = "v0.5.0"
    find(plan, "istiod")["inputs"]["version"] = "[unknown]"
    find(plan, "istio-base")["inputs"]["version"] = "[unknown]"
    assert lines(plan) == []


def test_a_minor_older_than_the_gateway_api_table_is_unknown_too() -> None:
    plan = ambient_plan("development")
    for name in ("istiod", "istio-base", "istio-cni", "ztunnel"):
        find(plan, name)["inputs"]["version"] = "1.21.6"
    crd_annotations(plan, "gateways")["gateway.networking.k8s.io/bundle-version"] = "v0.5.0"
    assert lines(plan, date(2024, 6, 1)) == [
        f"gateway-api-crds-known: {ISTIOD_URN}: Istio 1.21.6 (chart istiod) is unknown to the Gateway API table, "
        "which knows 1.22 to 1.31: the 5 Gateway API CRDs are not checked; add 1.21 to "
        "components/gateway_api_versions.py from istio/istio at that tag"
    ]


def test_an_unknown_minor_without_gateway_api_crds_is_no_gateway_api_concern() -> None:
    plan = good_plan()
    find(plan, "istiod")["inputs"]["version"] = "1.40.0"
    assert [line.split(":")[0] for line in lines(plan)] == ["istio-version-known"]


# --- ambient-namespaces-not-injected ------------------------------------------------------------------


def with_apps_labels(labels: dict[str, Any]) -> dict[str, Any]:
    plan = ambient_plan()
    find(plan, "apps-ambient")["inputs"]["metadata"]["labels"].update(labels)
    return plan


def both(injected: str) -> list[str]:
    return [
        f"ambient-namespaces-not-injected: {APPS_URN}: namespace apps is ambient (istio.io/dataplane-mode=ambient "
        f"on NamespacePatch apps-ambient) and injected ({injected}); sidecars take precedence over ztunnel: "
        "label it for one data plane"
    ]


@pytest.mark.parametrize(
    ("labels", "injected"),
    [
        ({"istio-injection": "disabled"}, None),
        ({"istio-injection": "Enabled"}, None),
        ({"istio.io/rev": ""}, None),
        ({"istio.io/rev": "[unknown]"}, None),
        ({"istio.io/rev": None}, None),
        ({"istio.io/rev": "default"}, "istio.io/rev=default on NamespacePatch apps-ambient"),
        (
            {"istio-injection": "enabled", "istio.io/rev": "canary"},
            "istio-injection=enabled on NamespacePatch apps-ambient, istio.io/rev=canary on NamespacePatch "
            "apps-ambient",
        ),
    ],
)
def test_what_injects_an_ambient_namespace(labels: dict[str, Any], injected: str | None) -> None:
    assert lines(with_apps_labels(labels)) == ([] if injected is None else both(injected))


@pytest.mark.parametrize("mode", ["none", "[unknown]", "Ambient"])
def test_an_injected_namespace_that_is_not_ambient_is_fine(mode: str) -> None:
    plan = with_apps_labels({"istio-injection": "enabled", "istio.io/dataplane-mode": mode})
    assert lines(plan) == []


def test_namespaces_are_merged_by_their_kubernetes_name_not_the_pulumi_one() -> None:
    plan = ambient_plan()
    plan["resources"].append(namespace_patch("apps-injection", "apps", {"istio-injection": "enabled"}))
    plan["resources"].append(
        namespace_patch("apps-ambient-2", "apps", {"istio.io/dataplane-mode": "ambient"})
    )
    plan["resources"].append(namespace_patch("other-injection", "other", {"istio-injection": "enabled"}))
    assert lines(plan) == [
        f"ambient-namespaces-not-injected: {APPS_URN}: namespace apps is ambient (istio.io/dataplane-mode=ambient "
        "on NamespacePatch apps-ambient, NamespacePatch apps-ambient-2) and injected (istio-injection=enabled on "
        "NamespacePatch apps-injection); sidecars take precedence over ztunnel: label it for one data plane"
    ]


def test_a_namespace_of_another_kind_is_no_namespace() -> None:
    plan = ambient_plan()
    plan["resources"].append(
        resource(
            "kubernetes:core/v1:ConfigMap",
            "apps",
            {"metadata": {"name": "apps", "labels": {"istio-injection": "enabled"}}},
        )
    )
    assert lines(plan) == []


# --- the rules together ------------------------------------------------------------------------------


def test_rule_by_id() -> None:
    assert [rule_by_id(rule.id) for rule in RULES] == list(RULES)
    assert rule_by_id("node-ports-valid").check is rules.node_ports_valid
    with pytest.raises(KeyError) as raised:
        rule_by_id("no-such-rule")
    assert raised.value.args == ("no-such-rule",)


def test_the_pack_describes_each_rule() -> None:
    assert [(p.name, p.description) for p in pack.build_policies()] == [
        ("exact-chart-versions", "Helm releases and v4 Charts pin an exact x.y.z chart version."),
        ("node-ports-valid", "nodePorts are in 30000-32767 and used once per stack."),
        (
            "production-dashboards-internal",
            "On production, the kiali, prometheus, grafana and tracing Services are ClusterIP.",
        ),
        (
            "production-base-protected",
            "On production, the Istio base release or v4 Chart (the CRDs) has protect: true.",
        ),
        (
            "production-ambient-ga",
            "On production, ambient mode (istio-cni or istiod with the ambient profile, ztunnel, an ambient "
            "namespace's istiod) runs Istio 1.24.0 or newer, where it is GA.",
        ),
        ("istio-version-supported", "Istio charts use a minor release inside upstream support."),
        ("istio-version-supported-advisory", "Istio charts use a minor release inside upstream support."),
        (
            "istio-version-known",
            "Istio charts use a version the support table knows (advisory: check upstream otherwise).",
        ),
        (
            "gateway-api-crds-minimum",
            "Gateway API CRDs are at or above the release the newest istiod or base version needs of them.",
        ),
        (
            "gateway-api-crds-known",
            "With Gateway API CRDs, the newest Istio is a minor the Gateway API table knows (advisory: "
            "update the table otherwise).",
        ),
        (
            "kiali-not-anonymous-when-exposed",
            "A NodePort or LoadBalancer Kiali does not use the anonymous auth strategy.",
        ),
        (
            "kiali-not-anonymous-when-exposed-advisory",
            "A NodePort or LoadBalancer Kiali does not use the anonymous auth strategy.",
        ),
        (
            "ambient-namespaces-not-injected",
            "No namespace is both ambient (istio.io/dataplane-mode=ambient) and injected (istio-injection=enabled "
            "or istio.io/rev).",
        ),
        (
            "explicit-provider",
            "Kubernetes resources use the stack's explicit provider, never a default provider.",
        ),
        (
            "commands-name-cluster",
            "Every kubectl call in a Command passes the stack's --context (and --kubeconfig when set).",
        ),
    ]


def test_violations_of_one_rule_are_ordered_by_urn() -> None:
    plan = good_plan()
    for name in ("istio-system/tracing", "istio-system/grafana", "istio-system/kiali"):
        find(plan, name)["provider"] = None
    assert [line.split(": ")[1] for line in lines(plan)] == sorted(
        [GRAFANA_URN, KIALI_URN, urn("kubernetes:core/v1:Service", "istio-system/tracing")]
    )


@pytest.mark.parametrize("resources", [None, []])
def test_a_plan_without_resources_has_no_violations(resources: Any) -> None:
    assert check_plan({"resources": resources}, TODAY) == []
    assert check_plan({}, TODAY) == []


@pytest.mark.parametrize("resources", [{"urn": "x"}, "resources", [{"urn": "x"}, ["urn", "y"]]])
def test_a_plan_whose_resources_are_not_a_list_of_objects_is_refused(resources: Any) -> None:
    with pytest.raises(ValueError, match=r"^plan\['resources'\] must be a list of resource objects$"):
        check_plan({"resources": resources}, TODAY)
