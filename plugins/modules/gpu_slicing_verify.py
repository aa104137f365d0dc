#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: gpu_slicing_verify
short_description: Prove that GPU slicing works on nodes by checking them and scheduling test pods
version_added: 0.1.0
author:
  - gpu_slicing.eks maintainers (@gpu-slicing-eks)
description:
  - Verifies a GPU sharing profile (time-slicing or MPS) on the selected nodes and returns a verdict
    per node and per check (C(passed), C(failed) or C(not-available)) with the reason and the expected
    and observed values, plus timings.
  - "Node-side checks: the node's profile label; allocatable of the advertised resource equals
    C(nvidia.com/gpu.count) x replicas; the GFD labels C(nvidia.com/gpu.replicas),
    C(nvidia.com/gpu.sharing-strategy) and C(nvidia.com/gpu.product) (C(-SHARED) suffix when shared and
    not renamed) match the profile; the device-plugin pod on the node is Ready."
  - "Pod checks, in a new namespace per run (C(gpu-slicing-verify-<random>), Pod Security Admission
    C(restricted) enforced): with C(fail_requests_greater_than_one) a two-slice pod must be rejected
    (Failed with C(UnexpectedAdmissionError), or never scheduled); then N = GPUs x replicas one-slice
    pods per node, placed by kube-scheduler through a node affinity on the node's name, must all be
    Running at the same time (their start and ready times and the overlap window are returned); then one
    more pod must stay Pending as Unschedulable."
  - On real GPU nodes each test pod prints C(nvidia-smi -L); all pods on a GPU must report the same
    C(GPU-<uuid>). On simulated nodes (annotation C(kwok.x-k8s.io/node=fake) or label
    C(gpu-slicing.eks/simulated=true)) that evidence is reported as C(not-available), never invented.
  - The run's namespace, and with it every test pod, is always deleted, also on failure, timeout,
    interruption or SIGTERM. Namespaces left by an interrupted earlier run are removed at start.
    Do not run two verifications against the same cluster at the same time.
  - The task fails when any check failed; C(msg) is a one-line summary of what failed.
  - I(profiles) is required (the same list given to M(gpu_slicing.eks.device_plugin)).
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - gpu_slicing.eks.sharing_profiles
  - gpu_slicing.eks.eks_connection
options:
  profile:
    description: Name of the profile (from I(profiles)) to verify. Defaults to the default profile.
    type: str
  node_names:
    description: Verify these nodes (by name). Takes precedence over I(nodepool_name) and the profile label.
    type: list
    elements: str
  nodepool_name:
    description:
      - Verify the nodes with label C(karpenter.sh/nodepool=<nodepool_name>).
      - Without I(node_names) and I(nodepool_name), the nodes labelled C(nvidia.com/device-plugin.config=<profile>) are verified.
    type: str
  device_plugin_namespace:
    description: Namespace of the NVIDIA device plugin's pods.
    type: str
    default: nvidia-device-plugin
  image:
    description:
      - Test pod image. The default is NVIDIA's CUDA vectorAdd sample by tag
        (C(nvcr.io/nvidia/k8s/cuda-sample:vectoradd-cuda12.5.0-ubuntu22.04)); this collection ships no digest
        for it because none could be checked when it was written.
      - Pin it by digest (C(...@sha256:...)) in production; the module warns when the image has no digest.
    type: str
    default: nvcr.io/nvidia/k8s/cuda-sample:vectoradd-cuda12.5.0-ubuntu22.04
  command:
    description:
      - Test container command. The default prints C(nvidia-smi -L), runs the vectorAdd sample, then sleeps
        I(hold_seconds) to hold its slice. A custom command must print the GPU UUID and keep running.
    type: list
    elements: str
  hold_seconds:
    description: How long the default command holds its slice (pods are deleted at the end anyway).
    type: int
    default: 3600
  pod_resources:
    description:
      - CPU and memory C(requests) and C(limits) of the test pods (Pod Security and quotas want them).
      - Default requests C(cpu=50m), C(memory=128Mi); limits C(cpu=500m), C(memory=512Mi).
    type: dict
  tolerations:
    description: Extra tolerations for the test pods (C(nvidia.com/gpu:NoSchedule) is always tolerated).
    type: list
    elements: dict
  node_wait_timeout:
    description:
      - Seconds to wait for node-side evidence that a fresh rollout publishes late. GPU feature discovery's
        labels and the advertised allocatable appear seconds after the device-plugin pods report ready
        (longer on a loaded node), so a node that lacks one of them, or whose plugin pod is not Ready yet,
        is read again every 2 seconds until it shows them or this time is spent.
      - A node showing a wrong value (a label or allocatable that is there and differs from the profile, a
        profile label naming another profile) is judged at once.
      - C(0) judges every node on the first read. This time comes before, and on top of, I(wait_timeout).
    type: int
    default: 60
  wait_timeout:
    description:
      - Seconds the pod checks may take in total before the remaining checks fail as timed out.
      - It bounds waiting, not evidence. A check that is already complete when it is first looked at
        (all slice pods Running at once) passes even when that look comes after the budget is spent, so
        C(0) does not force a failure on a node that proves slicing at the first look.
    type: int
    default: 300
  multi_slice_wait_timeout:
    description: Seconds to wait for a two-slice pod to be rejected; still Pending after that counts as never scheduled.
    type: int
    default: 30
  unschedulable_grace:
    description: Stop waiting for a node's slice pods when every pod is Running or Unschedulable and nothing changed for this long.
    type: int
    default: 10
  log_wait_timeout:
    description: Seconds to wait for the GPU UUID to appear in the test pods' logs (real nodes only).
    type: int
    default: 60
  cleanup_wait_timeout:
    description:
      - Seconds to wait for the run's namespace to disappear at the end.
      - The test pods are deleted (grace period 0) before the module returns in any case, so their slices are
        free; the namespace is then deleted, and removing it is the namespace controller's work (seconds for an
        empty namespace, tens of seconds after thousands of pods). C(0) requests the deletion without waiting
        for it (C(run.cleanup.namespace_deletion_requested)); a later run removes a namespace still left.
    type: int
    default: 0
  cleanup_only:
    description:
      - Verify nothing; delete the namespaces (and so the test pods) that earlier runs left, and return.
      - For removing everything GPU slicing created (C(playbooks/disable.yml)); I(profiles) is not needed then.
      - Reports C(changed) when a namespace was deleted (or would be, in check mode), and the names in
        C(run.cleanup.leftover_namespaces_removed) and C(run.cleanup.leftover_namespaces_terminating).
    type: bool
    default: false
  karpenter_nodepool_name:
    description:
      - Run the Karpenter launch check for this NodePool (reported as the pseudo-node C(nodepool/<name>)).
        I(karpenter_pods) one-slice pods pinned to the NodePool and one instance type are created at once;
        once all of them run and no NodeClaim appeared for I(karpenter_settle) seconds, the NodeClaims
        launched meanwhile must equal ceil((pods - free slices on the pool's existing nodes of that type) /
        (GPUs x replicas)). More means Karpenter does not know about the slices (no NodeOverlay).
      - The check's pods are deleted afterwards, and so are the NodeClaims it launched (I(karpenter_cleanup_nodes)).
      - It launches real nodes on EKS, which cost money while the check runs.
      - With I(karpenter_nodepool_name) set, the verification may select no node at all (a NodePool scaled to zero).
    type: str
  karpenter_instance_type:
    description:
      - Instance type the Karpenter check pins its pods to (C(node.kubernetes.io/instance-type)). Needed when the
        NodePool admits more than one; by default its only instance type. Its GPU count comes from the
        collection's instance-type table.
    type: str
  karpenter_pods:
    description: Pods the Karpenter check creates. Default GPUs x replicas + 1 (the minimum is then 2 new nodes on an empty pool).
    type: int
  karpenter_wait_timeout:
    description: Seconds the Karpenter check waits for all its pods to run (node launch included).
    type: int
    default: 600
  karpenter_settle:
    description: Seconds without a new NodeClaim, after all pods run, before the NodeClaims are counted (late launches count too).
    type: int
    default: 10
  karpenter_cleanup_nodes:
    description: Delete the NodeClaims launched during the Karpenter check when it ends (Karpenter drains and terminates them).
    type: bool
    default: true
  admission_policy_name:
    description:
      - Also check that the admission policies of this name (M(gpu_slicing.eks.admission_policy)'s I(name)) are
        active, as the check C(admission_policies_active) of an entry C(admission/<name>) in the report.
      - Last in the run, a second namespace of the run is created with the policies' opt-in label and two server
        dry-run pods go there (no pod is created; the namespace is deleted after) - one asking for the seed's
        C(gpu) share that I(profile) serves, which must come back as one slice with the toleration and the
        profile's node selector, and one asking for C(gpu) 1.5, which
        must be refused (with C(validationActions) C(Warn) or C(Audit), admitted asking for
        C(gpu-slicing.eks/unservable-gpu)).
      - Fails when the policies are missing; not available in check mode or without the mutating policy.
    type: str
  report_json:
    description: Write the full report as JSON to this path on the controller's host running the module.
    type: path
  report_junit:
    description: Write a JUnit XML report (one test suite per node, one test case per check) to this path.
    type: path
requirements:
  - kubernetes >= 24.2.0
attributes:
  check_mode:
    description: Runs the node-side checks only and creates no test pods; the pod checks are reported as not-available.
    support: partial
    details: In check mode no namespace and no test pods are created; only the node-side checks run.
  diff_mode:
    description: Nothing is changed, so there is no diff.
    support: none
notes:
  - The test pods run as user 1000 with all capabilities dropped, no privilege escalation and the
    C(RuntimeDefault) seccomp profile, so they pass Pod Security Admission C(restricted).
  - A node with more slices than its pod limit allows cannot hold N test pods; verify such nodes with a lower replica count.
"""

EXAMPLES = r"""
- name: Verify the ts-4 profile on the nodes labelled with it
  gpu_slicing.eks.gpu_slicing_verify:
    profiles:
      - name: ts-4
        strategy: time-slicing
        replicas: 4
    report_junit: "{{ playbook_dir }}/artifacts/verify.xml"

- name: Verify two named nodes with a pinned image, node-side only in check mode
  gpu_slicing.eks.gpu_slicing_verify:
    profiles: "{{ gpu_sharing_profiles }}"
    profile: ts-4
    node_names: [ip-10-0-1-23.ec2.internal, ip-10-0-2-7.ec2.internal]
    image: nvcr.io/nvidia/k8s/cuda-sample@sha256:<digest you checked>
  check_mode: true

- name: Prove Karpenter launches the minimum number of nodes for 5 one-slice pods (ts-4 on g4dn.xlarge -> 2)
  gpu_slicing.eks.gpu_slicing_verify:
    profiles: "{{ gpu_sharing_profiles }}"
    profile: ts-4
    nodepool_name: gpu-ts-4
    karpenter_nodepool_name: gpu-ts-4
    karpenter_instance_type: g4dn.xlarge
    karpenter_pods: 5
"""

RETURN = r"""
passed:
  description: True when no check failed (not-available checks do not fail a run).
  returned: always
  type: bool
summary:
  description: One line with the verdict, the counts and each failed check with expected and observed values.
  returned: unless cleanup_only is true
  type: str
nodes:
  description: One verdict per node, with its checks (name, status, reason, expected, observed, details) and timings.
  returned: unless cleanup_only is true
  type: list
  elements: dict
timings:
  description: Seconds per phase and C(total_seconds) from start to verdict.
  returned: unless cleanup_only is true
  type: dict
run:
  description:
    - The run's namespace, run id, image, profile, check mode flag and what cleanup did.
    - C(cleanup.pods_removed) (the test pods are gone), C(cleanup.namespace_deletion_requested),
      C(cleanup.namespace_removed) (seen gone within I(cleanup_wait_timeout)), C(cleanup.leftover_namespaces_removed)
      (namespaces of earlier runs deleted first) and C(cleanup.errors).
  returned: always
  type: dict
reports:
  description: Paths of the report files written.
  returned: unless cleanup_only is true
  type: dict
api_retries:
  description: Transient failures retried (409 on apply, 429, 5xx, lost connections) - count, reasons, last ten operations, seconds slept.
  returned: when a Kubernetes API or helm call was retried
  type: dict
  sample: {count: 2, by_reason: {conflict: 2}, operations: ["PATCH /api/v1/namespaces/x/configmaps/y (conflict)"], slept_seconds: 1.3}
"""

from ansible_collections.gpu_slicing.eks.plugins.module_utils.args import sharing_arg_spec
from ansible_collections.gpu_slicing.eks.plugins.module_utils.kube.connection import (
    connection_arg_spec,
    new_module,
)
from ansible_collections.gpu_slicing.eks.plugins.module_utils.ops.verify import (
    DEFAULT_IMAGE,
    VerifyOptions,
    verify,
)
from ansible_collections.gpu_slicing.eks.plugins.module_utils.runner import run_module


def main():
    argument_spec = connection_arg_spec()
    argument_spec.update(sharing_arg_spec(required=False))
    argument_spec.update(
        profile=dict(type="str"),
        node_names=dict(type="list", elements="str"),
        nodepool_name=dict(type="str"),
        device_plugin_namespace=dict(type="str", default="nvidia-device-plugin"),
        image=dict(type="str", default=DEFAULT_IMAGE),
        command=dict(type="list", elements="str"),
        hold_seconds=dict(type="int", default=3600),
        pod_resources=dict(type="dict"),
        tolerations=dict(type="list", elements="dict"),
        wait_timeout=dict(type="int", default=300),
        node_wait_timeout=dict(type="int", default=60),
        multi_slice_wait_timeout=dict(type="int", default=30),
        unschedulable_grace=dict(type="int", default=10),
        log_wait_timeout=dict(type="int", default=60),
        cleanup_wait_timeout=dict(type="int", default=0),
        cleanup_only=dict(type="bool", default=False),
        karpenter_nodepool_name=dict(type="str"),
        karpenter_instance_type=dict(type="str"),
        karpenter_pods=dict(type="int"),
        karpenter_wait_timeout=dict(type="int", default=600),
        karpenter_settle=dict(type="int", default=10),
        karpenter_cleanup_nodes=dict(type="bool", default=True),
        admission_policy_name=dict(type="str"),
        report_json=dict(type="path"),
        report_junit=dict(type="path"),
    )
    module = new_module(argument_spec=argument_spec, supports_check_mode=True)
    run_module(module, verify, VerifyOptions.from_params)


if __name__ == "__main__":
    main()
