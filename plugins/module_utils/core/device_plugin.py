# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure: the NVIDIA device plugin's ConfigMap and Helm values from a sharing plan.

No I/O. The modules device_plugin_config and device_plugin call these and hand the
results to ops/device_plugin.py (the ConfigMap through kube/, the release through helm).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json

from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.plugin_config import render_config_map_data
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.names import (
    GPU_PRESENT_LABEL,
    GPU_TAINT_KEY,
    KARPENTER_DISRUPTED_TAINT_KEY,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    MPS_CAPABLE_LABEL,
    OS_DEVICE_PLUGIN_LABEL,
)

CHART_NAME = "nvidia-device-plugin"
CHART_VERSION = "0.20.0"
# NVIDIA's published Helm repository (k8s-device-plugin README, "helm repo add nvdp ...").
CHART_REPO_URL = "https://nvidia.github.io/k8s-device-plugin"
# Pinned by digest (NVIDIA's gpu-operator v26.7.0 bundle lists it). Only the tag is set: the
# repository stays the chart's own default, so the pin follows the chart's image source.
IMAGE_TAG = "v0.20.0@sha256:a61ba9fd8efb82f3a79f877f7580e02c1e8e7593f62473644bc9c79e315c3312"
DEFAULT_NAMESPACE = "nvidia-device-plugin"
DEFAULT_RELEASE = "nvdp"
DEFAULT_CONFIG_MAP = "nvidia-device-plugin-configs"
CONFIG_HASH_ANNOTATION = "gpu-slicing.eks/config-sha256"
# The chart uses a podAnnotations entry with this key instead of hashing its own ConfigMap
# template; we give it the hash of the external ConfigMap's content, so every config change
# rolls the DaemonSet on `helm upgrade` (the plugin does not reload on ConfigMap edits).
CHART_CHECKSUM_ANNOTATION = "checksum/config"


def config_hash(data):
    """sha256 of the ConfigMap data: stable over key order."""
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode("utf-8")).hexdigest()


def config_map_definition(plan, name=DEFAULT_CONFIG_MAP, namespace=DEFAULT_NAMESPACE):
    """The ConfigMap holding one plugin config per profile (keys = profile names)."""
    data = render_config_map_data(plan)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {MANAGED_BY_LABEL: MANAGED_BY},
            "annotations": {
                CONFIG_HASH_ANNOTATION: config_hash(data),
                "gpu-slicing.eks/default-profile": plan.default_profile,
            },
        },
        "data": data,
    }


def namespace_definition(namespace):
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": namespace, "labels": {MANAGED_BY_LABEL: MANAGED_BY}},
    }


def gpu_node_affinity():
    """Land on EKS GPU nodes without NFD: nodes labelled nvidia.com/gpu.present=true.

    The chart's default affinity also accepts NFD's PCI vendor label; we keep that term so
    clusters that do run NFD keep working. Nodes whose OS runs its own plugin (Bottlerocket,
    labelled by their NodePool) are left out in every term (terms are ORed): a second plugin
    there would fight the OS's one.
    """
    not_os_plugin = {"key": OS_DEVICE_PLUGIN_LABEL, "operator": "DoesNotExist"}
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": GPU_PRESENT_LABEL, "operator": "In", "values": ["true"]},
                                          not_os_plugin]},
                    {"matchExpressions": [
                        {"key": "feature.node.kubernetes.io/pci-10de.present", "operator": "In", "values": ["true"]},
                        not_os_plugin,
                    ]},
                ]
            }
        }
    }


def chart_values(plan, config_map_name=DEFAULT_CONFIG_MAP, image_tag=IMAGE_TAG, gfd=True, extra_values=None):
    """Helm values for NVIDIA's chart. Deterministic for a given plan."""
    data = render_config_map_data(plan)
    values = {
        "config": {"name": config_map_name, "default": plan.default_profile},
        "image": {"tag": image_tag},
        "gfd": {"enabled": bool(gfd)},
        # NFD comes with GFD as a chart dependency; EKS GPU AMIs carry no NFD, and GFD needs it
        # to publish its labels, so it stays on whenever GFD is on.
        "nfd": {
            "enabled": bool(gfd),
            # NFD's worker must reach GPU nodes, which carry nvidia.com/gpu:NoSchedule with no value.
            "worker": {"tolerations": [{"key": GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}]},
        },
        "podAnnotations": {CHART_CHECKSUM_ANNOTATION: config_hash(data)},
        "tolerations": [
            {"key": "CriticalAddonsOnly", "operator": "Exists"},
            {"key": GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"},
        ],
        "affinity": gpu_node_affinity(),
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
    }
    if extra_values:
        values = merge_values(values, extra_values)
    return values


def merge_values(base, override):
    """Deep merge of Helm values (dicts merge, everything else is replaced)."""
    result = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge_values(result[key], value)
        else:
            result[key] = value
    return result


def leaving_reason(node):
    """Why a GPU node is on its way out of the cluster (so no new plugin pod will land), or None."""
    meta = node.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return "being deleted"
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("key") == KARPENTER_DISRUPTED_TAINT_KEY and taint.get("effect") in ("NoSchedule", "NoExecute"):
            return "tainted %s:%s (Karpenter is draining it)" % (taint["key"], taint["effect"])
    return None


def split_leaving_nodes(gpu_nodes):
    """(staying, leaving): GPU nodes the plugin must run on, and those being deleted or drained.

    A node that is being deleted or drained by Karpenter gets no new DaemonSet pod, so waiting
    for the plugin there would fail every rollout that overlaps a scale-down. ``leaving`` is a
    list of ``{"name", "reason"}`` for the report.
    """
    staying, leaving = [], []
    for node in gpu_nodes:
        reason = leaving_reason(node)
        if reason:
            leaving.append({"name": node["metadata"]["name"], "reason": reason})
        else:
            staying.append(node)
    return staying, leaving


def required_nodes(daemonset, gpu_nodes):
    """Names of the GPU nodes a DaemonSet of the chart must run on.

    The plugin and GFD must run on every GPU node. The MPS control daemon is meant only for
    nodes that GFD marked MPS-capable (the chart selects them with a nodeSelector), so it is
    held to those. Any other nodeSelector (a user's values) does not shrink the set: a plugin
    that skips GPU nodes is a failed rollout. Callers pass the staying nodes
    (``split_leaving_nodes``).
    """
    selector = (((daemonset.get("spec") or {}).get("template") or {}).get("spec") or {}).get("nodeSelector") or {}
    if MPS_CAPABLE_LABEL in selector:
        return [n["metadata"]["name"] for n in gpu_nodes
                if ((n["metadata"].get("labels") or {}).get(MPS_CAPABLE_LABEL)) == selector[MPS_CAPABLE_LABEL]]
    return [n["metadata"]["name"] for n in gpu_nodes]


def daemonset_rollout(daemonsets, gpu_nodes):
    """Summarise DaemonSet readiness against the GPU nodes that should run it.

    ``daemonsets``: DaemonSet dicts; ``gpu_nodes``: Node dicts of the GPU nodes (nodes being
    deleted or drained are left out and listed under ``leaving_nodes``).
    Returns a dict with ``ready`` (bool) and the counts that explain it.
    """
    gpu_nodes, leaving = split_leaving_nodes(gpu_nodes)
    summary = {"ready": bool(daemonsets), "daemonsets": [], "target_nodes": len(gpu_nodes),
               "leaving_nodes": leaving}
    for ds in daemonsets:
        status = ds.get("status") or {}
        meta = ds.get("metadata") or {}
        desired = status.get("desiredNumberScheduled", 0)
        item = {
            "name": meta.get("name"),
            "required": len(required_nodes(ds, gpu_nodes)),
            "desired": desired,
            "updated": status.get("updatedNumberScheduled", 0),
            "ready": status.get("numberReady", 0),
            "available": status.get("numberAvailable", 0),
            "observed_generation_current": status.get("observedGeneration", 0) >= meta.get("generation", 0),
        }
        item["rolled_out"] = (
            item["observed_generation_current"]
            and desired >= item["required"]
            and item["updated"] == desired
            and item["ready"] == desired
            and item["available"] == desired
        )
        summary["ready"] = summary["ready"] and item["rolled_out"]
        summary["daemonsets"].append(item)
    return summary


def _pod_ready(pod):
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def nodes_missing_pods(daemonsets, gpu_nodes, pods):
    """Per DaemonSet, the required GPU nodes that have no Ready pod of it, with each node's
    taints: what a failed rollout message names so an SRE knows where to look.

    ``pods``: the chart's pods (any DaemonSet of the release); a pod belongs to a DaemonSet by
    its ownerReference uid.
    """
    staying, dummy = split_leaving_nodes(gpu_nodes)
    taints = {n["metadata"]["name"]: ["%s:%s" % (t.get("key"), t.get("effect"))
                                      for t in (n.get("spec") or {}).get("taints") or []]
              for n in staying}
    missing = {}
    for ds in daemonsets:
        uid = (ds.get("metadata") or {}).get("uid")
        ready_on = set()
        for pod in pods:
            owners = (pod.get("metadata") or {}).get("ownerReferences") or []
            if any(o.get("uid") == uid for o in owners) and _pod_ready(pod):
                ready_on.add((pod.get("spec") or {}).get("nodeName"))
        names = [name for name in required_nodes(ds, staying) if name not in ready_on]
        if names:
            missing[ds["metadata"]["name"]] = [{"name": name, "taints": taints.get(name, [])} for name in names]
    return missing


# --------------------------------------------------------------------------- Helm release storage
# Helm 3 keeps each release revision in a Secret (its default "secret" storage driver) named
# sh.helm.release.v1.<release>.v<revision>, labelled owner=helm,name=<release>,version=<revision>;
# data.release is base64(gzip(JSON of the release)). Reading it answers "what is installed, with
# which values" in one API request instead of two helm processes (list, get values).

HELM_RELEASE_SECRET_TYPE = "helm.sh/release.v1"
_GZIP_MAGIC = b"\x1f\x8b"


def helm_release_selector(release):
    return "owner=helm,name=%s" % release


def decode_helm_release(secret):
    """The release JSON (dict) stored in one Helm release Secret."""
    import base64
    import gzip

    raw = base64.b64decode(base64.b64decode((secret.get("data") or {})["release"]))
    if raw[:2] == _GZIP_MAGIC:
        raw = gzip.decompress(raw)
    return json.loads(raw.decode("utf-8"))


def latest_helm_release(secrets):
    """(summary, values) of the newest revision among a release's Secrets, or (None, None).

    ``summary`` has the fields of ``helm list -o json`` that callers use (name, namespace,
    revision, status, chart as "<name>-<version>", app_version); ``values`` are the user-supplied
    values, as ``helm get values`` prints them.
    """
    stored = [s for s in secrets if s.get("type") == HELM_RELEASE_SECRET_TYPE]
    if not stored:
        return None, None
    newest = max(stored, key=lambda s: int(((s.get("metadata") or {}).get("labels") or {}).get("version", 0)))
    release = decode_helm_release(newest)
    meta = (release.get("chart") or {}).get("metadata") or {}
    summary = {
        "name": release.get("name"),
        "namespace": release.get("namespace"),
        "revision": str(release.get("version")),
        "status": (release.get("info") or {}).get("status"),
        "chart": "%s-%s" % (meta.get("name"), meta.get("version")),
        "app_version": meta.get("appVersion", ""),
    }
    return summary, release.get("config") or {}


# --------------------------------------------------------------------------- option checks
# Helm values this module derives from the profiles; a user value there would silently fight them.
OWNED_VALUE_KEYS = ("config",)


def plugin_option_errors(image_tag, values, plan=None, gfd=True):
    """InvalidInput errors for device_plugin options that Helm or the cluster would only reject (or
    silently accept) after something was written: checked before the first request."""
    from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.sharing import STRATEGY_MPS
    from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.errors import InvalidInput

    errors = []
    mps = [p.name for p in plan.profiles if p.strategy == STRATEGY_MPS] if plan is not None else []
    gfd_values = values.get("gfd") if isinstance(values, dict) else None
    user_gfd = gfd_values.get("enabled") if isinstance(gfd_values, dict) else None
    if mps and (user_gfd is False or (user_gfd is None and not gfd)):
        # The chart schedules the MPS control daemon only where GFD put this label.
        field, value = ("values.gfd.enabled", user_gfd) if user_gfd is False else ("gfd", gfd)
        errors.append(InvalidInput(
            field, value,
            "keep GFD on (gfd: true), or use time-slicing instead of MPS in %s" % ", ".join(mps),
            "profile(s) %s use MPS, and the chart runs the MPS control daemon only on nodes labelled "
            "%s=true, which only GFD sets: the plugin would wait for the daemon forever"
            % (", ".join(mps), MPS_CAPABLE_LABEL)))
    if not isinstance(image_tag, str) or "@sha256:" not in image_tag:
        errors.append(InvalidInput(
            "image_tag", image_tag,
            "pin the plugin image by digest, e.g. the default %s" % IMAGE_TAG,
            "not pinned by an @sha256: digest (a tag can be moved under a running cluster)"))
    if not isinstance(values, dict):
        errors.append(InvalidInput(
            "values", values, "give a dict (YAML mapping) of chart values, e.g. {nodeSelector: {pool: gpu}}",
            "must be a dict of Helm values"))
        return errors
    for key in OWNED_VALUE_KEYS:
        if key in values:
            errors.append(InvalidInput(
                "values.%s" % key, values[key],
                "remove values.%s; the module sets the chart's config from profiles (one named config per "
                "profile, the default from default_profile)" % key,
                "the device plugin's config is managed by this module"))
    return errors


def chart_source(chart_ref, repo_url, is_local=False):
    """Helm arguments naming the chart: ``[chart_ref]``, plus ``--repo <url>`` when chart_ref is a
    bare chart name (not a local file or directory, no ``<repo>/`` alias, no ``oci://`` URL): then
    helm reads the repository index directly, so no ``helm repo add`` is needed beforehand."""
    bare = "/" not in chart_ref and ":" not in chart_ref and not is_local
    if bare and repo_url:
        return [chart_ref, "--repo", repo_url]
    return [chart_ref]
