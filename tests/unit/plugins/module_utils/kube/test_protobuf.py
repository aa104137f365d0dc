"""kube_protobuf's readers on protobuf lists built here with a minimal wire-format encoder.

The encoder writes what the API server writes for these messages (field numbers from
k8s.io/api/core/v1 generated.proto); the integration test test_slicing_info.py checks the
readers against a real API server's answers.
"""

import pytest

from ansible_collections.gpu_slicing.eks.plugins.module_utils.kube import protobuf as kp


def varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def msg(field, payload):
    if isinstance(payload, str):
        payload = payload.encode()
    return varint(field << 3 | 2) + varint(len(payload)) + payload


def scalar(field, value):
    return varint(field << 3) + varint(value)


def fixed64(field):
    return varint(field << 3 | 1) + b"\x01" * 8


def fixed32(field):
    return varint(field << 3 | 5) + b"\x02" * 4


def quantities(field, mapping):
    return b"".join(msg(field, msg(1, k) + msg(2, msg(1, v))) for k, v in mapping.items())


def container(name, limits=None, requests=None):
    resources = quantities(1, limits or {}) + quantities(2, requests or {})
    return msg(1, name) + msg(2, "cuda:12") + (msg(8, resources) if resources else b"") + scalar(17, 1)


def pod(node=None, phase=None, containers=(), init=()):
    # metadata first and large (managedFields), as the server writes it: skipped whole
    meta = msg(1, "p") + msg(3, "ns") + msg(17, "x" * 300)
    spec = msg(1, msg(1, "vol")) + b"".join(msg(2, c) for c in containers) + scalar(4, 30)
    if node:
        spec += msg(10, node)
    spec += b"".join(msg(20, c) for c in init) + fixed64(99) + fixed32(98)
    status = (msg(1, phase) if phase else b"") + msg(2, msg(1, "Ready"))
    return msg(1, meta) + msg(2, spec) + msg(3, status)


def node(name, labels, allocatable, capacity=None):
    label_entries = b"".join(msg(11, msg(1, k) + (msg(2, v) if v else b"")) for k, v in labels.items())
    meta = msg(1, name) + scalar(7, 3) + label_entries + msg(12, msg(1, "a") + msg(2, "b"))
    status = quantities(1, capacity or allocatable) + quantities(2, allocatable) + msg(8, msg(1, "image" * 50))
    return msg(1, meta) + msg(2, msg(5, "aws:///x")) + msg(3, status)


def envelope(items, token=None):
    list_meta = msg(2, "123") + (msg(3, token) if token else b"")
    body = msg(1, list_meta) + b"".join(msg(2, i) for i in items)
    unknown = msg(1, msg(1, "v1") + msg(2, "PodList")) + msg(2, body) + msg(4, "")
    return kp.MAGIC + unknown


def test_pods_keep_node_phase_and_every_containers_resources():
    data = envelope([
        pod("gpu-1", "Running", [container("a", limits={"nvidia.com/gpu": "1"}),
                                 container("b", requests={"cpu": "100m"}, limits={"nvidia.com/gpu.shared": "2"})],
            init=[container("i", requests={"nvidia.com/gpu": "3"})]),
        pod(None, "Pending", [container("c")]),
    ])
    assert kp.list_items(data, kp.read_pod) == [
        {"spec": {"nodeName": "gpu-1",
                  "containers": [{"resources": {"limits": {"nvidia.com/gpu": "1"}}},
                                 {"resources": {"limits": {"nvidia.com/gpu.shared": "2"},
                                                "requests": {"cpu": "100m"}}}],
                  "initContainers": [{"resources": {"requests": {"nvidia.com/gpu": "3"}}}]},
         "status": {"phase": "Running"}},
        {"spec": {"containers": [{}]}, "status": {"phase": "Pending"}},
    ]


def test_nodes_keep_name_labels_and_resources():
    data = envelope([node("gpu-1", {"nvidia.com/gpu.count": "4", "empty": ""},
                          {"nvidia.com/gpu": "16", "cpu": "47"}, capacity={"nvidia.com/gpu": "16", "cpu": "48"})])
    assert kp.list_items(data, kp.read_node) == [{
        "metadata": {"name": "gpu-1", "labels": {"nvidia.com/gpu.count": "4", "empty": ""}},
        "status": {"capacity": {"nvidia.com/gpu": "16", "cpu": "48"},
                   "allocatable": {"nvidia.com/gpu": "16", "cpu": "47"}},
    }]


def test_a_quantity_without_its_string_is_zero():
    entry = msg(2, msg(1, "nvidia.com/gpu") + msg(2, b""))
    data = envelope([msg(2, msg(2, msg(8, entry)))])
    assert kp.list_items(data, kp.read_pod)[0]["spec"]["containers"] == [{"resources": {"requests": {"nvidia.com/gpu": "0"}}}]


def test_long_sizes_and_many_items():
    # sizes over 127 bytes and keys over field 15 take multi-byte varints
    pods = [pod("n-%d" % i, "Running", [container("c" * 200, limits={"nvidia.com/gpu": str(i)})]) for i in range(300)]
    items = kp.list_items(envelope(pods), kp.read_pod)
    assert [p["spec"]["nodeName"] for p in items] == ["n-%d" % i for i in range(300)]
    assert items[299]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "299"


@pytest.mark.parametrize("token", ["eyJ2IjoibWV0YSJ9", None])
def test_continue_token(token):
    assert kp.continue_token(envelope([pod("n")], token)) == token


@pytest.mark.parametrize("data,what", [
    (b'{"kind":"PodList"}', "prefix"),
    (kp.MAGIC + msg(1, "x"), "no object"),
    (envelope([pod("gpu-1", "Running")])[:-40], "runs past"),
    (kp.MAGIC + msg(2, msg(2, varint(2 << 3 | 3))), "wire type 3"),
    (kp.MAGIC + msg(2, msg(2, msg(2, b"\x12\xff"))), "ends inside"),
])
def test_bad_bytes_are_a_protobuf_error(data, what):
    with pytest.raises(kp.ProtobufError, match=what):
        kp.list_items(data, kp.read_pod)


@pytest.mark.parametrize("content_type,expected", [
    ("application/vnd.kubernetes.protobuf", True),
    ("application/vnd.kubernetes.protobuf; charset=binary", True),
    ("application/json", False),
    (None, False),
])
def test_is_protobuf(content_type, expected):
    assert kp.is_protobuf(content_type) is expected
