#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: admission_policy
short_description: Admission policies that turn fractional GPU requests into slices and refuse what no slice serves
version_added: 0.1.0
author:
  - gpu_slicing.eks maintainers (@gpu-slicing-eks)
description:
  - From the same sharing profiles as the device plugin, writes, checks or removes a
    MutatingAdmissionPolicy and ValidatingAdmissionPolicies (C(admissionregistration.k8s.io/v1)) with
    their bindings. The API server runs them in CEL; no webhook and no extra server.
  - The mutating policy turns a container's fractional request, C(resources.limits) or C(requests)
    C(gpu) set to a share such as C("0.5"), or the pod annotation C(gpu-slicing.eks/gpu-fraction) (first
    container), into one slice of the profile that serves it (one C(nvidia.com/gpu), or C(nvidia.com/gpu.shared) when
    renamed), the C(nvidia.com/gpu) toleration and the node selector C(nvidia.com/device-plugin.config).
    Pods, the pod templates of Deployments, ReplicaSets, StatefulSets, DaemonSets and Jobs, and CronJobs.
  - The profile of a pod is the one its C(nvidia.com/device-plugin.config) node selector names, else
    I(default_profile); which shares a profile serves is the rule of the
    C(gpu_slicing.eks.shared_gpu_pod_spec) filter, rendered into the policies' CEL.
  - The validating policy refuses, with a message that names the container, the value and the fix, a
    share the profile cannot serve, a value of 1 or more (whole GPUs), more than one slice where the
    profile fails such requests (always for MPS), an unknown profile; a second one, always C(Warn), warns
    about a slice request without a profile selector when there are several profiles.
  - Only namespaces labelled I(namespace_label)=I(namespace_label_value) are affected (opt-in), never
    C(kube-system) or I(device_plugin_namespace).
  - On clusters that do not serve MutatingAdmissionPolicy v1 (before Kubernetes 1.36) only the validating
    policies are written, with a warning, or the module fails when I(mutating_policy_required=true).
  - Every object is checked by the API server (a server-side dry run, which compiles the CEL) before the
    first write; bad input writes nothing. Objects of the same name that gpu_slicing.eks did not write
    (label C(app.kubernetes.io/managed-by=gpu_slicing.eks)) make the module fail before any write.
  - See docs/ADMISSION.md for the rule, the objects and the messages.
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - gpu_slicing.eks.sharing_profiles
  - gpu_slicing.eks.eks_connection
options:
  state:
    description:
      - C(present) writes the policies and bindings; C(absent) removes every policy and binding of I(name)
        (I(profiles) not needed).
    type: str
    choices: [present, absent]
    default: present
  name:
    description:
      - Name of the policies and bindings. The objects are I(name), I(name)C(-warn), and the same with
        C(-workloads) and C(-cronjobs) for the pod templates.
    type: str
    default: gpu-slicing-eks
  namespace_label:
    description: The namespace label that opts a namespace in.
    type: str
    default: gpu-slicing.eks/admission
  namespace_label_value:
    description: The value of I(namespace_label) that opts a namespace in.
    type: str
    default: enabled
  validation_actions:
    description:
      - What the validating policy's binding does with a request no slice serves. C(Deny) refuses it;
        C(Warn) admits it with the message as a warning; C(Audit) records it in the audit log.
      - Under C(Warn) or C(Audit) such a pod asks for C(gpu-slicing.eks/unservable-gpu), which no node has, so it
        stays Pending rather than running without a GPU.
      - C(Deny) and C(Warn) together are refused (the API server refuses them too).
    type: list
    elements: str
    choices: [Deny, Warn, Audit]
    default: [Deny]
  device_plugin_namespace:
    description: The device plugin's namespace, which the policies never touch.
    type: str
    default: nvidia-device-plugin
  mutating_policy_required:
    description:
      - What to do on a cluster that does not serve C(admissionregistration.k8s.io/v1) MutatingAdmissionPolicy.
      - C(false) writes the validating policies only and warns; C(true) fails and writes nothing.
    type: bool
    default: false
requirements:
  - kubernetes >= 24.2.0
attributes:
  check_mode:
    description: Server-side dry runs; reports what would change and writes nothing.
    support: full
  diff_mode:
    description: Returns the before and after state of each changed object.
    support: full
notes:
  - I(profiles) is required with C(state=present).
  - The seed's C(gpuDevicePolicy) is no Kubernetes field; kubectl's strict field validation refuses a pod that
    carries it before admission. Remove the field.
  - The API server rounds resources values up to milli units before admission, so C(gpu) values with more than 3
    decimals are seen rounded up; the annotation form keeps 9 decimals.
seealso:
  - module: gpu_slicing.eks.device_plugin_config
  - module: gpu_slicing.eks.gpu_slicing_verify
"""

EXAMPLES = r"""
- name: Rewrite fractional GPU requests and refuse what no slice serves, in opted-in namespaces
  gpu_slicing.eks.admission_policy:
    profiles:
      - name: ts-4
        replicas: 4
      - name: ts-2
        replicas: 2
    default_profile: ts-4

- name: Opt a namespace in
  kubernetes.core.k8s:
    kind: Namespace
    name: ml-team
    definition:
      metadata:
        labels:
          gpu-slicing.eks/admission: enabled

- name: Only warn while teams move to the new form
  gpu_slicing.eks.admission_policy:
    profiles:
      - name: ts-4
        replicas: 4
    validation_actions: [Warn, Audit]

- name: Remove the policies and bindings
  gpu_slicing.eks.admission_policy:
    state: absent
"""

RETURN = r"""
objects:
  description: Each policy and binding under I(name) and what the run did to it (C(created), C(updated),
    C(unchanged), C(deleted)); in check mode what it would do.
  returned: always
  type: list
  elements: dict
  sample:
    - {kind: ValidatingAdmissionPolicy, name: gpu-slicing-eks, action: created}
    - {kind: MutatingAdmissionPolicyBinding, name: gpu-slicing-eks, action: unchanged}
mutating_policy_served:
  description: Whether the cluster serves admissionregistration.k8s.io/v1 MutatingAdmissionPolicy.
  returned: always
  type: bool
  sample: true
validating_policy_served:
  description: Whether the cluster serves admissionregistration.k8s.io/v1 ValidatingAdmissionPolicy.
  returned: always
  type: bool
  sample: true
scope:
  description: The namespaces the policies act in.
  returned: with state=present
  type: dict
  sample: {namespace_label: gpu-slicing.eks/admission, namespace_label_value: enabled,
           excluded_namespaces: [kube-system, nvidia-device-plugin]}
validation_actions:
  description: The validating policy binding's actions.
  returned: with state=present
  type: list
  elements: str
  sample: [Deny]
default_profile:
  description: The profile of pods without a profile node selector.
  returned: with state=present
  type: str
  sample: ts-4
profile_table:
  description:
    - Per profile what the policies serve, as rendered into their CEL. C(max) is the largest share one slice
      serves, in nano units (empty for strategy none, which serves whole numbers); C(fail) whether more than one
      slice is refused.
  returned: with state=present
  type: dict
  sample: {ts-4: {strategy: time-slicing, replicas: "4", resource: nvidia.com/gpu, max: 250000000n, fail: "false"}}
diff:
  description: Before and after of each changed object (with --diff).
  returned: when diff mode is on and something changed
  type: list
  elements: dict
api_retries:
  description: Transient failures retried (409 on apply, 429, 5xx, lost connections) - count, reasons, last ten operations, seconds slept.
  returned: when a Kubernetes API call was retried
  type: dict
  sample: {count: 2, by_reason: {conflict: 2}, operations: ["PATCH /apis/... (conflict)"], slept_seconds: 1.3}
"""

from ansible_collections.gpu_slicing.eks.plugins.module_utils.args import STATE_OPTION, sharing_arg_spec
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core import admission
from ansible_collections.gpu_slicing.eks.plugins.module_utils.kube.connection import connection_arg_spec, new_module
from ansible_collections.gpu_slicing.eks.plugins.module_utils.ops.admission import (
    AdmissionOptions,
    admission_policy,
)
from ansible_collections.gpu_slicing.eks.plugins.module_utils.runner import run_module


def argument_spec():
    spec = connection_arg_spec()
    spec.update(sharing_arg_spec(required=False))
    spec.update(
        state=dict(STATE_OPTION),
        name=dict(type="str", default=admission.DEFAULT_NAME),
        namespace_label=dict(type="str", default=admission.DEFAULT_NAMESPACE_LABEL),
        namespace_label_value=dict(type="str", default=admission.DEFAULT_NAMESPACE_LABEL_VALUE),
        validation_actions=dict(type="list", elements="str", choices=list(admission.VALIDATION_ACTIONS),
                                default=["Deny"]),
        device_plugin_namespace=dict(type="str", default=admission.DEFAULT_PLUGIN_NAMESPACE),
        mutating_policy_required=dict(type="bool", default=False),
    )
    return spec


def main():
    module = new_module(argument_spec=argument_spec(), supports_check_mode=True)
    run_module(module, admission_policy, AdmissionOptions.from_params)


if __name__ == "__main__":
    main()
