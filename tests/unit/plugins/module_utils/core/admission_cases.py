"""The shared fraction table: the shared_gpu_pod_spec filter and the admission policies must give
the same answer for every row (unit tests check the filter and the rendered inputs, the
integration test checks the policies on the real API server).

A row is (gpu value, profile selector or None, expected), expected being
(profile, resource, count) or a refusal kind: a part of the policy's message.

Values in resources have at most 3 decimal places here: the API server rounds every resources
value UP to milli units when it decodes a pod, before admission, so the policy sees 0.333333333
as 0.334 (which mps-3 cannot serve) where the filter, reading the text, serves it. That
disagreement is tested on its own in tests/integration/test_admission.py (ROUNDED).
"""

PLAN = {
    "default_profile": "ts-2",
    "profiles": [
        {"name": "ts-4", "strategy": "time-slicing", "replicas": 4, "fail_requests_greater_than_one": True},
        {"name": "ts-2", "strategy": "time-slicing", "replicas": 2, "rename_by_default": True},
        {"name": "mps-3", "strategy": "mps", "replicas": 3},
        {"name": "whole", "strategy": "none"},
    ],
}

CANNOT = "cannot serve"
WHOLE = "whole GPUs, not a slice"
NOT_POSITIVE = "not a positive share"
UNKNOWN = "names no sharing profile"

CASES = [
    ("0.5", None, ("ts-2", "nvidia.com/gpu.shared", 1)),
    ("0.1", None, ("ts-2", "nvidia.com/gpu.shared", 1)),
    ("0.25", "ts-4", ("ts-4", "nvidia.com/gpu", 1)),
    ("0.3", "ts-4", CANNOT),
    ("0.5", "ts-4", CANNOT),
    ("0.333", "mps-3", ("mps-3", "nvidia.com/gpu", 1)),
    ("0.333333334", "mps-3", CANNOT),
    ("0.34", "mps-3", CANNOT),
    ("0.6", None, CANNOT),
    ("1", None, WHOLE),
    ("1.5", "ts-4", WHOLE),
    ("1", "whole", ("whole", "nvidia.com/gpu", 1)),
    ("2", "whole", ("whole", "nvidia.com/gpu", 2)),
    ("0.5", "whole", CANNOT),
    ("0", None, NOT_POSITIVE),
    ("0.5", "nope", UNKNOWN),
]

#: A value the API server rounds up (milli units) in resources but not in the annotation form:
#: (value, selector, what the filter and the annotation form give, what the resources form gives).
ROUNDED = ("0.333333333", "mps-3", ("mps-3", "nvidia.com/gpu", 1), CANNOT)
