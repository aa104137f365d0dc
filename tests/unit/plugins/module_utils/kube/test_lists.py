"""lists.py without a cluster: paged lists (with prefetch), in JSON and in protobuf, and the
refusals asked again as JSON."""

import json

import pytest

from ansible_collections.gpu_slicing.eks.plugins.module_utils.kube import lists
from ansible_collections.gpu_slicing.eks.plugins.module_utils.kube import protobuf as kp
from ansible_collections.gpu_slicing.eks.plugins.module_utils.kube.access import error_message

from .test_protobuf import container, envelope, pod


@pytest.mark.parametrize("body,token", [
    (b'{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"9","continue":"eyJ2IjoibWV0YSJ9",'
     b'"remainingItemCount":5},"items":[]}', "eyJ2IjoibWV0YSJ9"),
    (b'{"kind":"PodList","metadata":{"continue":"a\\u003d\\"b"},"items":[]}', 'a="b'),
    # a "continue" inside the items is not the list's token
    (b'{"kind":"PodList","metadata":{"resourceVersion":"9"},"items":[{"metadata":{"continue":"x"}}]}', None),
    (b'{"kind":"PodList","metadata":{"resourceVersion":"9","continue":""},"items":[]}', None),
])
def test_continue_token_from_the_head_of_a_page(body, token):
    assert lists._continue_token(body) == (token or None)


class Response(object):
    def __init__(self, data):
        self.data = data


class PagedClient(object):
    """kubernetes.core's K8SClient surface list_raw uses: resource() and client.get()."""

    def __init__(self, pages):
        self.pages = pages
        self.client = self
        self.calls = []

    def resource(self, kind, api_version):
        return (kind, api_version)

    def get(self, resource, **kwargs):
        self.calls.append(kwargs)
        index = int(kwargs.get("_continue") or 0)
        items = self.pages[index]
        meta = {"continue": str(index + 1)} if index + 1 < len(self.pages) else {}
        return Response(json.dumps({"kind": "PodList", "metadata": meta, "items": items}).encode())

    def create(self, resource, definition, namespace=None, serialize=True):
        if definition["metadata"]["name"] == "bad":
            raise ValueError("refused")
        self.calls.append(definition["metadata"]["name"])


def test_list_raw_follows_every_page_in_order():
    client = PagedClient([[{"n": 1}, {"n": 2}], [{"n": 3}], [{"n": 4}]])
    items = lists.list_raw(client, "Pod", "v1", field_selector="spec.nodeName!=", page_size=2)
    assert [i["n"] for i in items] == [1, 2, 3, 4]
    assert [c.get("_continue") for c in client.calls] == [None, "1", "2"]
    assert all(c["limit"] == 2 and c["field_selector"] == "spec.nodeName!=" for c in client.calls)


def test_list_raw_together_keeps_the_order_of_the_requests():
    client = PagedClient([[{"n": 1}]])
    nodes, pods = lists.list_raw_together(client, {"kind": "Node", "api_version": "v1"},
                                          {"kind": "Pod", "api_version": "v1"})
    assert nodes == pods == [{"n": 1}]


class TypedResponse(object):
    def __init__(self, data, content_type):
        self.data = data
        self.headers = {"Content-Type": content_type}


class ApiError(Exception):
    """What the dynamic client raises: the HTTP status and the body as text, or None when the body
    is not UTF-8 (a protobuf Status with a code of 128 or more)."""

    def __init__(self, status, body):
        Exception.__init__(self, "%d" % status)
        self.status = status
        self.body = body


class RefusingServer(PagedClient):
    """Refuses every request: when asked for protobuf with ``protobuf_body`` (None: unreadable),
    else in JSON."""

    def __init__(self, status, protobuf_body=None):
        PagedClient.__init__(self, [[]])
        self.status = status
        self.protobuf_body = protobuf_body

    def get(self, resource, **kwargs):
        self.calls.append(kwargs)
        if "header_params" in kwargs:
            raise ApiError(self.status, self.protobuf_body)
        raise ApiError(self.status, '{"kind":"Status","message":"found \'=\', expected: identifier"}')


def test_a_refusal_in_protobuf_is_asked_again_as_json_for_its_message():
    server = RefusingServer(400)
    with pytest.raises(ApiError) as caught:
        lists.list_raw(server, "Pod", "v1", label_selector="a=b=c!", fields_only=True)
    assert "expected: identifier" in error_message(caught.value)
    assert ["header_params" in c for c in server.calls] == [True, False]
    assert server.calls[1]["label_selector"] == "a=b=c!"


@pytest.mark.parametrize("status", [429, 500, 503])
def test_other_failures_are_not_asked_again(status):
    server = RefusingServer(status)
    with pytest.raises(ApiError):
        lists.list_raw(server, "Pod", "v1", fields_only=True)
    assert len(server.calls) == 1


def test_a_readable_refusal_is_not_asked_again():
    server = RefusingServer(403, protobuf_body=' {"kind":"Status","message":"forbidden"}')
    with pytest.raises(ApiError) as caught:
        lists.list_raw(server, "Pod", "v1", fields_only=True)
    assert "forbidden" in error_message(caught.value)
    assert len(server.calls) == 1


class ProtobufServer(PagedClient):
    """Answers protobuf when asked, or JSON always (``json_only``), as a proxy that does not
    pass protobuf would."""

    def __init__(self, pages, json_only=False):
        PagedClient.__init__(self, pages)
        self.json_only = json_only

    def get(self, resource, **kwargs):
        self.calls.append(kwargs)
        index = int(kwargs.get("_continue") or 0)
        token = str(index + 1) if index + 1 < len(self.pages) else None
        node_names = self.pages[index]
        accept = (kwargs.get("header_params") or {}).get("Accept", "application/json")
        if kp.PROTOBUF in accept and not self.json_only:
            return TypedResponse(envelope([pod(n, "Running", [container("c", limits={"nvidia.com/gpu": "1"})])
                                           for n in node_names], token), kp.PROTOBUF)
        items = [{"metadata": {"name": "p", "managedFields": [{}]}, "spec": {"nodeName": n}} for n in node_names]
        body = {"kind": "PodList", "metadata": {"continue": token} if token else {}, "items": items}
        return TypedResponse(json.dumps(body).encode(), "application/json")


def test_list_raw_fields_only_reads_protobuf_pages_in_order():
    server = ProtobufServer([["a", "b"], ["c"], ["d"]])
    items = lists.list_raw(server, "Pod", "v1", page_size=2, fields_only=True)
    assert [p["spec"]["nodeName"] for p in items] == ["a", "b", "c", "d"]
    assert items[0]["spec"]["containers"] == [{"resources": {"limits": {"nvidia.com/gpu": "1"}}}]
    assert [c.get("_continue") for c in server.calls] == [None, "1", "2"]
    assert all(c["header_params"]["Accept"] == kp.ACCEPT_PROTOBUF_OR_JSON for c in server.calls)


def test_list_raw_fields_only_reads_a_json_answer_whole():
    server = ProtobufServer([["a"], ["b"]], json_only=True)
    items = lists.list_raw(server, "Pod", "v1", fields_only=True)
    assert [p["spec"]["nodeName"] for p in items] == ["a", "b"]
    assert items[0]["metadata"]["managedFields"] == [{}]


def test_list_raw_asks_for_json_without_fields_only():
    server = ProtobufServer([["a"]])
    assert lists.list_raw(server, "Pod", "v1")[0]["metadata"]["name"] == "p"
    assert "header_params" not in server.calls[0]
