"""The admission_policy module on the local cluster's real v1.36.3 API server: check mode writes
nothing, a run writes every policy and binding (with a diff), a second run changes nothing, a
changed option updates only what it touches, one profile drops the -warn pairs, an object of the
same name that gpu_slicing.eks did not write stops the run before any write, and absent removes
everything (twice: the second changes nothing).

Version awareness runs on a second local cluster whose API server leaves MutatingAdmissionPolicy
and its binding out (``--runtime-config ...mutatingadmissionpolicies=false,...bindings=false`` and
the admission plugin disabled): an emulation, at the API boundary, of a cluster before Kubernetes
1.36, where discovery does not list the kinds. What
the policies do to pods is in test_admission.py; bad input in test_bad_input.py.
"""

from __future__ import annotations

import json
import os
import tempfile

import pytest
import yaml

from playbook_runner import run_module, run_playbook, task_results

from ansible_collections.gpu_slicing.eks.plugins.module_utils.core import admission

pytestmark = pytest.mark.integration

NAME = "gse-ap"
PROFILES = [{"name": "ts-4", "replicas": 4}, {"name": "ts-2", "replicas": 2, "rename_by_default": True}]
KINDS = ("mutatingadmissionpolicies", "mutatingadmissionpolicybindings", "validatingadmissionpolicies",
         "validatingadmissionpolicybindings")


def args(**overrides):
    out = {"name": NAME, "profiles": PROFILES, "namespace_label": "gse-ap/enabled", "namespace_label_value": "yes"}
    out.update(overrides)
    return out


def run(c, check=False, diff=False, **overrides):
    return run_module("admission_policy", args(**overrides), kubeconfig=str(c.kubeconfig), check=check, diff=diff)


def written(c, name=NAME):
    """{kind/name: (uid, generation)} of the admission objects under ``name``. Not the
    resourceVersion: the API server writes a ValidatingAdmissionPolicy's status (its type check)
    on its own after each change."""
    out = {}
    for kind in KINDS:
        p = c.kubectl("get", kind, "-o", "json", check=False)
        if p.returncode != 0:
            continue
        for item in json.loads(p.stdout)["items"]:
            if item["metadata"]["name"].startswith(name):
                out["%s/%s" % (kind, item["metadata"]["name"])] = (item["metadata"]["uid"], item["metadata"]["generation"])
    return out


@pytest.fixture(scope="module")
def cluster(local_cluster):
    yield local_cluster
    run_module("admission_policy", {"name": NAME, "state": "absent"}, kubeconfig=str(local_cluster.kubeconfig))


def test_check_mode_writes_nothing(cluster):
    result = run(cluster, check=True)
    assert not result.failed, result
    assert result.changed
    assert {o["action"] for o in result["objects"]} == {"created"} and len(result["objects"]) == 18
    assert written(cluster) == {}


def test_present_writes_policies_and_bindings_with_diff(cluster):
    result = run(cluster, diff=True)
    assert not result.failed, result
    assert result.changed and result["mutating_policy_served"] and result["validating_policy_served"]
    assert [(o["kind"], o["name"]) for o in result["objects"]] == [
        (o["kind"], o["metadata"]["name"]) for o in admission.write_order(admission.render_policies(
            {"profiles": PROFILES}, {"name": NAME}))]
    assert len(written(cluster)) == 18
    assert len(result["diff"]) == 18 and all(d["after"] for d in result["diff"])
    assert result["scope"] == {"namespace_label": "gse-ap/enabled", "namespace_label_value": "yes",
                               "excluded_namespaces": ["kube-system", "nvidia-device-plugin"]}
    assert result["profile_table"]["ts-2"]["resource"] == "nvidia.com/gpu.shared"
    assert result["profile_table"]["ts-4"]["max"] == "250000000n"
    policy = cluster.kubectl_json("get", "validatingadmissionpolicy", NAME)
    assert policy["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "gpu_slicing.eks"}
    binding = cluster.kubectl_json("get", "validatingadmissionpolicybinding", NAME)
    assert binding["spec"]["validationActions"] == ["Deny"]


def test_second_run_changes_nothing(cluster):
    before = written(cluster)
    result = run(cluster, diff=True)
    assert not result.failed, result
    assert not result.changed, [o for o in result["objects"] if o["action"] != "unchanged"]
    assert "diff" not in result
    assert written(cluster) == before


def test_changed_option_updates_only_what_it_touches(cluster):
    before = written(cluster)
    result = run(cluster, check=True, validation_actions=["Warn", "Audit"])
    assert result.changed and written(cluster) == before
    result = run(cluster, validation_actions=["Warn", "Audit"])
    touched = {"%s/%s" % (o["kind"], o["name"]) for o in result["objects"] if o["action"] != "unchanged"}
    assert touched == {"ValidatingAdmissionPolicyBinding/%s%s" % (NAME, t) for t in ("", "-workloads", "-cronjobs")}
    after = written(cluster)
    assert {k for k in after if after[k] != before[k]} == {
        "validatingadmissionpolicybindings/%s%s" % (NAME, t) for t in ("", "-workloads", "-cronjobs")}
    assert cluster.kubectl_json("get", "validatingadmissionpolicybinding", NAME)["spec"]["validationActions"] == [
        "Warn", "Audit"]
    assert not run(cluster, validation_actions=["Warn", "Audit"]).changed


def test_one_profile_drops_the_warn_pairs(cluster):
    result = run(cluster, profiles=PROFILES[:1])
    assert not result.failed, result
    deleted = sorted(o["name"] for o in result["objects"] if o["action"] == "deleted")
    assert deleted == sorted(["%s%s-warn" % (NAME, t) for t in ("", "-workloads", "-cronjobs")] * 2)
    assert len(written(cluster)) == 12
    assert len(run(cluster).get("objects")) == 18  # back to two profiles: the pairs are written again
    assert len(written(cluster)) == 18


def test_object_not_written_by_the_collection_stops_the_run(cluster):
    foreign = "gse-ap-foreign"
    rule = {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["configmaps"]}
    cluster.apply({"apiVersion": admission.API_VERSION, "kind": "ValidatingAdmissionPolicy",
                   "metadata": {"name": foreign + "-warn"},
                   "spec": {"matchConstraints": {"resourceRules": [rule]}, "validations": [{"expression": "true"}]}})
    try:
        result = run(cluster, name=foreign)
        assert result.failed and result["error_kind"] == "conflict", result
        assert "ValidatingAdmissionPolicy %s-warn exists and was not written by gpu_slicing.eks" % foreign in result["msg"]
        assert "nothing was written" in result["msg"] and "Fix:" in result["msg"]
        assert set(written(cluster, foreign)) == {"validatingadmissionpolicies/%s-warn" % foreign}
        result = run(cluster, name=foreign, state="absent")
        assert not result.failed and not result.changed, result
        assert any("left in place" in w for w in result.get("warnings", [])), result
    finally:
        cluster.kubectl("delete", "validatingadmissionpolicy", foreign + "-warn", "--ignore-not-found")


def test_absent_removes_everything_then_changes_nothing(cluster):
    result = run_module("admission_policy", {"name": NAME, "state": "absent"}, kubeconfig=str(cluster.kubeconfig),
                        check=True)
    assert result.changed and len(written(cluster)) == 18
    result = run_module("admission_policy", {"name": NAME, "state": "absent"}, kubeconfig=str(cluster.kubeconfig))
    assert result.changed and {o["action"] for o in result["objects"]} == {"deleted"}
    # Removal is the reverse of the write order: the mutating policies go before the validating ones.
    kinds = [o["kind"] for o in result["objects"]]
    assert kinds.index("MutatingAdmissionPolicy") < kinds.index("ValidatingAdmissionPolicy")
    assert written(cluster) == {}
    result = run_module("admission_policy", {"name": NAME, "state": "absent"}, kubeconfig=str(cluster.kubeconfig))
    assert not result.changed and result["objects"] == []


@pytest.fixture(scope="module")
def without_mutating():
    """A second cluster whose API server does not serve MutatingAdmissionPolicy v1."""
    import localcluster

    workdir = tempfile.mkdtemp(prefix="gse-it-nomap-")
    group = "admissionregistration.k8s.io/v1/"
    c = localcluster.LocalCluster(name="it-nomap-%d" % os.getpid(), workdir=workdir, apiserver_args={
        "runtime-config": ",".join(group + r + "=false" for r in ("mutatingadmissionpolicies",
                                                                  "mutatingadmissionpolicybindings")),
        # The admission plugin would wait for the kind it cannot list, and the server never be ready.
        "disable-admission-plugins": "MutatingAdmissionPolicy"})
    try:
        c.up()
        yield c
    finally:
        c.down()


def test_without_mutating_policy_writes_the_validating_ones_and_says_so(without_mutating):
    c = without_mutating
    served = c.kubectl("api-resources", "--api-group=admissionregistration.k8s.io", "-o", "name").stdout.split()
    assert "mutatingadmissionpolicies.admissionregistration.k8s.io" not in served, served
    result = run(c, mutating_policy_required=True)
    assert result.failed and result["error_kind"] == "unsupported", result
    assert "does not serve admissionregistration.k8s.io/v1 MutatingAdmissionPolicy" in result["msg"]
    assert "mutating_policy_required" in result["msg"] and "Fix:" in result["msg"]
    assert written(c) == {}
    result = run(c)
    assert not result.failed, result
    assert result["mutating_policy_served"] is False and result.changed
    assert {o["kind"] for o in result["objects"]} == {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}
    assert len(written(c)) == 12
    assert any("only the validating policies are written" in w for w in result["warnings"]), result
    assert not run(c).changed
    # No mutating policy marks pods here, so the validating ones must see every pod: a slice
    # request without a profile selector is warned about.
    c.create_namespace("gse-ap-nomap")
    c.kubectl("label", "namespace", "gse-ap-nomap", "gse-ap/enabled=yes")
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "gse-ap-nomap"},
           "spec": {"containers": [{"name": "c", "image": "i", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}}

    def warned():
        p = c.kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(pod), check=False)
        return p.returncode == 0 and "ValidatingAdmissionPolicy '%s-warn'" % NAME in p.stderr
    c.wait_for(warned, 30, "the warning policy sees an unmarked pod")
    result = run_module("admission_policy", {"name": NAME, "state": "absent"}, kubeconfig=str(c.kubeconfig))
    assert result.changed and written(c) == {}


def test_role_task_writes_and_removes_the_policies(cluster, tmp_path):
    """The gpu_sharing role's admission task with the role's defaults (what enable.yml runs after
    the plugin when gpu_slicing_admission is true), then with gpu_sharing_state absent."""
    def play(state):
        task = {"name": "role", "ansible.builtin.include_role": {"name": "gpu_slicing.eks.gpu_sharing",
                                                                 "tasks_from": "admission.yml"},
                "vars": {"gpu_sharing_state": state, "gpu_sharing_profiles": PROFILES,
                         "gpu_sharing_admission_name": "gse-ap-role"}}
        return [{"name": "admission through the role", "hosts": "localhost", "gather_facts": False, "tasks": [task]}]
    for state, count in (("present", 18), ("absent", 0)):
        path = tmp_path / ("%s.yml" % state)
        path.write_text(yaml.safe_dump(play(state)))
        rc, output = run_playbook(str(path), kubeconfig=str(cluster.kubeconfig))
        results = [r for name, r in task_results(output) if "admission_policy" in str(r.get("invocation", ""))
                   or "objects" in r]
        assert rc == 0 and results and results[-1]["changed"], output.get("_stderr")
        assert len(written(cluster, "gse-ap-role")) == count
        binding = results[-1]["invocation"]["module_args"]
        assert binding["namespace_label"] == "gpu-slicing.eks/admission" and binding["validation_actions"] == ["Deny"]
