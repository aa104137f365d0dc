#!/usr/bin/env python3
"""Benchmark: pod creation throughput with the admission policies against without, in one run.

    python benchmarks/admission.py [--pods 200] [--rounds 5] [--workers 8] [--out DIR]

One local cluster (tests/cluster/localcluster.py, bound to 127.0.0.1, always torn down). The
policies rendered by plugins/module_utils/admission.py are applied and scoped to one opted-in
namespace; a second namespace carries no label. In alternating rounds (so every side sees the
same machine load) the runner creates ``--pods`` pods per round with ``--workers`` concurrent
POSTs, on these sides:

  native, not opted in   the baseline: a namespace without the label, the pod as the policy would
                         have written it (nvidia.com/gpu: 1, toleration, node selector): no policy
                         matches;
  seed form, opted in    the opted-in namespace, the seed's form (limits gpu: "0.25"): the mutating
                         policy rewrites every pod;
  native, opted in       the opted-in namespace, the baseline's pod: the mutating policy's match
                         condition looks at it and lets it pass;
  no GPU, opted in       the opted-in namespace, a pod without a GPU request;
  ... before             the seed-form and no-GPU pods in a third namespace, opted in to the same
                         policies as written before the validating ones selected on the mark of
                         the mutating one (they saw every pod): the change, measured side by side.

Pods carry a scheduling gate so the scheduler leaves them alone, and are deleted after each round.
Rate = pods / wall seconds of the round; the ratio is between the medians of the rounds. Around
every round the API server's /metrics are read: the deltas of the admission histograms
(``apiserver_admission_step_admission_duration_seconds`` by type,
``apiserver_admission_controller_admission_duration_seconds`` by plugin) and of the POST pods
request latency give the mean seconds per pod on each side.

Writes results-admission.json and results-admission.md (to --out, default benchmarks/). Not part of
the test suite; the figures that matter are the ratios taken within one run.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import json
import re
import statistics
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import run as bench  # noqa: E402  (the shared helpers: venv, cluster workdir, log, machine facts)

ON, OFF, BEFORE = "bench-adm-on", "bench-adm-off", "bench-adm-before"
LABEL, VALUE = "gpu-slicing.eks/admission", "enabled"
BEFORE_LABEL = "gpu-slicing.eks/admission-before"
PLAN = {"default_profile": "ts-4", "profiles": [
    {"name": "ts-4", "strategy": "time-slicing", "replicas": 4},
    {"name": "ts-2", "strategy": "time-slicing", "replicas": 2, "rename_by_default": True},
    {"name": "whole", "strategy": "none"},
]}
PROFILE_LABEL = "nvidia.com/device-plugin.config"
GATE = "gpu-slicing.eks/benchmark"
BASE = "native, not opted in"
# side: (namespace, pod form)
SIDES = {
    BASE: (OFF, "native"),
    "seed form, opted in": (ON, "seed"),
    "native, opted in": (ON, "native"),
    "no GPU, opted in": (ON, "none"),
    "seed form, opted in, before": (BEFORE, "seed"),
    "no GPU, opted in, before": (BEFORE, "none"),
}
TARGET = 0.9
TARGET_SIDES = ("seed form, opted in", "native, opted in", "no GPU, opted in")
_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? ([0-9.eE+-]+|NaN|\+Inf)$')


def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="benchmarks/admission.py", description=__doc__.splitlines()[0])
    ap.add_argument("--pods", type=int, default=200, help="pods per round and side (default 200)")
    ap.add_argument("--rounds", type=int, default=5, help="rounds per side, alternated (default 5)")
    ap.add_argument("--workers", type=int, default=8, help="concurrent POSTs (default 8)")
    ap.add_argument("--out", default=str(HERE), help="directory for results-admission.{json,md}")
    ap.add_argument("--keep-workdir", action="store_true", help="leave cluster logs in the temp dir on failure")
    return ap.parse_args(argv)


def pod(namespace, name, form):
    container = {"name": "main", "image": "registry.k8s.io/pause:3.10"}
    spec = {"schedulingGates": [{"name": GATE}], "containers": [container]}
    if form == "seed":
        container["resources"] = {"limits": {"gpu": "0.25"}}
    elif form == "native":
        container["resources"] = {"limits": {"nvidia.com/gpu": "1"}}
        spec["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
        spec["nodeSelector"] = {PROFILE_LABEL: "ts-4"}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def metrics(c):
    """{(name, frozenset(labels)): value} for the admission histograms and POST pods latency."""
    text = c.kubectl("get", "--raw", "/metrics", timeout=60).stdout
    out = {}
    for line in text.splitlines():
        if line.startswith("process_cpu_seconds_total "):
            out[("process_cpu_seconds_total", frozenset())] = float(line.split()[1])
            continue
        if not (line.startswith("apiserver_admission_") or line.startswith("apiserver_request_duration_seconds_")
                or "admission_policy" in line):
            continue
        if not (line.split("{")[0].endswith("_sum") or line.split("{")[0].endswith("_count")):
            continue
        m = _SAMPLE.match(line)
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if m.group(1).startswith("apiserver_request_duration_seconds_") and not (
                labels.get("resource") == "pods" and labels.get("verb") == "POST" and not labels.get("subresource")):
            continue
        out[(m.group(1), frozenset(labels.items()))] = float(m.group(3))
    return out


def latency(before, after):
    """Mean seconds per observation of each series family, from the _sum/_count deltas."""
    groups = {}
    for (name, labels), value in after.items():
        if name == "process_cpu_seconds_total":
            continue
        base, kind = name.rsplit("_", 1)
        keep = {k: v for k, v in labels if k in ("type", "name", "operation", "rejected", "policy")}
        if base.startswith("apiserver_request_duration"):
            keep = {}
        key = base + ("{%s}" % ",".join("%s=%s" % kv for kv in sorted(keep.items())) if keep else "")
        g = groups.setdefault(key, {"sum": 0.0, "count": 0.0})
        g[kind] += value - before.get((name, labels), 0.0)
    return {k: {"count": int(g["count"]), "mean_ms": round(1000 * g["sum"] / g["count"], 3)}
            for k, g in sorted(groups.items()) if g["count"] > 0 and relevant(k)}


def relevant(key):
    """The series the results show: the admission steps, the two policy plugins, the policies'
    own histograms and match conditions, and POST pods latency (not every in-tree plugin)."""
    return (key.startswith("apiserver_admission_step_admission_duration_seconds{") or "AdmissionPolicy," in key
            or "admission_policy" in key or "match_condition" in key or key == "apiserver_request_duration_seconds")


def create_round(api, objs, workers):
    def one(obj):
        t0 = time.monotonic()
        # The answer is read (the connection goes back to the pool) but not decoded.
        api.create_namespaced_pod(obj["metadata"]["namespace"], obj, _preload_content=False).data
        return time.monotonic() - t0
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(workers) as ex:
        each = list(ex.map(one, objs))
    return time.monotonic() - t0, each


def clear(c, namespaces):
    for ns in namespaces:
        c.kubectl("delete", "pods", "--all", "-n", ns, "--grace-period=0", "--force", "--wait=false", timeout=300)
    bench.wait(lambda: all(not c.kubectl("get", "pods", "-n", ns, "-o", "name").stdout.strip() for ns in namespaces),
               300, "benchmark pods deleted", interval=1)


def policies_active(c, namespace=ON):
    probe = pod(namespace, "probe", "seed")
    p = c.kubectl("create", "--dry-run=server", "-o", "json", "-f", "-", input=json.dumps(probe), check=False)
    return p.returncode == 0 and "nvidia.com/gpu" in json.loads(p.stdout)["spec"]["containers"][0]["resources"]["limits"]


def before_policies(admission):
    """The policies as they were before the pods' validating policies selected on the mutating
    policy's mark: the same objects, under another name and namespace label, with no objectSelector."""
    objs = admission.render_policies(PLAN, {"name": "bench-before", "namespace_label": BEFORE_LABEL,
                                            "namespace_label_value": VALUE})
    for obj in objs:
        obj["spec"].get("matchConstraints", {}).pop("objectSelector", None)
    return objs


def measure(args):
    import kubernetes
    from ansible_collections.gpu_slicing.eks.plugins.module_utils.core import admission

    wd = bench.Workdir(args.keep_workdir)
    failed = True
    c = wd.start("admission")
    try:
        for ns in (ON, OFF, BEFORE):
            c.create_namespace(ns)
        c.kubectl("label", "namespace", ON, "%s=%s" % (LABEL, VALUE))
        c.kubectl("label", "namespace", BEFORE, "%s=%s" % (BEFORE_LABEL, VALUE))
        policies = admission.render_policies(PLAN, {"namespace_label": LABEL, "namespace_label_value": VALUE})
        c.apply(policies + before_policies(admission))
        bench.wait(lambda: policies_active(c) and policies_active(c, BEFORE), 60, "policies active")
        api = kubernetes.client.CoreV1Api(kubernetes.config.new_client_from_config(str(c.kubeconfig)))
        # Connection pool as large as the workers, and one warm-up round per side (not counted).
        api.api_client.rest_client.pool_manager.connection_pool_kw["maxsize"] = args.workers
        rounds = {side: [] for side in SIDES}
        for r in range(args.rounds + 1):
            for side, (ns, form) in SIDES.items():
                objs = [pod(ns, "p-%d-%d" % (r, i), form) for i in range(args.pods)]
                before = metrics(c)
                seconds, each = create_round(api, objs, args.workers)
                after = metrics(c)
                clear(c, (ns,))
                if r == 0:
                    continue
                cpu = after[("process_cpu_seconds_total", frozenset())] - before[("process_cpu_seconds_total", frozenset())]
                rounds[side].append({"seconds": round(seconds, 3), "rate": round(args.pods / seconds, 1),
                                     "apiserver_cpu_ms_per_pod": round(1000 * cpu / args.pods, 3),
                                     "client_p50_ms": round(1000 * statistics.median(each), 2),
                                     "client_p95_ms": round(1000 * sorted(each)[int(0.95 * len(each)) - 1], 2),
                                     "server": latency(before, after)})
                bench.log("round %d %s: %.1f pods/s" % (r, side, args.pods / seconds))
        failed = False
        return rounds, len(policies)
    finally:
        c.down()
        wd.cleanup(failed)


def summarize(rounds):
    out = {}
    for side, rs in rounds.items():
        server = {}
        for key in {k for x in rs for k in x["server"]}:
            counts = sum(x["server"].get(key, {}).get("count", 0) for x in rs)
            total = sum(x["server"][key]["count"] * x["server"][key]["mean_ms"] for x in rs if key in x["server"])
            server[key] = {"count": counts, "mean_ms": round(total / counts, 3) if counts else None}
        out[side] = {"median_rate": statistics.median(x["rate"] for x in rs),
                     "rates": [x["rate"] for x in rs],
                     "apiserver_cpu_ms_per_pod": statistics.median(x["apiserver_cpu_ms_per_pod"] for x in rs),
                     "client_p50_ms": statistics.median(x["client_p50_ms"] for x in rs),
                     "client_p95_ms": statistics.median(x["client_p95_ms"] for x in rs),
                     "server": dict(sorted(server.items()))}
    ratios = dict((side, {"rate": round(out[side]["median_rate"] / out[BASE]["median_rate"], 3),
                          "cpu": round(out[side]["apiserver_cpu_ms_per_pod"] / out[BASE]["apiserver_cpu_ms_per_pod"], 3)})
                  for side in SIDES if side != BASE)
    return out, ratios


def render_md(r):
    s = r["sides"]
    L = ["# Admission policies: pod creation throughput", "",
         "Produced by `%s` (do not edit by hand; see README.md, g.)." % r["command"], "",
         "| | |", "|---|---|"] + bench.header_rows(r) + [
         "| setup | %d rounds x %d pods per side, %d concurrent POSTs, %d admission objects, plan %s |" % (
             r["rounds"], r["pods"], r["workers"], r["admission_objects"],
             ", ".join(p["name"] for p in PLAN["profiles"])),
         "| total wall time | %s s |" % r["total_seconds"], "",
         "## Target: a side's rate >= %.1f x the baseline's (%s)" % (TARGET, BASE), "",
         "| side | rate ratio | met | API server CPU per pod, ratio |", "|---|---|---|---|"]
    for side, x in r["ratios"].items():
        met = ("met" if x["rate"] >= TARGET else "**not met**") if side in TARGET_SIDES else "(for comparison)"
        L.append("| %s | %.3f | %s | %.3f |" % (side, x["rate"], met, x["cpu"]))
    L += ["", "API server CPU per pod: process_cpu_seconds_total over the round / pods, median of the rounds. "
          "On a shared machine it is steadier than the rates, which move with the other processes' load.",
          "", "## Rates (pods/s; median of the rounds, every round in brackets)", "",
          "| side | pods/s | rounds | apiserver CPU ms per pod | client p50 ms | client p95 ms | POST pods, server mean ms |",
          "|---|---|---|---|---|---|---|"]
    for side in SIDES:
        x = s[side]
        post = x["server"].get("apiserver_request_duration_seconds", {}).get("mean_ms")
        L.append("| %s | %.1f | %s | %.2f | %.1f | %.1f | %s |" % (
            side, x["median_rate"], " / ".join("%.1f" % v for v in x["rates"]), x["apiserver_cpu_ms_per_pod"],
            x["client_p50_ms"], x["client_p95_ms"], post))
    L += ["", "## API server admission latency (mean ms per observation, all rounds of a side)", "",
          "| series | %s |" % " | ".join(SIDES), "|---|%s" % ("---|" * len(SIDES))]
    keys = sorted({k for side in SIDES for k in s[side]["server"]} - {"apiserver_request_duration_seconds"})
    for key in keys:
        cells = []
        for side in SIDES:
            v = s[side]["server"].get(key)
            cells.append("%.3f (%d)" % (v["mean_ms"], v["count"]) if v and v["mean_ms"] is not None else "-")
        L.append("| `%s` | %s |" % (key, " | ".join(cells)))
    L += ["", "Counts in brackets: observations. When a mutating policy changed the object, the API server "
          "runs the mutating (admit) plugins a second time (reinvocation), hence twice the admit "
          "observations on the seed-form sides; the step figures are per request."]
    return "\n".join(L) + "\n"


def main(argv=None):
    args = parse_args(argv)
    bench._ensure_venv()
    sys.path.insert(0, str(REPO / "tests" / "cluster"))
    sys.path.insert(0, str(REPO / ".build" / "collections"))
    bench.build_binaries()
    t0 = time.monotonic()
    report = {"command": "python benchmarks/admission.py --pods %d --rounds %d --workers %d"
                         % (args.pods, args.rounds, args.workers),
              "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
              "git": bench.git_commit(), "machine": bench.machine(), "pods": args.pods, "rounds": args.rounds,
              "workers": args.workers}
    try:
        rounds, objects = measure(args)
    except Exception:
        bench.log(traceback.format_exc())
        return 1
    report["admission_objects"] = objects
    report["sides"], report["ratios"] = summarize(rounds)
    report["rounds_detail"] = rounds
    report["total_seconds"] = round(time.monotonic() - t0, 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results-admission.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    (out / "results-admission.md").write_text(render_md(report))
    bench.log("ratios %s; wrote %s" % (json.dumps(report["ratios"]), out / "results-admission.md"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
