#!/usr/bin/env python3
"""Benchmarks of gpu_slicing.eks against its peers, measured side by side in one run.

    python benchmarks/run.py [--only packing,converge,verify,info] [--quick] [--out DIR]

Sections (each on its own fresh local cluster, tests/cluster/localcluster.py, bound to 127.0.0.1,
always torn down):

  packing   nodes Karpenter (KWOK provider, v1.14.1) launches for N one-slice pods, with this
            collection's NodePool + NodeOverlays, with plain time-slicing and no overlays, and with
            no slicing; $/hour of each; the theoretical minimum ceil(N / (GPUs x replicas)).
  converge  full setup on a fresh cluster and a no-change re-run: this collection's playbook vs a
            reference playbook using kubernetes.core.helm + kubernetes.core.k8s only; wall time and
            API requests (apiserver_request_total delta).
  verify    time to verdict of gpu_slicing_verify for 1, 20 and 200 simulated GPU nodes.
  info      gpu_slicing_info over 2,000 simulated GPU nodes and 20,000 bound pods: time, peak RSS.

Writes benchmarks/results.json and benchmarks/results.md (or --out DIR). Not part of the test
suite: a full run takes tens of minutes on 2 cores. Times on a shared machine are noisy; the
figures that matter are counts and ratios taken within this one run.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
VENV_PY = REPO / ".venv" / "bin" / "python"


def _ensure_venv():
    """Re-exec under the repo's venv when ansible / kubernetes are not importable here."""
    try:
        import ansible  # noqa: F401
        import kubernetes  # noqa: F401
        import yaml  # noqa: F401
    except ImportError:
        if VENV_PY.exists() and Path(sys.executable).resolve() != VENV_PY.resolve():
            os.execv(str(VENV_PY), [str(VENV_PY), *sys.argv])
        raise SystemExit("needs the repo venv: run scripts/setup-venv.sh, then .venv/bin/python benchmarks/run.py")


SECTIONS = ["converge", "verify", "info", "packing", "before_after"]
DEFAULT_SECTIONS = ["converge", "verify", "info", "packing"]


def parse_args(argv=None):
    ap = argparse.ArgumentParser(
        prog="benchmarks/run.py",
        description="Benchmarks of gpu_slicing.eks on a local cluster (counts and ratios from one run).",
        epilog="Writes results.json and results.md into --out (default benchmarks/). "
               "Needs tests/cluster/build.sh (warm: instant) and the venv (scripts/setup-venv.sh).")
    ap.add_argument("--only", default=",".join(DEFAULT_SECTIONS),
                    help="comma-separated sections to run: %s (default: all but before_after)" % ",".join(SECTIONS))
    ap.add_argument("--before", default="main~1", metavar="REF",
                    help="before_after: the git commit to compare the working tree with (default main~1)")
    ap.add_argument("--quick", action="store_true",
                    help="smaller sizes (packing N=4,17; verify 1,20 nodes; info 200 nodes/2,000 pods)")
    ap.add_argument("--out", default=str(HERE), help="directory for results.json / results.md")
    ap.add_argument("--keep-workdir", action="store_true", help="leave cluster logs in the temp dir on failure")
    a = ap.parse_args(argv)
    a.sections = [s.strip() for s in a.only.split(",") if s.strip()]
    bad = [s for s in a.sections if s not in SECTIONS]
    if bad:
        ap.error("unknown section(s) %s; choose from %s" % (bad, SECTIONS))
    return a


# --------------------------------------------------------------------------- helpers


def log(msg):
    sys.stderr.write("[bench %s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


def wait(pred, timeout, what, interval=0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError("timed out after %ss waiting for %s" % (timeout, what))


def build_binaries():
    p = subprocess.run(["bash", str(REPO / "tests" / "cluster" / "build.sh")], capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit("tests/cluster/build.sh failed:\n" + p.stderr[-3000:])
    for line in p.stdout.splitlines():
        if line.startswith("export "):
            k, _, v = line[len("export "):].partition("=")
            os.environ[k] = v


def chart_info(c):
    import yaml
    chart = c.artifacts / "nvidia-device-plugin"
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    return str(chart), str(meta["version"])


def api_requests(c):
    """Sum of apiserver_request_total over all labels (the scrape itself adds one)."""
    text = c.kubectl("get", "--raw", "/metrics", timeout=60).stdout
    total = 0.0
    for line in text.splitlines():
        if line.startswith("apiserver_request_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


class Workdir:
    def __init__(self, keep):
        self.root = Path(tempfile.mkdtemp(prefix="gse-bench-"))
        self.keep = keep

    def cluster(self, name):
        from localcluster import LocalCluster
        return LocalCluster(name="bench-%s-%d" % (name, os.getpid()), workdir=self.root / name)

    def start(self, name, attempts=3):
        """A fresh cluster that is up. kwokctl picks the component ports itself, so on a machine where
        other clusters start at the same time a component can lose a port race (kube-controller-manager
        'address already in use'): start again in a new workdir."""
        from localcluster import ClusterError
        for i in range(attempts):
            c = self.cluster("%s-%d" % (name, i))
            log("%s: cluster up (attempt %d)" % (name, i + 1))
            try:
                c.up()
                return c
            except ClusterError as exc:
                log("%s: cluster start failed: %s" % (name, str(exc).splitlines()[0]))
                c.down()
                if i == attempts - 1:
                    raise

    def cleanup(self, failed):
        if self.keep and failed:
            log("kept %s" % self.root)
        else:
            shutil.rmtree(self.root, ignore_errors=True)


def ansible_playbook(playbook, kubeconfig, extra_vars=None, env=None, timeout=1800, wrap=None):
    """Run ansible-playbook with the json callback. Returns (rc, seconds, output, stderr)."""
    from playbook_runner import ansible_env
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook)]
    if extra_vars:
        cmd += ["-e", json.dumps(extra_vars)]
    t0 = time.monotonic()
    p = subprocess.run((wrap or []) + cmd, env=ansible_env(str(kubeconfig), env), capture_output=True, text=True,
                       timeout=timeout)
    seconds = time.monotonic() - t0
    try:
        out = json.loads(p.stdout)
    except ValueError:
        out = {"_raw": p.stdout[-3000:]}
    return p.returncode, seconds, out, p.stderr


def tasks(out):
    res = []
    for play in out.get("plays", []):
        for task in play.get("tasks", []):
            for r in task.get("hosts", {}).values():
                res.append((task["task"]["name"], task["task"].get("duration", {}), r))
    return res


def task_seconds(duration):
    try:
        fmt = "%Y-%m-%dT%H:%M:%S.%fZ"
        return round((datetime.datetime.strptime(duration["end"], fmt)
                      - datetime.datetime.strptime(duration["start"], fmt)).total_seconds(), 2)
    except Exception:
        return None


def changed_count(out):
    stats = out.get("stats", {}).get("localhost", {})
    return stats.get("changed"), stats.get("failures", 0) + stats.get("unreachable", 0)


def write_playbook(path, tasks_list, name="benchmark"):
    import yaml
    path.write_text(yaml.safe_dump([{
        "name": name, "hosts": "localhost", "connection": "local", "gather_facts": False,
        "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}"},
        "tasks": tasks_list,
    }], sort_keys=False))
    return path


def run_module_timed(module, args, kubeconfig, tmp, timeout=1800, wrap=None, interpreter=None, env=None):
    fqcn = module if "." in module else "gpu_slicing.eks." + module
    pb = write_playbook(tmp / ("%s.yml" % module.replace(".", "_")),
                        [{"name": fqcn, fqcn: args, "register": "r", "ignore_errors": True}])
    extra = {"ansible_python_interpreter": interpreter} if interpreter else None
    rc, secs, out, err = ansible_playbook(pb, kubeconfig, extra_vars=extra, timeout=timeout, wrap=wrap, env=env)
    res = tasks(out)
    if not res:
        raise RuntimeError("%s: no task result (rc=%s): %s %s" % (fqcn, rc, err[-2000:], out.get("_raw", "")))
    return res[-1][2], secs, task_seconds(res[-1][1])


PROFILE_TS4 = {"name": "ts-4", "strategy": "time-slicing", "replicas": 4}
PROFILE_WHOLE = {"name": "whole", "strategy": "none"}
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


# --------------------------------------------------------------------------- a. packing

POOL = "bench-pool"
APP_NS = "bench-slices"
KWOK_CLASS = {"group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": "default"}


def slice_pod(i, itype):
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "slice-%03d" % i, "namespace": APP_NS, "labels": {"app": "bench-slice"}},
        "spec": {
            "tolerations": [GPU_TOLERATION],
            "nodeSelector": {"node.kubernetes.io/instance-type": itype},
            "containers": [{"name": "cuda", "image": "cuda-sample:vectoradd",
                            "resources": {"requests": {"nvidia.com/gpu": "1", "cpu": "10m"},
                                          "limits": {"nvidia.com/gpu": "1"}}}],
        },
    }


def _names(c, resource, selector):
    return sorted(i["metadata"]["name"] for i in c.kubectl_json("get", resource, "-l", selector)["items"])


def packing_clean(c):
    c.kubectl("delete", "pods", "-n", APP_NS, "--all", "--grace-period=0", "--force", "--wait=false", check=False)
    wait(lambda: not c.kubectl_json("get", "pods", "-n", APP_NS)["items"], 120, "pods gone")
    c.remove_karpenter_nodes("karpenter.sh/nodepool=%s" % POOL, timeout=180)


def packing_case(c, n, itype, stable_for=6.0, timeout=300):
    """Create n one-slice pods; wait until none is Pending and the NodeClaim count is stable."""
    t0 = time.monotonic()
    c.apply([slice_pod(i, itype) for i in range(n)])
    sel = "karpenter.sh/nodepool=%s" % POOL
    last, since = None, time.monotonic()
    deadline = t0 + timeout
    while time.monotonic() < deadline:
        pods = c.kubectl_json("get", "pods", "-n", APP_NS)["items"]
        running = sum(1 for p in pods if p["status"].get("phase") == "Running")
        claims = len(_names(c, "nodeclaims.karpenter.sh", sel))
        state = (running, claims)
        if state != last:
            last, since = state, time.monotonic()
        elif running == n and time.monotonic() - since >= stable_for:
            break
        time.sleep(1)
    pods = c.kubectl_json("get", "pods", "-n", APP_NS)["items"]
    running = sum(1 for p in pods if p["status"].get("phase") == "Running")
    claims = _names(c, "nodeclaims.karpenter.sh", sel)
    nodes = c.kubectl_json("get", "nodes", "-l", sel)["items"]
    types = sorted({nd["metadata"]["labels"].get("node.kubernetes.io/instance-type") for nd in nodes})
    return {"nodeclaims": len(claims), "nodes": len(nodes), "running_pods": running, "pods": n,
            "instance_types_launched": types, "seconds": round(time.monotonic() - t0, 1),
            "settled": running == n}


def bench_packing(wd, quick):
    import yaml
    sys.path.insert(0, str(REPO / ".build" / "collections"))
    from localcluster import load_instance_types
    fx = load_instance_types()
    ns_list = [4, 17] if quick else [4, 8, 17, 64]
    itypes = ["g4dn.xlarge", "g5.12xlarge"]
    c = wd.start("packing")
    results = {"instance_types": {}, "cases": [], "errors": []}
    tmp = wd.root / "packing-files"
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        c.start_karpenter()
        chart_ref, chart_version = chart_info(c)
        # The device plugin, installed by this collection's module, with both configs (ts-4, whole).
        res, secs, _ = run_module_timed("device_plugin", {
            "release_name": "nvdp", "namespace": "nvidia-device-plugin",
            "chart_ref": chart_ref, "chart_version": chart_version, "binary_path": str(c.bin / "helm"),
            "profiles": [PROFILE_TS4, PROFILE_WHOLE], "default_profile": "ts-4", "wait_timeout": 120,
        }, c.kubeconfig, tmp)
        if res.get("failed"):
            raise RuntimeError("device_plugin failed: %s" % res.get("msg"))
        c.start_emulator("--namespace", "nvidia-device-plugin")
        c.kubectl("create", "namespace", APP_NS, check=False)
        setups = [
            ("collection", "this collection: ts-4 + NodeOverlays (karpenter_gpu_nodepool)",
             {"profiles": [PROFILE_TS4]}),
            ("plain-time-slicing", "plain time-slicing, no NodeOverlay (most public guides)",
             {"profiles": [PROFILE_TS4], "karpenter_feature_gates": "NodeOverlay=false",
              "allow_without_node_overlay": True}),
            ("no-slicing", "no slicing (strategy none, replicas 1)", {"profiles": [PROFILE_WHOLE]}),
        ]
        for itype in itypes:
            spec = fx["instance_types"][itype]
            results["instance_types"][itype] = {"gpus": spec["gpu"]["count"], "price_per_hour": spec["price"]}
            for key, desc, over in setups:
                args = {"name": POOL, "instance_types": [itype], "manage_node_class": False,
                        "node_class_ref": KWOK_CLASS, "consolidation_policy": "WhenEmpty",
                        "consolidate_after": "Never", "karpenter_feature_gates": "NodeOverlay=true"}
                args.update(over)
                res, secs, _ = run_module_timed("karpenter_gpu_nodepool", args, c.kubeconfig, tmp)
                if res.get("failed"):
                    results["errors"].append("%s %s: %s" % (itype, key, res.get("msg")))
                    continue
                overlays = len(res.get("node_overlays") or [])
                time.sleep(3)  # Karpenter's overlay controller picks up the change
                for n in ns_list:
                    packing_clean(c)
                    replicas = 1 if key == "no-slicing" else 4
                    case = packing_case(c, n, itype, timeout=300 if n < 64 else 600)
                    case.update({
                        "setup": key, "setup_description": desc, "instance_type": itype, "n": n,
                        "node_overlays": overlays,
                        "theoretical_min_nodes": math.ceil(n / (spec["gpu"]["count"] * 4)),
                        "min_nodes_this_replicas": math.ceil(n / (spec["gpu"]["count"] * replicas)),
                        "price_per_hour": round(case["nodeclaims"] * spec["price"], 4),
                    })
                    case["equals_theoretical_min"] = case["nodeclaims"] == case["theoretical_min_nodes"]
                    log("packing: %s %-18s N=%-3d -> %d nodeclaims (min %d) %.1fs" % (
                        itype, key, n, case["nodeclaims"], case["theoretical_min_nodes"], case["seconds"]))
                    results["cases"].append(case)
                packing_clean(c)
                run_module_timed("karpenter_gpu_nodepool", {"name": POOL, "state": "absent"}, c.kubeconfig, tmp)
    finally:
        c.down()
    coll = [x for x in results["cases"] if x["setup"] == "collection"]
    results["target"] = {"name": "packing equals the theoretical minimum (this collection)",
                         "met": bool(coll) and all(x["equals_theoretical_min"] for x in coll)}
    return results


# --------------------------------------------------------------------------- b. converge

CONVERGE_GPU_NODES = 2


def collection_playbook():
    """The main job, as users run it."""
    return REPO / "playbooks" / "enable.yml", "playbooks/enable.yml"


def converge_vars(c):
    chart_ref, chart_version = chart_info(c)
    return {
        # enable.yml's one setting, and the role variables for the local cluster
        "gpu_slicing_profiles": [PROFILE_TS4],
        "gpu_slicing_instance_types": ["g4dn.xlarge", "g5.12xlarge"],
        "device_plugin_profiles": [PROFILE_TS4],
        "device_plugin_default_profile": "ts-4",
        "device_plugin_chart_ref": chart_ref,
        "device_plugin_chart_version": chart_version,
        "device_plugin_helm_binary": str(c.bin / "helm"),
        "device_plugin_wait_timeout": 300,
        "karpenter_gpu_nodepool_name": "gpu-shared",
        "karpenter_gpu_profiles": [PROFILE_TS4],
        "karpenter_gpu_instance_types": ["g4dn.xlarge", "g5.12xlarge"],
        "karpenter_gpu_instance_families": [],
        "karpenter_gpu_manage_node_class": False,
        "karpenter_gpu_node_class_ref": KWOK_CLASS,
        "karpenter_gpu_feature_gates": "NodeOverlay=true",
        "karpenter_gpu_consolidate_after": "5m",
    }


def reference_vars(c, nodepool_objects):
    """What the reference playbook is given: the same ConfigMap data, Helm values and Karpenter objects."""
    from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.device_plugin import (
        chart_values, config_map_definition)
    from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.sharing import build_plan
    plan = build_plan({"profiles": [PROFILE_TS4], "default_profile": "ts-4"})
    chart_ref, _ = chart_info(c)
    cm = config_map_definition(plan, name="nvidia-device-plugin-configs", namespace="nvidia-device-plugin")
    return {
        "ref_namespace": "nvidia-device-plugin",
        "ref_release": "nvdp",
        "ref_chart_ref": chart_ref,
        "ref_helm_binary": str(c.bin / "helm"),
        "ref_config_map_name": cm["metadata"]["name"],
        "ref_config_map_data": cm["data"],
        "ref_values": chart_values(plan, config_map_name="nvidia-device-plugin-configs"),
        "ref_karpenter_objects": nodepool_objects,
    }


def strip_object(obj):
    meta = {k: v for k, v in obj.get("metadata", {}).items() if k in ("name", "namespace", "labels", "annotations")}
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "metadata": meta, "spec": obj.get("spec", {})}


def converge_cluster(wd, name):
    c = wd.start(name)
    try:
        c.apply_karpenter_crds()
        c.apply({"apiVersion": "karpenter.kwok.sh/v1alpha1", "kind": "KWOKNodeClass",
                 "metadata": {"name": "default"}})
        for i in range(CONVERGE_GPU_NODES):
            c.add_gpu_node("gpu-%d" % i, "g4dn.xlarge")
        c.start_emulator("--namespace", "nvidia-device-plugin")
    except BaseException:
        c.down()
        raise
    return c


# A single re-run moves by 10-20% between runs on a shared machine: the ratio is taken between
# the medians of several.
CONVERGE_RERUNS = 3


def median_run(runs):
    return sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]


def timed_run(c, playbook, extra_vars, env=None):
    before = api_requests(c)
    rc, secs, out, err = ansible_playbook(playbook, c.kubeconfig, extra_vars=extra_vars, env=env)
    after = api_requests(c)
    changed, failures = changed_count(out)
    per_task = [{"task": name, "seconds": task_seconds(d), "changed": bool(r.get("changed"))}
                for name, d, r in tasks(out)]
    failed_msgs = [r.get("msg") for _, _, r in tasks(out) if r.get("failed")]
    if rc != 0:
        raise RuntimeError("%s failed rc=%s: %s %s" % (playbook, rc, failed_msgs, err[-2000:]))
    return {"seconds": round(secs, 2), "api_requests": after - before - 1, "changed_tasks": changed,
            "failures": failures, "tasks": per_task}


def converge_probe(c, tmp, xv):
    """Fixed costs inside a no-change re-run: ansible-playbook start-up with one no-op task, and the
    three read-only helm commands the device_plugin module runs (show chart, list, get values)."""
    probe = {}
    pb = write_playbook(tmp / "noop.yml", [{"name": "noop", "ansible.builtin.debug": {"msg": "noop"}}])
    rc, secs, _, _ = ansible_playbook(pb, c.kubeconfig)
    probe["ansible_playbook_noop_seconds"] = round(secs, 2)
    helm = [str(c.bin / "helm"), "--kubeconfig", str(c.kubeconfig)]
    for name, args in (("helm_show_chart", ["show", "chart", xv["device_plugin_chart_ref"]]),
                       ("helm_list", ["list", "-n", "nvidia-device-plugin", "-a", "-o", "json"]),
                       ("helm_get_values", ["get", "values", "nvdp", "-n", "nvidia-device-plugin", "-o", "json"])):
        t0 = time.monotonic()
        subprocess.run(helm + args, capture_output=True, env=c.env())
        probe[name + "_seconds"] = round(time.monotonic() - t0, 2)
    return probe


def bench_converge(wd, quick):
    tmp = wd.root / "converge-files"
    tmp.mkdir(parents=True, exist_ok=True)
    results = {"gpu_nodes": CONVERGE_GPU_NODES}
    playbook, label = collection_playbook()
    results["collection_playbook"] = label
    results["reference_playbook"] = "benchmarks/reference/enable.yml"
    nodepool_objects = []
    c = converge_cluster(wd, "conv-collection")
    try:
        log("converge: collection, first run")
        xv = converge_vars(c)
        results["collection_first"] = timed_run(c, playbook, xv)
        log("converge: collection, no-change re-runs")
        results["collection_reruns"] = [timed_run(c, playbook, xv) for _ in range(CONVERGE_RERUNS)]
        results["collection_rerun"] = median_run(results["collection_reruns"])
        results["where_time_goes"] = converge_probe(c, tmp, xv)
        for resource in ("nodeoverlays.karpenter.sh", "nodepools.karpenter.sh"):
            for item in c.kubectl_json("get", resource, "-l", "gpu-slicing.eks/nodepool=gpu-shared")["items"]:
                nodepool_objects.append(strip_object(item))
        rv = reference_vars(c, nodepool_objects)
    finally:
        c.down()
    (tmp / "reference-vars.json").write_text(json.dumps(rv, indent=1))
    c = converge_cluster(wd, "conv-reference")
    try:
        rv = reference_vars(c, nodepool_objects)  # chart path / helm binary of this cluster
        log("converge: reference, first run")
        results["reference_first"] = timed_run(c, HERE / "reference" / "enable.yml", rv)
        log("converge: reference, no-change re-runs")
        results["reference_reruns"] = [timed_run(c, HERE / "reference" / "enable.yml", rv)
                                       for _ in range(CONVERGE_RERUNS)]
        results["reference_rerun"] = median_run(results["reference_reruns"])
    finally:
        c.down()
    cr, rr = results["collection_rerun"], results["reference_rerun"]
    results["karpenter_objects"] = len(nodepool_objects)
    results["rerun_speedup"] = round(rr["seconds"] / cr["seconds"], 2) if cr["seconds"] else None
    results["first_run_speedup"] = round(results["reference_first"]["seconds"]
                                         / results["collection_first"]["seconds"], 2)
    results["rerun_api_ratio"] = round(rr["api_requests"] / cr["api_requests"], 2) if cr["api_requests"] else None
    results["target"] = {"name": "no-change re-run >= 2x faster than the reference and < 10 s",
                         "met": bool(results["rerun_speedup"] and results["rerun_speedup"] >= 2
                                     and cr["seconds"] < 10 and cr["changed_tasks"] == 0)}
    return results


# --------------------------------------------------------------------------- c. verify

VERIFY_NS = "nvidia-device-plugin"


def node_list(names, itype, labels):
    from localcluster import gpu_node_manifest, load_instance_types
    fx = load_instance_types()
    return {"apiVersion": "v1", "kind": "List",
            "items": [gpu_node_manifest(n, itype, labels=labels, fixture=fx) for n in names]}


def bench_verify(wd, quick):
    sizes = [1, 20] if quick else [1, 20, 200]
    tmp = wd.root / "verify-files"
    tmp.mkdir(parents=True, exist_ok=True)
    results = {"sizes": {}, "slices_per_node": 4, "instance_type": "g4dn.xlarge"}
    c = wd.start("verify")
    try:
        chart_ref, chart_version = chart_info(c)
        names = ["vfy-%03d" % i for i in range(max(sizes))]
        c.kubectl("create", "--validate=false", "-f", "-", input=json.dumps(node_list(names, "g4dn.xlarge",
                                                                   {"nvidia.com/device-plugin.config": "ts-4"})),
                  timeout=300)
        res, secs, _ = run_module_timed("device_plugin", {
            "release_name": "nvdp", "namespace": VERIFY_NS, "chart_ref": chart_ref,
            "chart_version": chart_version, "binary_path": str(c.bin / "helm"),
            "profiles": [PROFILE_TS4], "wait": False,
        }, c.kubeconfig, tmp)
        if res.get("failed"):
            raise RuntimeError("device_plugin failed: %s" % res.get("msg"))
        c.start_emulator("--namespace", VERIFY_NS, "--workers", "8")

        def sliced():
            items = c.kubectl_json("get", "nodes", "-l", "nvidia.com/device-plugin.config=ts-4")["items"]
            return sum(1 for n in items if n["status"].get("allocatable", {}).get("nvidia.com/gpu") == "4") == len(names)
        t0 = time.monotonic()
        wait(sliced, 900, "%d nodes sliced" % len(names), interval=2)
        results["setup_seconds_until_all_sliced"] = round(time.monotonic() - t0, 1)
        pb = REPO / "playbooks" / "verify.yml"
        for size in sizes:
            # The role's default cleanup: the run ends when its pods are gone; the namespace
            # controller's removal of the namespace is timed separately below.
            xv = {"gpu_slicing_profiles": [PROFILE_TS4], "verify_node_names": names[:size], "verify_device_plugin_namespace": VERIFY_NS,
                  "verify_wait_timeout": 900, "verify_report_json": str(tmp / ("verify-%d.json" % size))}
            log("verify: %d node(s)" % size)
            rc, secs, out, err = ansible_playbook(pb, c.kubeconfig, extra_vars=xv)
            entry = {"seconds": round(secs, 2), "rc": rc}
            fails = ["%s: %s" % (name, r.get("msg")) for name, d, r in tasks(out) if r.get("failed")]
            if rc != 0 and fails:
                entry["msg"] = " | ".join(fails)[:2000]
            elif rc != 0:
                entry["msg"] = (err or json.dumps(out))[-2000:]
            for name, d, r in tasks(out):
                if "timings" in r:
                    entry["module_timings"] = r["timings"]
                    entry["summary"] = r.get("summary")
                    entry["failed"] = bool(r.get("failed"))
                    entry["cleanup"] = (r.get("run") or {}).get("cleanup")
                    if r.get("failed"):
                        entry["msg"] = r.get("msg")
            t_ns = time.monotonic()
            wait(lambda: not c.kubectl_json("get", "namespaces", "-l", "gpu-slicing.eks/verify-run")["items"], 600,
                 "verify namespace removed by the namespace controller", interval=0.5)
            entry["namespace_gone_after_run_seconds"] = round(time.monotonic() - t_ns, 1)
            results["sizes"][str(size)] = entry
            log("verify: %d node(s): %.1fs (%s)" % (size, secs, entry.get("summary")))
    finally:
        c.down()
    big = results["sizes"].get("200")
    results["target"] = {"name": "verdict for 200 nodes < 60 s",
                         "met": bool(big) and big["seconds"] < 60 and not big.get("failed", True)}
    return results


# --------------------------------------------------------------------------- d. info


# 4 GPUs x 4 slices = 16 slices per node, so 10 one-slice pods per node fit (6 free).
INFO_TYPE, INFO_PRODUCT = "g5.12xlarge", "NVIDIA-A10G-SHARED"


def sliced_node(name, itype, fx):
    from localcluster import gpu_node_manifest
    node = gpu_node_manifest(name, itype, labels={"nvidia.com/device-plugin.config": "ts-4",
                                                  "nvidia.com/gpu.count": str(fx["instance_types"][itype]["gpu"]["count"]),
                                                  "nvidia.com/gpu.replicas": "4",
                                                  "nvidia.com/gpu.sharing-strategy": "time-slicing",
                                                  "nvidia.com/gpu.product": INFO_PRODUCT}, fixture=fx)
    slices = str(fx["instance_types"][itype]["gpu"]["count"] * 4)
    node["status"]["capacity"]["nvidia.com/gpu"] = slices
    node["status"]["allocatable"]["nvidia.com/gpu"] = slices
    return node


def bench_info(wd, quick, variants=None, rounds=2):
    """``variants``: [(label, env)] run alternately ``rounds`` times each on the one cluster
    (default: this checkout only, results under ``runs``)."""
    from localcluster import load_instance_types
    n_nodes, n_pods = (200, 2000) if quick else (2000, 20000)
    tmp = wd.root / "info-files"
    tmp.mkdir(parents=True, exist_ok=True)
    results = {"nodes": n_nodes, "pods": n_pods, "instance_type": INFO_TYPE}
    fx = load_instance_types()
    c = wd.start("info")
    try:
        names = ["info-%04d" % i for i in range(n_nodes)]
        per_node = n_pods // n_nodes

        def create_parallel(objs, what, workers=8):
            """kubectl create of many objects: one List file per worker, the workers in parallel."""
            t0 = time.monotonic()
            chunks = [objs[i::workers] for i in range(workers)]
            files = []
            for i, chunk in enumerate(chunks):
                f = tmp / ("%s-%d.json" % (what, i))
                f.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": chunk}))
                files.append(f)
            with concurrent.futures.ThreadPoolExecutor(workers) as ex:
                list(ex.map(lambda f: c.kubectl("create", "--validate=false", "-f", f, "-o", "name", timeout=1800), files))
            secs = round(time.monotonic() - t0, 1)
            log("info: %d %s created in %.1fs" % (len(objs), what, secs))
            return secs

        results["create_nodes_seconds"] = create_parallel([sliced_node(n, INFO_TYPE, fx) for n in names],
                                                          "nodes")
        c.kubectl("create", "namespace", "bench-info")
        wait(lambda: c.kubectl("get", "serviceaccount", "default", "-n", "bench-info", check=False).returncode == 0,
             60, "default SA")
        pods = [{
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p-%05d" % i, "namespace": "bench-info", "labels": {"app": "info"}},
            "spec": {"nodeName": names[i // per_node], "tolerations": [GPU_TOLERATION],
                     "containers": [{"name": "c", "image": "cuda-sample:vectoradd",
                                     "resources": {"requests": {"nvidia.com/gpu": "1"},
                                                   "limits": {"nvidia.com/gpu": "1"}}}]},
        } for i in range(per_node * n_nodes)]
        results["create_pods_seconds"] = create_parallel(pods, "pods")
        def phases():
            out = {}
            text = c.kubectl("get", "pods", "-n", "bench-info", "--chunk-size=5000", "-o",
                             "jsonpath={.items[*].status.phase}", timeout=300).stdout
            for ph in text.split():
                out[ph] = out.get(ph, 0) + 1
            return out

        def not_running():
            # Only the pods kwok has not marked Running yet: a full 20,000-pod list every few seconds
            # would itself load the API server that kwok is waiting on.
            return len(c.kubectl("get", "pods", "-n", "bench-info", "--field-selector=status.phase!=Running",
                                 "-o", "name", timeout=300).stdout.split())

        # kwok marks bound pods Running. The report counts bound pods either way, but it is timed on a
        # settled cluster: while kwok still patches thousands of pods, the API server is busy with that.
        t_settle = time.monotonic()
        try:
            wait(lambda: not_running() == 0, 1200, "kwok: pods Running", interval=10)
        except TimeoutError:
            pass
        results["wait_for_pods_running_seconds"] = round(time.monotonic() - t_settle, 1)
        results["pod_phases_at_report"] = phases()
        # The module process's own peak RSS and time: the interpreter Ansible runs it with is wrapped
        # in /usr/bin/time.
        wrapper = tmp / "python-timed"
        rss_file = tmp / "module-rusage.txt"
        wrapper.write_text("#!/bin/sh\nexec /usr/bin/time -a -o %s -f '%%e %%M' %s \"$@\"\n"
                           % (rss_file, sys.executable))
        wrapper.chmod(0o755)
        args = {"profiles": [PROFILE_TS4], "label_selectors": ["nvidia.com/gpu.present=true"]}
        by_variant = {label: [] for label, _ in (variants or [("collection", None)])}
        for _ in range(rounds):
            for label, env in (variants or [("collection", None)]):
                runs = by_variant[label]
                rss_file.write_text("")
                res, secs, task_secs = run_module_timed("gpu_slicing_info", args, c.kubeconfig, tmp,
                                                        interpreter=str(wrapper), env=env)
                lines = [ln.split() for ln in rss_file.read_text().splitlines() if ln.strip()]
                module_secs, module_kib = (float(lines[-1][0]), int(lines[-1][1])) if lines else (None, None)
                totals = res.get("totals", {})
                runs.append({"playbook_seconds": round(secs, 2), "task_seconds": task_secs,
                             "module_process_seconds": module_secs,
                             "module_peak_rss_mib": round(module_kib / 1024, 1) if module_kib else None,
                             "totals": totals, "failed": bool(res.get("failed")), "msg": res.get("msg")})
                log("info: %s: playbook %.1fs, module %.1fs, peak %s MiB, totals %s" % (
                    label, secs, module_secs or -1, runs[-1]["module_peak_rss_mib"], totals))
        if variants:
            results["variants"] = by_variant
        else:
            results["runs"] = by_variant["collection"]
        # where the time goes: the two API lists alone, from this process (same client library)
        t0 = time.monotonic()
        nodes_raw = c.kubectl("get", "--raw", "/api/v1/nodes?labelSelector=nvidia.com%2Fgpu.present%3Dtrue",
                              timeout=300).stdout
        results["raw_list_nodes_seconds"] = round(time.monotonic() - t0, 2)
        results["raw_list_nodes_mib"] = round(len(nodes_raw) / 2**20, 1)
        t0 = time.monotonic()
        pods_raw = c.kubectl("get", "--raw", "/api/v1/pods?fieldSelector=spec.nodeName%21%3D%2Cstatus.phase%21%3D"
                             "Succeeded%2Cstatus.phase%21%3DFailed", timeout=300).stdout
        results["raw_list_pods_seconds"] = round(time.monotonic() - t0, 2)
        results["raw_list_pods_mib"] = round(len(pods_raw) / 2**20, 1)
    finally:
        c.down()
    best = min((r for r in results.get("runs", []) if not r["failed"]), key=lambda r: r["playbook_seconds"],
               default=None)
    results["best"] = best
    results["target"] = {"name": "%d-node report < 10 s" % n_nodes,
                         "met": bool(best) and best["playbook_seconds"] < 10
                         and best["totals"].get("nodes") == n_nodes}
    return results


# --------------------------------------------------------------------------- e. before/after

def link_collection(root, collections_root):
    """Make ``collections_root/ansible_collections/gpu_slicing/eks`` point at ``root`` (as tests/conftest.py
    does for the suite), so ansible-playbook loads the collection from that checkout."""
    link = Path(collections_root) / "ansible_collections" / "gpu_slicing" / "eks"
    if not link.is_symlink():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(root, link.parent))
    return Path(collections_root)


def before_checkout(wd, ref):
    """The collection at ``ref`` (git archive into the workdir, no worktree left behind)."""
    root = wd.root / "before" / "checkout"
    root.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", ref], capture_output=True, text=True,
                            check=True).stdout.strip()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", commit], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
    return commit, link_collection(root, wd.root / "before" / "collections"), root


def bench_before_after(wd, quick, ref):
    """The same measurements with the collection at ``ref`` and at this checkout, alternately on one
    cluster: converge's no-change re-run (5 each) and the info report (5 each, 2,000 nodes unless
    --quick). Ratio = before / after between the medians (> 1: this checkout is faster)."""
    commit, before_collections, before_root = before_checkout(wd, ref)
    sides = [("before", {"ANSIBLE_COLLECTIONS_PATH": str(before_collections)}, before_root),
             ("after", None, REPO)]
    results = {"before": {"ref": ref, "commit": commit}, "after": git_commit()}
    c = converge_cluster(wd, "before-after")
    try:
        xv = converge_vars(c)
        log("before_after: first run (after)")
        timed_run(c, REPO / "playbooks" / "enable.yml", xv)
        reruns = {"before": [], "after": []}
        for _ in range(5):
            for label, env, root in sides:
                run = timed_run(c, root / "playbooks" / "enable.yml", xv, env=env)
                if run["changed_tasks"]:
                    raise RuntimeError("before_after: %s re-run changed %s task(s)" % (label, run["changed_tasks"]))
                reruns[label].append(run["seconds"])
                log("before_after: no-change re-run (%s) %.2fs" % (label, run["seconds"]))
    finally:
        c.down()
    results["rerun_seconds"] = reruns
    med = {k: sorted(v)[len(v) // 2] for k, v in reruns.items()}
    results["rerun_median_seconds"] = med
    results["rerun_ratio"] = round(med["before"] / med["after"], 2)
    info = bench_info(wd, quick, variants=[(label, env) for label, env, _ in sides], rounds=5)
    secs = {k: [r["playbook_seconds"] for r in v if not r["failed"]] for k, v in info.get("variants", {}).items()}
    results["info"] = {k: info[k] for k in ("nodes", "pods") if k in info}
    results["info"]["playbook_seconds"] = secs
    results["info"]["module_peak_rss_mib"] = {k: [r["module_peak_rss_mib"] for r in v]
                                              for k, v in info.get("variants", {}).items()}
    failed = {k: [r["msg"] for r in v if r["failed"]] for k, v in info.get("variants", {}).items()}
    if any(failed.values()) or "error" in info:
        raise RuntimeError("before_after: info runs failed: %s %s" % (failed, info.get("error", "")))
    imed = {k: sorted(v)[len(v) // 2] for k, v in secs.items()}
    results["info"]["median_seconds"] = imed
    results["info_ratio"] = round(imed["before"] / imed["after"], 2)
    results["target"] = {"name": "no-change re-run and %s-node report no slower than %s (ratio >= 0.9 for noise)"
                                 % (results["info"].get("nodes"), ref),
                         "met": results["rerun_ratio"] >= 0.9 and results["info_ratio"] >= 0.9}
    return results


# --------------------------------------------------------------------------- report


def machine():
    mem = ""
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem = "%.0f GiB" % (int(line.split()[1]) / 2**20)
    except OSError:
        pass
    cpu = platform.processor() or ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu_model": cpu, "memory": mem, "os": platform.platform(),
            "python": platform.python_version(), "loadavg_at_start": os.getloadavg()}


def git_commit():
    def g(*a):
        return subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True).stdout.strip()
    return {"commit": g("rev-parse", "HEAD"), "dirty": bool(g("status", "--porcelain", "--untracked-files=no"))}


def fmt(v, suffix=""):
    return "n/a" if v is None else "%s%s" % (v, suffix)


def header_rows(r):
    """The rows every results file starts its table with: when, which commit, which machine."""
    return ["| date (UTC) | %s |" % r["date"],
            "| git commit | `%s`%s |" % (r["git"]["commit"],
                                        " (working tree had uncommitted changes)" if r["git"]["dirty"] else ""),
            "| machine | %s CPUs (%s), %s, %s; load average at start %s (shared machine) |" % (
                r["machine"]["cpus"], r["machine"]["cpu_model"], r["machine"]["memory"], r["machine"]["os"],
                " / ".join("%.2f" % x for x in r["machine"]["loadavg_at_start"]))]


def render_md(r):
    L = ["# gpu_slicing.eks benchmarks", "",
         "Produced by `%s` (do not edit by hand; see README.md)." % r["command"], "",
         "| | |", "|---|---|"] + header_rows(r) + [
         "| sections | %s%s |" % (", ".join(r["sections"]), " (--quick)" if r["quick"] else ""),
         "| total wall time | %s s |" % r["total_seconds"], ""]
    L += ["## Targets", "", "| target | met |", "|---|---|"]
    for sec in SECTIONS:
        t = r["results"].get(sec, {}).get("target")
        if t:
            L.append("| %s | %s |" % (t["name"], "met" if t["met"] else "**not met**"))
        elif sec in r["results"]:
            L.append("| %s | **error** |" % sec)
    L.append("")
    p = r["results"].get("packing")
    if p and p.get("cases"):
        L += ["## a. Packing: nodes Karpenter launches (KWOK provider v1.14.1)", "",
              "Nodes = NodeClaims after Karpenter settled (all pods Running, count stable 6 s). "
              "Theoretical minimum = ceil(N / (GPUs x 4 replicas)); for no slicing the best possible is "
              "ceil(N / GPUs) (shown in brackets).", "",
              "| instance type | N | min | this collection | $/h | plain time-slicing | $/h | no slicing | $/h |",
              "|---|---|---|---|---|---|---|---|---|"]
        by = {(x["instance_type"], x["n"], x["setup"]): x for x in p["cases"]}
        for itype in p["instance_types"]:
            for n in sorted({x["n"] for x in p["cases"]}):
                row = ["`%s` (%d GPU)" % (itype, p["instance_types"][itype]["gpus"]), str(n)]
                mins = [x for k, x in by.items() if k[0] == itype and k[1] == n]
                row.append(str(mins[0]["theoretical_min_nodes"]) if mins else "")
                for setup in ("collection", "plain-time-slicing", "no-slicing"):
                    x = by.get((itype, n, setup))
                    if not x:
                        row += ["-", "-"]
                        continue
                    cell = str(x["nodeclaims"]) + ("" if x["settled"] else " (unsettled)")
                    if setup == "no-slicing":
                        cell += " [%d]" % x["min_nodes_this_replicas"]
                    row += [cell, "%.2f" % x["price_per_hour"]]
                L.append("| " + " | ".join(row) + " |")
        if p.get("errors"):
            L += ["", "Errors: " + "; ".join(p["errors"])]
        L.append("")
    cv = r["results"].get("converge")
    if cv and "collection_rerun" in cv:
        L += ["## b. Converge speed (fresh cluster, %d simulated GPU nodes)" % cv["gpu_nodes"], "",
              "Collection: %s. Reference: `%s` (kubernetes.core.k8s + kubernetes.core.helm, same ConfigMap text, "
              "same chart values, `wait: true`, same %d NodePool/NodeOverlay manifests). API requests = delta of "
              "`apiserver_request_total` (all verbs) around the run." % (
                  cv["collection_playbook"], cv["reference_playbook"], cv["karpenter_objects"]), "",
              "| run | collection s | reference s | reference / collection | collection API req | reference API req | changed tasks (coll / ref) |",
              "|---|---|---|---|---|---|---|"]
        for k in ("first", "rerun"):
            a, b = cv["collection_" + k], cv["reference_" + k]
            label = "first run"
            if k == "rerun":
                label = "no-change re-run, median of %d (collection %s; reference %s)" % (
                    len(cv.get("collection_reruns") or [a]),
                    " / ".join("%.2f" % x["seconds"] for x in cv.get("collection_reruns") or [a]),
                    " / ".join("%.2f" % x["seconds"] for x in cv.get("reference_reruns") or [b]))
            L.append("| %s | %.2f | %.2f | %.2fx | %d | %d | %s / %s |" % (
                label, a["seconds"], b["seconds"],
                b["seconds"] / a["seconds"], a["api_requests"], b["api_requests"], a["changed_tasks"],
                b["changed_tasks"]))
        if cv.get("where_time_goes"):
            L += ["", "Fixed costs measured on the same cluster: %s." % ", ".join(
                "%s %s s" % (k.replace("_seconds", ""), v) for k, v in cv["where_time_goes"].items())]
        L += ["", "Per task (s): collection re-run %s; reference re-run %s" % (
            ", ".join("%s %s" % (t["task"], t["seconds"]) for t in cv["collection_rerun"]["tasks"]),
            ", ".join("%s %s" % (t["task"], t["seconds"]) for t in cv["reference_rerun"]["tasks"])), ""]
    v = r["results"].get("verify")
    if v and v.get("sizes"):
        L += ["## c. Verification: time to verdict (gpu_slicing_verify via playbooks/verify.yml)", "",
              "Simulated %s nodes, ts-4 (4 one-slice pods per node plus the over-limit pod). "
              "Seconds = the whole ansible-playbook run, which ends once the run's test pods are deleted "
              "(role defaults: the namespace's deletion is requested, not waited for). The namespace "
              "controller's removal of the namespace after that is the last column." % v["instance_type"], "",
              "| nodes | seconds | verdict | module phases (s) | pods removed | namespace gone after the run (s) |",
              "|---|---|---|---|---|---|"]
        for size, e in v["sizes"].items():
            mt = e.get("module_timings") or {}
            phases = ", ".join("%s %s" % (k, val) for k, val in mt.items() if isinstance(val, (int, float)))
            L.append("| %s | %.1f | %s | %s | %s | %s |" % (size, e["seconds"], e.get("summary") or e.get("msg"), phases,
                                                         (e.get("cleanup") or {}).get("pods_removed"),
                                                         e.get("namespace_gone_after_run_seconds")))
        L.append("")
    inf = r["results"].get("info")
    if inf and inf.get("runs"):
        L += ["## d. gpu_slicing_info at scale", "",
              "%d simulated GPU nodes (%s, already sliced), %d pods bound with spec.nodeName, one "
              "slice each; pod phases when measured: %s (after %s s waiting for kwok to mark them Running)."
              % (inf["nodes"], inf.get("instance_type", "g4dn.xlarge"), inf["pods"], inf.get("pod_phases_at_report"),
                 inf.get("wait_for_pods_running_seconds")),
              "Peak memory = max RSS of the module process (its interpreter wrapped in /usr/bin/time).", "",
              "| run | ansible-playbook s | task s | module process s | module peak RSS MiB | nodes / requested slices |",
              "|---|---|---|---|---|---|"]
        for i, x in enumerate(inf["runs"]):
            L.append("| %d | %.2f | %s | %s | %s | %s / %s |" % (
                i + 1, x["playbook_seconds"], fmt(x["task_seconds"]), fmt(x["module_process_seconds"]),
                fmt(x["module_peak_rss_mib"]), x["totals"].get("nodes"), x["totals"].get("requested_slices")))
        L += ["", "Raw API lists from kubectl as JSON (the module reads the same lists as protobuf): nodes %s s (%s MiB), pods %s s (%s MiB)."
              % (inf.get("raw_list_nodes_seconds"), inf.get("raw_list_nodes_mib"), inf.get("raw_list_pods_seconds"),
                 inf.get("raw_list_pods_mib")), ""]
    ba = r["results"].get("before_after")
    if ba and "rerun_ratio" in ba:
        L += ["## e. Before / after (%s = `%s` against this checkout `%s`)" % (
                  ba["before"]["ref"], ba["before"]["commit"][:12], (ba["after"]["commit"] or "")[:12]), "",
              "Both sides on the same clusters, run alternately: converge's no-change re-run of playbooks/enable.yml "
              "(each side its own playbook and collection) and gpu_slicing_info on %s nodes / %s pods. "
              "Ratio = before / after between the medians (> 1: this checkout is faster)."
              % (ba["info"].get("nodes"), ba["info"].get("pods")), "",
              "| measure | before s (each run) | after s (each run) | median before / after | ratio |",
              "|---|---|---|---|---|",
              "| no-change re-run | %s | %s | %.2f / %.2f | %.2f |" % (
                  ", ".join("%.2f" % x for x in ba["rerun_seconds"]["before"]),
                  ", ".join("%.2f" % x for x in ba["rerun_seconds"]["after"]),
                  ba["rerun_median_seconds"]["before"], ba["rerun_median_seconds"]["after"], ba["rerun_ratio"]),
              "| info report (ansible-playbook) | %s | %s | %.2f / %.2f | %.2f |" % (
                  ", ".join("%.2f" % x for x in ba["info"]["playbook_seconds"]["before"]),
                  ", ".join("%.2f" % x for x in ba["info"]["playbook_seconds"]["after"]),
                  ba["info"]["median_seconds"]["before"], ba["info"]["median_seconds"]["after"], ba["info_ratio"]),
              "", "Module peak RSS (MiB), before: %s; after: %s." % (
                  ba["info"]["module_peak_rss_mib"].get("before"), ba["info"]["module_peak_rss_mib"].get("after")), ""]
    errs = {k: v["error"] for k, v in r["results"].items() if "error" in v}
    if errs:
        L += ["## Errors", ""] + ["- %s: %s" % (k, e.splitlines()[-1] if e else e) for k, e in errs.items()] + [""]
    return "\n".join(L)


def main(argv=None):
    args = parse_args(argv)
    _ensure_venv()
    sys.path.insert(0, str(REPO / "tests" / "cluster"))
    sys.path.insert(0, str(REPO / "tests" / "integration"))
    sys.path.insert(0, str(REPO / ".build" / "collections"))
    link_collection(REPO, REPO / ".build" / "collections")
    build_binaries()
    report = {
        "command": "python benchmarks/run.py" + ("" if args.only == ",".join(DEFAULT_SECTIONS) else " --only " + args.only)
                   + (" --quick" if args.quick else "")
                   + (" --before " + args.before if "before_after" in args.sections else ""),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
        "git": git_commit(), "machine": machine(), "sections": args.sections, "quick": args.quick,
        "results": {},
    }
    t_all = time.monotonic()
    wd = Workdir(args.keep_workdir)
    failed = False
    fns = {"packing": bench_packing, "converge": bench_converge, "verify": bench_verify, "info": bench_info,
           "before_after": lambda wd, quick: bench_before_after(wd, quick, args.before)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        for sec in args.sections:
            t0 = time.monotonic()
            log("== %s" % sec)
            try:
                report["results"][sec] = fns[sec](wd, args.quick)
            except Exception:
                failed = True
                report["results"][sec] = {"error": traceback.format_exc()}
                log("%s failed:\n%s" % (sec, traceback.format_exc()))
            report["results"][sec]["section_seconds"] = round(time.monotonic() - t0, 1)
            report["total_seconds"] = round(time.monotonic() - t_all, 1)
            (out / "results.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
            (out / "results.md").write_text(render_md(report) + "\n")
    finally:
        wd.cleanup(failed)
    log("wrote %s and %s" % (out / "results.json", out / "results.md"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
