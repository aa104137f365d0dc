"""device_plugin_config and device_plugin against the local cluster (real apiserver, real chart).

What is checked: bad input changes nothing; check mode writes nothing; a second run reports
no change; the plugin rolls out on a simulated GPU node and the node then advertises
GPUs x replicas (NVIDIA's own plugin and GFD, run for the chart's pod over emulated NVML and
kubelet by kubelet-device-emulator); a config
change rolls the pods; a rollout that never becomes ready restores the previous config.
"""

from __future__ import annotations

import json
import time

import pytest
import yaml

from playbook_runner import run_module

from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.device_plugin import (
    helm_release_selector,
    latest_helm_release,
)

pytestmark = pytest.mark.integration

NS = "gse-dp-test"
CM = "nvidia-device-plugin-configs"
RELEASE = "nvdp-test"
NODE = "dp-g4dn"


def chart(cluster):
    path = cluster.artifacts / "nvidia-device-plugin"
    version = str(yaml.safe_load((path / "Chart.yaml").read_text())["version"])
    return str(path), version


def cluster_state(cluster):
    """What these modules could touch: namespaces, ConfigMaps in NS, Helm releases (with revisions)."""
    # Namespaces that earlier tests are still deleting (Terminating) are not this test's business.
    namespaces = sorted(n["metadata"]["name"] for n in cluster.kubectl_json("get", "namespaces")["items"]
                        if n.get("status", {}).get("phase") != "Terminating")
    configmaps = {}
    if NS in namespaces:
        for cm in cluster.kubectl_json("get", "configmaps", "-n", NS)["items"]:
            configmaps[cm["metadata"]["name"]] = cm["metadata"]["resourceVersion"]
    releases = cluster.helm("list", "-A", "-o", "json").stdout
    return {"namespaces": namespaces, "configmaps": configmaps, "releases": releases}


def config_args(**overrides):
    args = {"namespace": NS, "config_map_name": CM, "profiles": [{"name": "ts-4", "replicas": 4}]}
    args.update(overrides)
    return args


def plugin_args(cluster, **overrides):
    ref, version = chart(cluster)
    args = {
        "release_name": RELEASE,
        "namespace": NS,
        "chart_ref": ref,
        "chart_version": version,
        "binary_path": str(cluster.bin / "helm"),
        "profiles": [{"name": "ts-4", "replicas": 4}],
        "wait_timeout": 90,
    }
    args.update(overrides)
    return args


BAD_CONFIG_INPUT = [
    ({"profiles": [{"name": "ts", "replicas": 1}]}, "profiles[0].replicas"),
    ({"profiles": [{"name": "ts", "replicas": "four"}]}, "profiles[0].replicas"),
    ({"profiles": [{"name": "ts", "fraction": 0.6}]}, "profiles[0].fraction"),
    ({"profiles": [{"name": "m", "strategy": "mps", "replicas": 2, "mig_strategy": "mixed"}]}, "profiles[0].mig_strategy"),
    ({"profiles": [{"name": "m", "strategy": "mps", "replicas": 49}]}, "profiles[0].replicas"),
    ({"profiles": [{"name": "a", "replicas": 2}, {"name": "a", "replicas": 4}]}, "profiles[1].name"),
    ({"profiles": [{"name": "Bad Name!", "replicas": 2}]}, "profiles[0].name"),
    ({"profiles": [{"name": "ts", "replicas": 4}], "default_profile": "nope"}, "default_profile"),
    ({"profiles": [{"name": "ts", "slice_memory": "32Gi", "gpu_memory": "16Gi"}]}, "slice_memory"),
    ({"profiles": [{"name": "ts", "strategy": "spatial", "replicas": 2}]}, "strategy"),
]


@pytest.mark.parametrize("bad,field", BAD_CONFIG_INPUT)
def test_bad_input_is_rejected_and_cluster_unchanged(local_cluster, bad, field):
    before = cluster_state(local_cluster)
    result = run_module("device_plugin_config", config_args(**bad), kubeconfig=str(local_cluster.kubeconfig))
    assert result.failed, result
    assert field in result["msg"], result["msg"]
    result = run_module("device_plugin", plugin_args(local_cluster, **bad), kubeconfig=str(local_cluster.kubeconfig))
    assert result.failed, result
    assert field in result["msg"], result["msg"]
    assert cluster_state(local_cluster) == before


def test_missing_chart_fails_before_any_write(local_cluster, tmp_path):
    before = cluster_state(local_cluster)
    result = run_module("device_plugin", plugin_args(local_cluster, chart_ref=str(tmp_path / "no-such-chart")),
                        kubeconfig=str(local_cluster.kubeconfig))
    assert result.failed
    assert "chart_ref" in result["msg"] and "Fix:" in result["msg"], result["msg"]
    result = run_module("device_plugin", plugin_args(local_cluster, chart_version="9.9.9"),
                        kubeconfig=str(local_cluster.kubeconfig))
    assert result.failed and "chart_version" in result["msg"], result["msg"]
    assert cluster_state(local_cluster) == before


def test_no_connection_is_a_clear_error(local_cluster, tmp_path):
    env = {"HOME": str(tmp_path), "KUBECONFIG": "", "K8S_AUTH_KUBECONFIG": ""}
    result = run_module("device_plugin_config", config_args(), env=env)
    assert result.failed
    assert "No Kubernetes connection was given" in result["msg"]
    assert "in-cluster service account is never used" in result["msg"]


def test_config_map_check_mode_idempotence_diff_and_absent(local_cluster):
    c = local_cluster
    kc = str(c.kubeconfig)
    before = cluster_state(c)
    checked = run_module("device_plugin_config", config_args(), kubeconfig=kc, check=True, diff=True)
    assert not checked.failed, checked
    assert checked.changed
    assert cluster_state(c) == before, "check mode wrote something"

    first = run_module("device_plugin_config", config_args(), kubeconfig=kc)
    assert first.changed and not first.failed, first
    data = c.kubectl_json("get", "configmap", CM, "-n", NS)["data"]
    assert data == first["configs"]
    assert first["plan"]["profiles"][0]["replicas"] == 4
    rv = c.kubectl_json("get", "configmap", CM, "-n", NS)["metadata"]["resourceVersion"]

    second = run_module("device_plugin_config", config_args(), kubeconfig=kc, diff=True)
    assert not second.changed, second
    assert c.kubectl_json("get", "configmap", CM, "-n", NS)["metadata"]["resourceVersion"] == rv

    # A removed profile disappears from the ConfigMap (server-side apply owns the keys).
    two = config_args(profiles=[{"name": "ts-4", "replicas": 4}, {"name": "ts-2", "replicas": 2}])
    assert run_module("device_plugin_config", two, kubeconfig=kc).changed
    assert sorted(c.kubectl_json("get", "configmap", CM, "-n", NS)["data"]) == ["ts-2", "ts-4"]
    changed = run_module("device_plugin_config", config_args(), kubeconfig=kc, diff=True)
    assert changed.changed and "diff" in changed, changed
    assert sorted(c.kubectl_json("get", "configmap", CM, "-n", NS)["data"]) == ["ts-4"]

    gone = run_module("device_plugin_config", {"namespace": NS, "config_map_name": CM, "state": "absent"}, kubeconfig=kc)
    assert gone.changed
    assert c.kubectl("get", "configmap", CM, "-n", NS, check=False).returncode != 0
    again = run_module("device_plugin_config", {"namespace": NS, "config_map_name": CM, "state": "absent"}, kubeconfig=kc)
    assert not again.changed


def allocatable(cluster, node):
    return cluster.kubectl_json("get", "node", node)["status"].get("allocatable", {}).get("nvidia.com/gpu")


def wait_until(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.5)
    pytest.fail("timed out after %ss waiting for %s" % (timeout, what))


def plugin_pod_hashes(cluster):
    pods = cluster.kubectl_json("get", "pods", "-n", NS, "-l", "app.kubernetes.io/name=nvidia-device-plugin")["items"]
    return {p["metadata"]["name"]: p["metadata"].get("annotations", {}).get("checksum/config") for p in pods}


def test_device_plugin_install_idempotence_rollout_and_restore(local_cluster):
    c = local_cluster
    kc = str(c.kubeconfig)
    c.add_gpu_node(NODE, "g4dn.xlarge", zone="us-east-1a")
    c.start_real_plugin()
    try:
        before = cluster_state(c)
        checked = run_module("device_plugin", plugin_args(c), kubeconfig=kc, check=True)
        assert not checked.failed and checked.changed, checked
        assert cluster_state(c) == before, "check mode wrote something"

        t0 = time.monotonic()
        first = run_module("device_plugin", plugin_args(c), kubeconfig=kc)
        install_seconds = time.monotonic() - t0
        assert not first.failed, first.get("msg")
        assert first.changed
        assert first["rollout"]["ready"] is True
        assert NODE in first["rollout"]["target_node_names"]
        wait_until(lambda: allocatable(c, NODE) == "4", 60, "allocatable nvidia.com/gpu: 4 (1 T4 x 4 replicas)")
        # GFD's labels arrive apart from allocatable (GFD, then the NFD stand-in's next pass).
        sharing_keys = ("nvidia.com/gpu.replicas", "nvidia.com/gpu.sharing-strategy")
        wait_until(lambda: all(k in c.kubectl_json("get", "node", NODE)["metadata"]["labels"] for k in sharing_keys),
                   60, "GFD's sharing labels on %s" % NODE)
        labels = c.kubectl_json("get", "node", NODE)["metadata"]["labels"]
        assert labels["nvidia.com/gpu.replicas"] == "4"
        assert labels["nvidia.com/gpu.sharing-strategy"] == "time-slicing"

        # The module reads the release from Helm's own storage; it must say what helm says.
        secrets = c.kubectl_json("get", "secrets", "-n", NS, "-l", helm_release_selector(RELEASE))["items"]
        summary, values = latest_helm_release(secrets)
        listed = json.loads(c.helm("list", "-n", NS, "-a", "-o", "json").stdout)
        listed = [r for r in listed if r["name"] == RELEASE][0]
        assert {k: listed[k] for k in summary} == summary
        assert values == json.loads(c.helm("get", "values", RELEASE, "-n", NS, "-o", "json").stdout)

        t0 = time.monotonic()
        second = run_module("device_plugin", plugin_args(c), kubeconfig=kc)
        rerun_seconds = time.monotonic() - t0
        assert not second.failed and not second.changed, second
        assert second["release_revision"] == first["release_revision"]
        print("device_plugin install %.1fs, no-change re-run %.1fs" % (install_seconds, rerun_seconds))

        # A config change rolls the DaemonSet: new pods carry the new hash, the node re-slices.
        old_hashes = plugin_pod_hashes(c)
        two = run_module("device_plugin", plugin_args(c, profiles=[{"name": "ts-4", "replicas": 2}]), kubeconfig=kc)
        assert not two.failed and two.changed, two
        assert two["config_hash"] != first["config_hash"]
        wait_until(lambda: set(plugin_pod_hashes(c).values()) == {two["config_hash"]}, 60, "pods rolled to the new config")
        assert set(old_hashes.values()) == {first["config_hash"]}
        wait_until(lambda: allocatable(c, NODE) == "2", 60, "allocatable nvidia.com/gpu: 2 after the change")

        # A rollout that cannot become ready (pods select no node) restores the previous state.
        cm_before = c.kubectl_json("get", "configmap", CM, "-n", NS)["data"]
        broken = plugin_args(c, profiles=[{"name": "ts-4", "replicas": 8}], wait_timeout=8,
                             values={"nodeSelector": {"gpu-slicing.eks/no-such-node": "true"}})
        failed = run_module("device_plugin", broken, kubeconfig=kc)
        assert failed.failed, failed
        assert "did not become ready" in failed["msg"], failed["msg"]
        assert any("ConfigMap" in r for r in failed["restored"]) and any("revision" in r for r in failed["restored"])
        assert c.kubectl_json("get", "configmap", CM, "-n", NS)["data"] == cm_before
        values = yaml.safe_load(c.helm("get", "values", RELEASE, "-n", NS, "-o", "yaml").stdout)
        assert values["podAnnotations"]["checksum/config"] == two["config_hash"]
        assert "nodeSelector" not in values
        wait_until(lambda: allocatable(c, NODE) == "2", 60, "slices back to 2 after the restore")

        gone = run_module("device_plugin", plugin_args(c, state="absent"), kubeconfig=kc)
        assert gone.changed and not gone.failed, gone
        assert RELEASE not in c.helm("list", "-n", NS, "-o", "json").stdout
        assert c.kubectl("get", "configmap", CM, "-n", NS, check=False).returncode != 0
        wait_until(lambda: allocatable(c, NODE) in (None, "0"), 60, "slices gone with the plugin")
    finally:
        c.helm("uninstall", RELEASE, "-n", NS, "--no-hooks", check=False)
        c.kubectl("delete", "namespace", NS, "--ignore-not-found", "--wait=false", check=False)
        c.stop_process("kubelet-device-emulator")
        c.delete_node(NODE)


# Profile names YAML reads as something else than text, and names it reads as text. NVIDIA's
# chart writes config.default unquoted (value: {{ .Values.config.default }}).
YAML_NAMES = ["4", "017", "1_000", "0x1F", "0o17", "0b101", "1e3", "1.5", "true", "True", "yes", "YES", "no",
              "on", "off", "OFF", "y", "n", "N", "null", "NULL", "2026-12-02",
              "ts-4", "mps-2", "yes-4", "on-demand", "e3", "x1", "1a", "4x", "2026-12", "A10G"]


def test_chart_breaks_on_profile_names_yaml_reads_as_non_text(local_cluster, tmp_path):
    """Why such names are refused: the real chart rendered by helm template with each name as
    config.default (a string in the values), then the DaemonSet sent to the real API server as
    Helm sends it (kubectl's decoder, dry run). The names it refuses or changes (null becomes no
    value: the plugin would silently use another config) are exactly the names the sharing core
    refuses."""
    from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.sharing import normalize_profile
    from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.errors import InvalidInput

    c = local_cluster
    ref, dummy = chart(c)
    broken, core_refuses = {}, set()
    for name in YAML_NAMES:
        values = tmp_path / "values.json"
        values.write_text(json.dumps({"config": {"name": "cm", "default": name}}))
        rendered = c.helm("template", "nvdp", ref, "-n", "kube-system", "-f", str(values),
                          "--show-only", "templates/daemonset-device-plugin.yml").stdout
        assert "value: %s\n" % name in rendered  # unquoted
        sent = c.kubectl("create", "--dry-run=server", "-n", "kube-system", "-o", "json", "-f", "-",
                         input=rendered, check=False)
        if sent.returncode != 0:
            broken[name] = "refused: " + sent.stderr.strip()[-120:]
        else:
            pod = json.loads(sent.stdout)["spec"]["template"]["spec"]
            got = [e.get("value") for ctr in pod.get("initContainers", []) + pod["containers"]
                   for e in ctr.get("env", []) if e["name"] == "DEFAULT_CONFIG"]
            assert got, name
            if got != [name] * len(got):  # accepted, but the plugin would get another default config
                broken[name] = "DEFAULT_CONFIG became %r" % got
        try:
            normalize_profile({"name": name, "replicas": 4})
        except InvalidInput:
            core_refuses.add(name)
    for name in sorted(broken):
        print("%s: %s" % (name, broken[name]))
    assert core_refuses == set(broken)


def test_chart_keeps_off_bottlerocket_nodes(local_cluster):
    """A node of a Bottlerocket NodePool (its OS runs NVIDIA's plugin itself) gets no pod of the
    chart, a node of an AL2023 NodePool does. The nodes carry the labels of the NodePools the
    collection renders (what Karpenter copies from spec.template onto its nodes); the DaemonSet's
    placement is the real DaemonSet controller's, from the chart's real templates."""
    from ansible_collections.gpu_slicing.eks.plugins.module_utils.core import karpenter
    from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.sharing import build_plan

    c = local_cluster
    kc = str(c.kubeconfig)
    ns = NS + "-br"  # its own: the tests before delete NS without waiting for it to go
    plan = build_plan({"profiles": [{"name": "ts-4", "replicas": 4}]})
    base = {"discovery_tag_value": "demo", "role": "KarpenterNodeRole-demo", "instance_types": ["g4dn.xlarge"]}
    nodes = {}
    for name, alias in (("dp-al2023", "al2023@latest"), ("dp-bottlerocket", "bottlerocket@latest")):
        pool = karpenter.render(plan, dict(base, name=name, ami_alias=alias))["nodepool"]
        labels = dict(pool["spec"]["template"]["metadata"]["labels"], **{"karpenter.sh/nodepool": name})
        c.add_gpu_node(name, "g4dn.xlarge", zone="us-east-1a", labels=labels,
                       taints=pool["spec"]["template"]["spec"]["taints"])
        nodes[alias.split("@", maxsplit=1)[0]] = name
    c.start_real_plugin()
    try:
        result = run_module("device_plugin", plugin_args(c, namespace=ns), kubeconfig=kc)
        assert not result.failed, result.get("msg")
        assert result["rollout"]["ready"] is True
        assert nodes["al2023"] in result["rollout"]["target_node_names"]
        assert nodes["bottlerocket"] not in result["rollout"]["target_node_names"]
        # The chart's own DaemonSets (plugin, GFD, MPS daemon) are named <release>-nvidia-device-plugin*;
        # NFD's worker (a dependency that only labels node features) may run anywhere.
        pods = c.kubectl_json("get", "pods", "-n", ns)["items"]
        placed = {}
        for pod in pods:
            if pod["metadata"]["name"].startswith(RELEASE + "-nvidia-device-plugin"):
                placed.setdefault(pod["spec"].get("nodeName"), []).append(pod["metadata"]["name"])
        assert any("gpu-feature-discovery" not in p for p in placed.get(nodes["al2023"], [])), placed
        assert nodes["bottlerocket"] not in placed, placed
        wait_until(lambda: allocatable(c, nodes["al2023"]) == "4", 60, "4 slices on the AL2023 node")
        print("chart pods per node: %s" % {k: len(v) for k, v in placed.items()})
    finally:
        c.helm("uninstall", RELEASE, "-n", ns, "--no-hooks", check=False)
        c.kubectl("delete", "namespace", ns, "--ignore-not-found", "--wait=false", check=False)
        c.stop_process("kubelet-device-emulator")
        for name in nodes.values():
            c.delete_node(name)
