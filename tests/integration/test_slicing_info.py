"""gpu_slicing_info on the local cluster: its report equals the pure report over the JSON objects.

The module reads Pods and Nodes as protobuf, keeping only the fields the report needs
(kube_protobuf). These tests check that against the real API server: the protobuf readers
give the same fields as its JSON, and the module's report equals slicing_report() computed
here from `kubectl get -o json`.

The nodes are tainted for this test only and carry no kwok.x-k8s.io/node annotation, so the
GPU plugin emulator leaves them alone and no other test's pod lands on them; the pods are
bound with spec.nodeName, so their requests are counted whatever the scheduler would say.
"""

from __future__ import annotations

import json
import urllib.parse

import pytest
import urllib3
import yaml

from playbook_runner import run_module  # tests/integration has no __init__.py: pytest puts it on sys.path

from ansible_collections.gpu_slicing.eks.plugins.module_utils.kube import protobuf as kube_protobuf
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.sharing import build_plan
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.slicing_info import (
    HOLDING_PODS_SELECTOR,
    slicing_report,
)

pytestmark = pytest.mark.integration

NS = "info-it"
SELECTOR = "gse-info-it=true"
TAINT = {"key": "gse-info-it", "value": "only", "effect": "NoSchedule"}
PROFILES = [{"name": "ts-4", "strategy": "time-slicing", "replicas": 4},
            {"name": "ts-2", "strategy": "time-slicing", "replicas": 2}]


def info_node(name, gpus, replicas, allocatable, profile):
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {
            "gse-info-it": "true", "kubernetes.io/hostname": name,
            "node.kubernetes.io/instance-type": "g5.12xlarge" if gpus == 4 else "g4dn.xlarge",
            "nvidia.com/gpu.present": "true", "nvidia.com/gpu.count": str(gpus),
            "nvidia.com/gpu.replicas": str(replicas), "nvidia.com/gpu.sharing-strategy": "time-slicing",
            "nvidia.com/device-plugin.config": profile}},
        "spec": {"taints": [TAINT]},
        "status": {"capacity": {"cpu": "8", "memory": "32Gi", "pods": "110", "nvidia.com/gpu": str(allocatable)},
                   "allocatable": {"cpu": "7", "memory": "30Gi", "pods": "110", "nvidia.com/gpu": str(allocatable)}},
    }


def info_pod(name, node, containers, init=()):
    def container(i, resources):
        return {"name": "c%d" % i, "image": "cuda-sample:vectoradd", "resources": resources}
    spec = {"nodeName": node, "tolerations": [TAINT],
            "containers": [container(i, r) for i, r in enumerate(containers)]}
    if init:
        spec["initContainers"] = [container(10 + i, r) for i, r in enumerate(init)]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS}, "spec": spec}


GPU1 = {"requests": {"nvidia.com/gpu": "1"}, "limits": {"nvidia.com/gpu": "1"}}
NODES = [info_node("info-it-a", 1, 4, 4, "ts-4"),
         info_node("info-it-b", 4, 2, 8, "ts-2"),
         info_node("info-it-c", 4, 4, 4, "ts-4")]  # advertises 4, its profile says 16: a mismatch
PODS = [info_pod("a-1", "info-it-a", [GPU1]),
        info_pod("a-2", "info-it-a", [{"limits": {"nvidia.com/gpu": "1"}}]),  # limits imply requests
        info_pod("b-1", "info-it-b", [GPU1, {"limits": {"nvidia.com/gpu": "2"}}],
                 init=[{"limits": {"nvidia.com/gpu": "5"}}]),  # max(1 + 2, 5) = 5
        info_pod("b-2", "info-it-b", [{"requests": {"cpu": "100m"}}]),
        info_pod("c-1", "info-it-c", [GPU1])]


@pytest.fixture(scope="module")
def info_cluster(local_cluster):
    c = local_cluster
    try:
        c.kubectl("create", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": NODES}))
        c.create_namespace(NS)
        c.kubectl("create", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": PODS}))
        yield c
    finally:
        c.kubectl("delete", "namespace", NS, "--wait=false", "--ignore-not-found", check=False)
        c.kubectl("delete", "pods", "-n", NS, "--all", "--grace-period=0", "--force", check=False)
        c.kubectl("delete", "nodes", "-l", SELECTOR, "--ignore-not-found", check=False)


def api_get(cluster, path, accept):
    """One GET with the kubeconfig's client certificate, the way kubectl reaches this cluster."""
    config = yaml.safe_load(open(cluster.kubeconfig))
    server, user = config["clusters"][0]["cluster"], config["users"][0]["user"]
    pool = urllib3.PoolManager(ca_certs=server["certificate-authority"],
                               cert_file=user["client-certificate"], key_file=user["client-key"])
    response = pool.request("GET", server["server"] + path, headers={"Accept": accept})
    assert response.status == 200, response.data[:500]
    return response


@pytest.mark.parametrize("path,reader,kind", [
    ("/api/v1/namespaces/%s/pods" % NS, kube_protobuf.read_pod, "Pod"),
    ("/api/v1/nodes?labelSelector=" + urllib.parse.quote(SELECTOR), kube_protobuf.read_node, "Node"),
])
def test_protobuf_readers_match_the_servers_json(info_cluster, path, reader, kind):
    # Both reads are of one snapshot: kwok may move a pod from Pending to Running between two
    # plain reads, so the protobuf list is asked for at exactly the JSON list's resourceVersion.
    as_json = json.loads(api_get(info_cluster, path, "application/json").data)
    from_json = as_json["items"]
    at_same_version = "%s%sresourceVersion=%s&resourceVersionMatch=Exact" % (
        path, "&" if "?" in path else "?", as_json["metadata"]["resourceVersion"])
    answer = api_get(info_cluster, at_same_version, kube_protobuf.ACCEPT_PROTOBUF_OR_JSON)
    assert kube_protobuf.is_protobuf(answer.headers.get("Content-Type")), answer.headers
    from_protobuf = kube_protobuf.list_items(answer.data, reader)
    assert len(from_protobuf) == len(from_json) == (len(PODS) if kind == "Pod" else len(NODES))

    def kept(obj):  # the fields kube_protobuf keeps, taken from the JSON object
        if kind == "Node":
            return {"metadata": {"name": obj["metadata"]["name"], "labels": obj["metadata"]["labels"]},
                    "status": {k: obj["status"][k] for k in ("capacity", "allocatable")}}
        spec = obj["spec"]
        out = {"nodeName": spec["nodeName"],
               "containers": [{"resources": c["resources"]} if c.get("resources") else {} for c in spec["containers"]]}
        if spec.get("initContainers"):
            out["initContainers"] = [{"resources": c["resources"]} for c in spec["initContainers"]]
        return {"spec": out, "status": {"phase": obj["status"]["phase"]}}
    assert from_protobuf == [kept(o) for o in from_json]


def test_report_equals_the_pure_report_over_json(info_cluster):
    args = {"profiles": PROFILES, "default_profile": "ts-4",
            "label_selectors": [SELECTOR]}
    result = run_module("gpu_slicing_info", args, kubeconfig=str(info_cluster.kubeconfig))
    assert not result.failed, result
    assert result["changed"] is False

    nodes = info_cluster.kubectl_json("get", "nodes", "-l", SELECTOR)["items"]
    pods = info_cluster.kubectl_json("get", "pods", "-A", "--field-selector", HOLDING_PODS_SELECTOR)["items"]
    expected = slicing_report(nodes, pods, build_plan({"profiles": PROFILES, "default_profile": "ts-4"}))
    assert result["nodes"] == expected["nodes"]
    assert result["totals"] == expected["totals"]

    by_name = {n["name"]: n for n in result["nodes"]}
    assert [by_name["info-it-a"][k] for k in ("requested_slices", "free_slices", "consistent")] == [2, 2, True]
    assert [by_name["info-it-b"][k] for k in ("requested_slices", "expected_slices", "consistent")] == [5, 8, True]
    assert by_name["info-it-c"]["mismatches"] == ["allocatable nvidia.com/gpu is 4, expected 16 (4 GPU(s) x 4 replicas)"]
    assert result["totals"]["nodes_with_mismatch"] == 1


def test_fail_on_mismatch_names_the_node(info_cluster):
    args = {"profiles": PROFILES, "default_profile": "ts-4",
            "label_selectors": [SELECTOR], "node_names": ["info-it-a", "info-it-c"], "fail_on_mismatch": True}
    result = run_module("gpu_slicing_info", args, kubeconfig=str(info_cluster.kubeconfig), check=True)
    assert result.failed
    assert "1 node(s) do not match" in result["msg"] and "info-it-c" in result["msg"], result["msg"]
    assert [n["name"] for n in result["nodes"]] == ["info-it-a", "info-it-c"]
