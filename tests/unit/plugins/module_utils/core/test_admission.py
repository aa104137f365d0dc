"""Unit tests for the admission policy core (plugins/module_utils/core/admission.py).

The policies' answers for the shared table are checked on the real API server in
tests/integration/test_admission.py; here the filter's answers and the rendered inputs.
"""

import json
from fractions import Fraction

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.gpu_slicing.eks.plugins.filter.gpu_slicing import shared_gpu_pod_spec
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core import admission
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.sharing import build_plan
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.errors import InvalidInput

from .admission_cases import CASES, PLAN, ROUNDED


def seed_pod(value, selector=None):
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "main", "image": "x",
                                    "resources": {"limits": {"gpu": value}, "requests": {"gpu": value}}}]}}
    if selector:
        pod["spec"]["nodeSelector"] = {"nvidia.com/device-plugin.config": selector}
    return pod


@pytest.mark.parametrize("value,selector,expected", CASES)
def test_filter_answers_the_shared_table(value, selector, expected):
    """The filter (profile = the selector's, else the default) gives the table's answer."""
    if isinstance(expected, str):
        with pytest.raises(AnsibleFilterError):
            shared_gpu_pod_spec(seed_pod(value, selector), PLAN, selector)
        return
    profile, resource, count = expected
    out = shared_gpu_pod_spec(seed_pod(value, selector), PLAN, selector)["spec"]
    assert out["containers"][0]["resources"] == {"limits": {resource: count}, "requests": {resource: count}}
    assert out["nodeSelector"] == {"nvidia.com/device-plugin.config": profile}


@pytest.mark.parametrize("value,selector,expected", CASES)
def test_decide_is_the_filter_rule(value, selector, expected):
    if isinstance(expected, str):
        with pytest.raises(InvalidInput):
            admission.decide(PLAN, value, selector)
    else:
        assert admission.decide(PLAN, value, selector) == expected


def test_rounded_case_is_served_by_the_filter():
    """The filter serves the value the API server rounds up (see admission_cases.ROUNDED)."""
    value, selector, expected, dummy = ROUNDED
    assert admission.decide(PLAN, value, selector) == expected
    out = shared_gpu_pod_spec(seed_pod(value, selector), PLAN, selector)["spec"]
    assert out["containers"][0]["resources"]["limits"] == {expected[1]: expected[2]}


def test_table_limits_are_the_rule_boundary():
    """Each shared profile's rendered limit is accepted by decide() and one nano unit more is not."""
    table = admission.profile_table(PLAN)
    plan = build_plan(PLAN)
    assert set(table) == set(plan.profile_names)
    for prof in plan.profiles:
        row = table[prof.name]
        assert row["resource"] == plan.advertised_resource(prof)
        if not prof.shared:
            assert row["max"] == "" and row["fail"] == "false"
            continue
        nanos = int(row["max"][:-1])
        assert row["max"].endswith("n")
        admission.decide(plan, Fraction(nanos, admission.NANO), prof.name)
        with pytest.raises(InvalidInput):
            admission.decide(plan, Fraction(nanos + 1, admission.NANO), prof.name)
    assert table["ts-4"]["max"] == "250000000n" and table["mps-3"]["max"] == "333333333n"
    assert table["ts-4"]["fail"] == "true" and table["mps-3"]["fail"] == "true" and table["ts-2"]["fail"] == "false"


def objects(**options):
    return {(o["kind"], o["metadata"]["name"]): o for o in admission.render_policies(PLAN, options)}


def test_render_objects_and_scope():
    objs = objects(plugin_namespace="nvdp", namespace_label="team.example/gpu", namespace_label_value="yes")
    names = ["gpu-slicing-eks", "gpu-slicing-eks-workloads", "gpu-slicing-eks-cronjobs"]
    assert sorted(objs) == sorted(
        [(kind, n) for n in names for kind in ("MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding",
                                               "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")]
        + [(kind, n + "-warn") for n in names for kind in ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")])
    for (kind, name), obj in objs.items():
        assert obj["apiVersion"] == "admissionregistration.k8s.io/v1"
        text = json.dumps(obj)
        assert "@S@" not in text and "@M@" not in text and "@JS@" not in text and "@JM@" not in text and "@HM@" not in text
        if kind.endswith("Policy"):
            assert obj["spec"]["matchConstraints"]["namespaceSelector"] == {"matchExpressions": [
                {"key": "team.example/gpu", "operator": "In", "values": ["yes"]},
                {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system", "nvdp"]}]}
        else:
            assert obj["spec"]["policyName"] == name
    rules = objs[("MutatingAdmissionPolicy", "gpu-slicing-eks")]["spec"]["matchConstraints"]["resourceRules"]
    assert rules == [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}]
    rules = objs[("MutatingAdmissionPolicy", "gpu-slicing-eks-workloads")]["spec"]["matchConstraints"]["resourceRules"]
    assert sorted(r for rule in rules for r in rule["resources"]) == [
        "daemonsets", "deployments", "jobs", "replicasets", "statefulsets"]
    workloads = json.dumps(objs[("MutatingAdmissionPolicy", "gpu-slicing-eks-workloads")])
    assert "object.spec.template.spec.containers" in workloads and "'/spec/template/spec/containers/'" in workloads
    cron = json.dumps(objs[("MutatingAdmissionPolicy", "gpu-slicing-eks-cronjobs")])
    assert "object.spec.jobTemplate.spec.template.spec.containers" in cron
    for name in names:
        assert objs[("ValidatingAdmissionPolicyBinding", name)]["spec"]["validationActions"] == ["Deny"]
        assert objs[("ValidatingAdmissionPolicyBinding", name + "-warn")]["spec"]["validationActions"] == ["Warn"]
        assert "validationActions" not in objs[("MutatingAdmissionPolicyBinding", name)]["spec"]


def test_rendered_cel_holds_the_table():
    mutating = objects()[("MutatingAdmissionPolicy", "gpu-slicing-eks")]
    variables = {v["name"]: v["expression"] for v in mutating["spec"]["variables"]}
    assert json.loads(variables["table"]) == admission.profile_table(PLAN)
    assert "'ts-2'" not in variables["profile"] and '"ts-2"' in variables["profile"]  # the default profile
    assert mutating["spec"]["mutations"][0]["patchType"] == "JSONPatch"
    assert mutating["spec"]["reinvocationPolicy"] == "Never"


def test_one_profile_never_warns():
    """With one profile there is nothing to warn about: no -warn policy is written (each policy
    matching a pod costs the API server a conversion of the pod)."""
    objs = admission.render_policies({"profiles": [{"name": "ts-4", "strategy": "time-slicing", "replicas": 4}]})
    assert not [o for o in objs if o["metadata"]["name"].endswith("-warn")]
    assert len(objs) == 12
    assert {(o["kind"], o["metadata"]["name"]) for o in objs} < set(admission.object_names())


def test_actions_selectable():
    binding = objects(validation_actions=["Warn", "Audit"])[("ValidatingAdmissionPolicyBinding", "gpu-slicing-eks")]
    assert binding["spec"]["validationActions"] == ["Warn", "Audit"]
    binding = objects(validation_actions="Audit")[("ValidatingAdmissionPolicyBinding", "gpu-slicing-eks")]
    assert binding["spec"]["validationActions"] == ["Audit"]


@pytest.mark.parametrize("options,field", [
    ({"validation_actions": ["Deny", "Warn"]}, "admission.validation_actions"),
    ({"validation_actions": ["Block"]}, "admission.validation_actions"),
    ({"validation_actions": []}, "admission.validation_actions"),
    ({"namespace_label": "bad key!"}, "admission.namespace_label"),
    ({"namespace_label_value": ""}, "admission.namespace_label_value"),
    ({"plugin_namespace": "Bad_NS"}, "admission.plugin_namespace"),
    ({"name": "UPPER"}, "admission.name"),
    ({"colour": "red"}, "admission.colour"),
])
def test_bad_options_name_the_field(options, field):
    with pytest.raises(InvalidInput) as err:
        admission.render_policies(PLAN, options)
    assert err.value.field == field and "Fix:" in str(err.value)


def test_bad_plan_renders_nothing():
    with pytest.raises(InvalidInput) as err:
        admission.render_policies({"profiles": [{"name": "x", "strategy": "time-slicing", "replicas": 1}]})
    assert err.value.field == "profiles[0].replicas"


@pytest.mark.parametrize("replicas", range(2, 49))
def test_table_boundary_for_every_replica_count(replicas):
    table = admission.profile_table({"profiles": [{"name": "m", "strategy": "mps", "replicas": replicas}]})
    assert table["m"]["max"] == "%dn" % (admission.NANO // replicas)


def test_table_refuses_to_drift_from_the_rule(monkeypatch):
    """Were sharing's check to move its boundary, the table would fail rather than render stale CEL."""
    def strict(plan, value, profile_name=None):
        if Fraction(value) >= Fraction(1, 5):
            raise InvalidInput("x", value, "fix")
        return profile_name, "nvidia.com/gpu", 1
    monkeypatch.setattr(admission, "decide", strict)
    with pytest.raises(InvalidInput) as err:
        admission.profile_table(PLAN)
    assert "boundary" in str(err.value)


def test_object_names_are_what_render_writes():
    objs = admission.render_policies(PLAN, {"name": "x"})
    assert admission.object_names("x") == [(o["kind"], o["metadata"]["name"]) for o in objs]


def test_write_order_validating_first_and_without_mutating():
    objs = admission.render_policies(PLAN)
    order = [o["kind"] for o in admission.write_order(objs)]
    assert order.index("MutatingAdmissionPolicy") > max(i for i, k in enumerate(order) if k.startswith("Validating"))
    assert not [o for o in admission.write_order(objs, mutating=False) if o["kind"].startswith("Mutating")]
    assert len(admission.write_order(objs, mutating=False)) == 12


def test_scope_of_reads_back_the_rendered_scope():
    objs = admission.render_policies(PLAN, {"namespace_label": "team/gpu", "namespace_label_value": "yes",
                                            "validation_actions": ["Warn", "Audit"]})
    policy, binding = [o for o in objs if o["metadata"]["name"] == "gpu-slicing-eks" and "Validating" in o["kind"]]
    assert admission.scope_of(policy, binding) == ("team/gpu", "yes", ["Warn", "Audit"])
    other = dict(policy, metadata={"name": "gpu-slicing-eks", "labels": {}})
    assert admission.scope_of(other, binding) is None
    assert admission.scope_of(None, binding) is None
    assert admission.foreign(other) and not admission.foreign(policy) and not admission.foreign(None)


def test_removal_order_is_the_reverse_of_the_write_order():
    written = [(o["kind"], o["metadata"]["name"]) for o in admission.write_order(admission.render_policies(PLAN))]
    assert admission.removal_order() == list(reversed(written))


def test_pod_validating_policies_see_only_marked_pods_when_the_mutating_policy_is_written():
    """Each policy that matches a pod costs the API server a CEL conversion of the pod: with the
    mutating policy the pods' validating policies select on the mark it sets; without it (a cluster
    that does not serve it) they see every pod of the opted-in namespaces."""
    selector = {"matchLabels": {admission.LABEL_CHECK: admission.LABEL_CHECK_VALUE}}
    for mutating in (True, False):
        objs = {(o["kind"], o["metadata"]["name"]): o for o in admission.render_policies(PLAN, mutating=mutating)}
        assert (("MutatingAdmissionPolicy", "gpu-slicing-eks") in objs) is mutating
        for name in ("gpu-slicing-eks", "gpu-slicing-eks-warn"):
            match = objs[("ValidatingAdmissionPolicy", name)]["spec"]["matchConstraints"]
            assert match.get("objectSelector") == (selector if mutating else None), (name, mutating)
        # Workloads' own labels say nothing of their template: their validating policies see them all.
        for name in ("gpu-slicing-eks-workloads", "gpu-slicing-eks-cronjobs"):
            assert "objectSelector" not in objs[("ValidatingAdmissionPolicy", name)]["spec"]["matchConstraints"]
    objs = {(o["kind"], o["metadata"]["name"]): o for o in admission.render_policies(PLAN)}
    pods = objs[("MutatingAdmissionPolicy", "gpu-slicing-eks")]["spec"]
    assert admission.LABEL_CHECK in pods["mutations"][0]["jsonPatch"]["expression"]
    assert "check" in [v["name"] for v in pods["variables"]]
    workloads = objs[("MutatingAdmissionPolicy", "gpu-slicing-eks-workloads")]["spec"]
    assert admission.LABEL_CHECK not in workloads["mutations"][0]["jsonPatch"]["expression"]
