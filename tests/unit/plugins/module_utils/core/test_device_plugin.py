"""Unit tests for the pure device-plugin helpers (ConfigMap, Helm values, rollout summary)."""

import copy

import pytest

from ansible_collections.gpu_slicing.eks.plugins.module_utils.core import device_plugin as dp
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.sharing import build_plan

SPEC = {
    "profiles": [
        {"name": "ts-4", "strategy": "time-slicing", "replicas": 4},
        {"name": "mps-2", "strategy": "mps", "replicas": 2},
    ],
    "default_profile": "ts-4",
}


@pytest.fixture
def plan():
    return build_plan(copy.deepcopy(SPEC))


def test_config_map_has_one_key_per_profile_and_a_stable_hash(plan):
    cm = dp.config_map_definition(plan, name="cfg", namespace="ns")
    assert sorted(cm["data"]) == ["mps-2", "ts-4"]
    assert cm["metadata"]["namespace"] == "ns"
    assert cm["metadata"]["annotations"][dp.CONFIG_HASH_ANNOTATION] == dp.config_hash(cm["data"])
    assert "replicas: 4" in cm["data"]["ts-4"]
    again = dp.config_map_definition(build_plan(copy.deepcopy(SPEC)), name="cfg", namespace="ns")
    assert again == cm


def test_hash_changes_with_content(plan):
    other = build_plan({"profiles": [{"name": "ts-4", "replicas": 8}, {"name": "mps-2", "strategy": "mps", "replicas": 2}]})
    assert dp.config_hash(dp.config_map_definition(plan)["data"]) != dp.config_hash(dp.config_map_definition(other)["data"])


def test_chart_values_point_at_external_config_and_roll_on_change(plan):
    values = dp.chart_values(plan, config_map_name="cfg")
    assert values["config"] == {"name": "cfg", "default": "ts-4"}
    assert "map" not in values["config"]  # the chart refuses name and map together
    assert values["podAnnotations"]["checksum/config"] == dp.config_hash(dp.config_map_definition(plan)["data"])
    assert values["gfd"]["enabled"] is True
    assert "@sha256:" in values["image"]["tag"]
    tolerations = values["tolerations"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in tolerations
    terms = values["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert {"key": "nvidia.com/gpu.present", "operator": "In", "values": ["true"]} in terms[0]["matchExpressions"]


def test_extra_values_merge_deeply(plan):
    values = dp.chart_values(plan, extra_values={"gfd": {"sleepInterval": "30s"}, "priorityClassName": "x"})
    assert values["gfd"] == {"enabled": True, "sleepInterval": "30s"}
    assert values["priorityClassName"] == "x"


def _ds(name, desired, updated, ready, available, generation=2, observed=2):
    return {
        "metadata": {"name": name, "generation": generation},
        "status": {
            "desiredNumberScheduled": desired,
            "updatedNumberScheduled": updated,
            "numberReady": ready,
            "numberAvailable": available,
            "observedGeneration": observed,
        },
    }


def _node(name, **labels):
    return {"metadata": {"name": name, "labels": labels}}


def _mps_ds(desired):
    ds = _ds("dp-mps-control-daemon", desired, desired, desired, desired)
    ds["spec"] = {"template": {"spec": {"nodeSelector": {"nvidia.com/mps.capable": "true"}}}}
    return ds


AB = [_node("a"), _node("b")]


@pytest.mark.parametrize(
    "daemonsets,nodes,ready",
    [
        ([_ds("dp", 2, 2, 2, 2)], AB, True),
        ([_ds("dp", 2, 1, 2, 2)], AB, False),  # old pods still running
        ([_ds("dp", 2, 2, 1, 1)], AB, False),  # one not ready
        ([_ds("dp", 1, 1, 1, 1)], AB, False),  # a GPU node is not targeted
        ([_ds("dp", 2, 2, 2, 2, generation=3, observed=2)], AB, False),  # controller has not seen the update
        ([], [_node("a")], False),  # nothing installed
        ([_ds("dp", 0, 0, 0, 0)], [], True),  # no GPU nodes yet: nothing to wait for
        # The MPS daemon runs only on MPS-capable nodes: 0 of 0 is fine, 0 of 1 is not.
        ([_ds("dp", 2, 2, 2, 2), _mps_ds(0)], AB, True),
        ([_ds("dp", 2, 2, 2, 2), _mps_ds(0)], [_node("a", **{"nvidia.com/mps.capable": "true"}), _node("b")], False),
        ([_ds("dp", 2, 2, 2, 2), _mps_ds(1)], [_node("a", **{"nvidia.com/mps.capable": "true"}), _node("b")], True),
    ],
)
def test_rollout_summary(daemonsets, nodes, ready):
    assert dp.daemonset_rollout(daemonsets, nodes)["ready"] is ready


def test_user_node_selector_does_not_shrink_the_plugin_targets():
    ds = _ds("dp", 0, 0, 0, 0)
    ds["spec"] = {"template": {"spec": {"nodeSelector": {"pool": "none"}}}}
    assert dp.required_nodes(ds, AB) == ["a", "b"]
    assert dp.daemonset_rollout([ds], AB)["ready"] is False


def _leaving(name, how):
    node = _node(name)
    if how == "deleting":
        node["metadata"]["deletionTimestamp"] = "2026-12-01T00:00:00Z"
    else:
        node["spec"] = {"taints": [{"key": "karpenter.sh/disrupted", "effect": "NoSchedule"}]}
    return node


@pytest.mark.parametrize("how", ["deleting", "disrupted"])
def test_nodes_being_deleted_or_drained_are_not_waited_for(how):
    nodes = [_node("a"), _leaving("b", how)]
    summary = dp.daemonset_rollout([_ds("dp", 1, 1, 1, 1)], nodes)
    assert summary["ready"] is True
    assert summary["target_nodes"] == 1
    assert [n["name"] for n in summary["leaving_nodes"]] == ["b"]
    # The same node without the deletion / drain is a GPU node the plugin skipped.
    assert dp.daemonset_rollout([_ds("dp", 1, 1, 1, 1)], AB)["ready"] is False


def test_an_unrelated_taint_does_not_excuse_a_missing_plugin():
    tainted = _node("b")
    tainted["spec"] = {"taints": [{"key": "dedicated", "value": "ml", "effect": "NoSchedule"}]}
    assert dp.daemonset_rollout([_ds("dp", 1, 1, 1, 1)], [_node("a"), tainted])["ready"] is False


def _pod(node, owner_uid, ready=True):
    return {"metadata": {"ownerReferences": [{"uid": owner_uid}]}, "spec": {"nodeName": node},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def test_nodes_missing_pods_names_each_node_and_its_taints():
    ds = _ds("dp", 2, 2, 1, 1)
    ds["metadata"]["uid"] = "u1"
    tainted = _node("b")
    tainted["spec"] = {"taints": [{"key": "dedicated", "effect": "NoSchedule"}]}
    nodes = [_node("a"), tainted, _leaving("c", "deleting")]
    missing = dp.nodes_missing_pods([ds], nodes, [_pod("a", "u1"), _pod("b", "other-ds")])
    assert missing == {"dp": [{"name": "b", "taints": ["dedicated:NoSchedule"]}]}
    assert dp.nodes_missing_pods([ds], nodes, [_pod("a", "u1"), _pod("b", "u1")]) == {}
    assert dp.nodes_missing_pods([ds], nodes, [_pod("a", "u1"), _pod("b", "u1", ready=False)])["dp"][0]["name"] == "b"


def _release_secret(version, status="deployed", gzipped=True, values=None):
    import base64
    import gzip
    import json

    release = {"name": "nvdp", "namespace": "nvidia-device-plugin", "version": version,
               "info": {"status": status}, "config": values if values is not None else {"gfd": {"enabled": True}},
               "chart": {"metadata": {"name": "nvidia-device-plugin", "version": "0.19.3", "appVersion": "0.19.3"}}}
    raw = json.dumps(release).encode()
    if gzipped:
        raw = gzip.compress(raw)
    return {"type": "helm.sh/release.v1",
            "metadata": {"name": "sh.helm.release.v1.nvdp.v%d" % version, "labels": {"version": str(version)}},
            "data": {"release": base64.b64encode(base64.b64encode(raw)).decode()}}


def test_latest_helm_release_reads_the_newest_revision():
    secrets = [_release_secret(1, "superseded"), _release_secret(3, "failed", values={}),
               _release_secret(2, "superseded", gzipped=False), {"type": "Opaque", "metadata": {"labels": {}}}]
    summary, values = dp.latest_helm_release(secrets)
    assert summary == {"name": "nvdp", "namespace": "nvidia-device-plugin", "revision": "3", "status": "failed",
                       "chart": "nvidia-device-plugin-0.19.3", "app_version": "0.19.3"}
    assert values == {}
    assert dp.latest_helm_release(secrets[:1])[1] == {"gfd": {"enabled": True}}
    assert dp.latest_helm_release([]) == (None, None)
    assert dp.helm_release_selector("nvdp") == "owner=helm,name=nvdp"


@pytest.mark.parametrize("chart_ref, is_local, expected", [
    # A chart name comes from the repository URL: no `helm repo add` beforehand.
    ("nvidia-device-plugin", False, ["nvidia-device-plugin", "--repo", "https://charts.example/nvdp"]),
    # A repo alias, an OCI reference, a path or a directory is used as it is.
    ("nvdp/nvidia-device-plugin", False, ["nvdp/nvidia-device-plugin"]),
    ("oci://registry.example/charts/nvidia-device-plugin", False, ["oci://registry.example/charts/nvidia-device-plugin"]),
    ("/opt/charts/nvidia-device-plugin", True, ["/opt/charts/nvidia-device-plugin"]),
    ("nvidia-device-plugin", True, ["nvidia-device-plugin"]),
    ("nvidia-device-plugin-0.20.0.tgz", True, ["nvidia-device-plugin-0.20.0.tgz"]),
])
def test_chart_source(chart_ref, is_local, expected):
    assert dp.chart_source(chart_ref, "https://charts.example/nvdp", is_local) == expected


def test_chart_source_without_repo_url_is_the_ref():
    assert dp.chart_source("nvidia-device-plugin", "") == ["nvidia-device-plugin"]
    assert dp.chart_source("nvidia-device-plugin", None) == ["nvidia-device-plugin"]


# The chart runs the MPS control daemon only on nodes labelled nvidia.com/mps.capable=true, a label
# only GFD sets: without GFD an MPS profile's plugin waits for a daemon that never comes.
@pytest.mark.parametrize("gfd, values, field", [
    (False, {}, "gfd"),
    (True, {"gfd": {"enabled": False}}, "values.gfd.enabled"),
])
def test_mps_profile_without_gfd_is_refused(plan, gfd, values, field):
    errors = dp.plugin_option_errors(dp.IMAGE_TAG, values, plan=plan, gfd=gfd)
    assert [e.field for e in errors] == [field]
    assert "mps-2" in str(errors[0]) and "nvidia.com/mps.capable" in str(errors[0]) and "Fix:" in str(errors[0])


def test_gfd_off_is_fine_without_mps():
    ts_only = build_plan({"profiles": [{"name": "ts-4", "replicas": 4}]})
    assert dp.plugin_option_errors(dp.IMAGE_TAG, {}, plan=ts_only, gfd=False) == []


def test_chart_daemonsets_keep_off_nodes_whose_os_runs_its_own_plugin(plan):
    from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.names import OS_DEVICE_PLUGIN_LABEL

    terms = dp.chart_values(plan)["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"]
    # terms are ORed: every one of them must exclude the label
    assert terms and all({"key": OS_DEVICE_PLUGIN_LABEL, "operator": "DoesNotExist"} in t["matchExpressions"]
                         for t in terms)
