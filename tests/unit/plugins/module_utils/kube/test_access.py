"""kube.py's bulk helpers without a cluster: paged lists (with prefetch), concurrent creates."""

import json

import pytest

from ansible_collections.gpu_slicing.eks.plugins.module_utils.kube import access as kube


@pytest.mark.parametrize("body,token", [
    (b'{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"9","continue":"eyJ2IjoibWV0YSJ9",'
     b'"remainingItemCount":5},"items":[]}', "eyJ2IjoibWV0YSJ9"),
    (b'{"kind":"PodList","metadata":{"continue":"a\\u003d\\"b"},"items":[]}', 'a="b'),
    # a "continue" inside the items is not the list's token
    (b'{"kind":"PodList","metadata":{"resourceVersion":"9"},"items":[{"metadata":{"continue":"x"}}]}', None),
    (b'{"kind":"PodList","metadata":{"resourceVersion":"9","continue":""},"items":[]}', None),
])
def test_continue_token_from_the_head_of_a_page(body, token):
    assert kube._continue_token(body) == (token or None)


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


def access(client):
    obj = kube.KubeAccess.__new__(kube.KubeAccess)  # no module: only the client is used here
    obj.client = client
    return obj


def test_list_raw_follows_every_page_in_order():
    client = PagedClient([[{"n": 1}, {"n": 2}], [{"n": 3}], [{"n": 4}]])
    items = access(client).list_raw("Pod", "v1", field_selector="spec.nodeName!=", page_size=2)
    assert [i["n"] for i in items] == [1, 2, 3, 4]
    assert [c.get("_continue") for c in client.calls] == [None, "1", "2"]
    assert all(c["limit"] == 2 and c["field_selector"] == "spec.nodeName!=" for c in client.calls)


def test_list_raw_together_keeps_the_order_of_the_requests():
    client = PagedClient([[{"n": 1}]])
    nodes, pods = access(client).list_raw_together({"kind": "Node", "api_version": "v1"},
                                                   {"kind": "Pod", "api_version": "v1"})
    assert nodes == pods == [{"n": 1}]


def test_create_many_reports_each_error_in_place():
    pods = [{"kind": "Pod", "apiVersion": "v1", "metadata": {"name": n, "namespace": "x"}} for n in
            ("a", "bad", "c", "d")]
    results = access(PagedClient([[]])).create_many(pods, workers=3)
    assert [d["metadata"]["name"] for d, dummy in results] == ["a", "bad", "c", "d"]
    assert [type(e).__name__ if e else None for dummy, e in results] == [None, "ValueError", None, None]


class RawResponse(object):
    """An unserialized urllib3 response: its connection goes back to the pool only once read."""

    def __init__(self):
        self.reads = 0

    def read(self):
        self.reads += 1
        return b"{}"


class RawClient(PagedClient):
    def __init__(self):
        super(RawClient, self).__init__([[]])
        self.responses = []

    def _raw(self):
        response = RawResponse()
        self.responses.append(response)
        return response

    def create(self, resource, definition, namespace=None, serialize=True):
        assert serialize is False
        return self._raw()

    def delete(self, resource, **kwargs):
        assert kwargs.get("serialize") is False
        return self._raw()


def test_raw_responses_are_read_so_their_connections_are_reused():
    client = RawClient()
    pods = [{"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "p%d" % i, "namespace": "x"}} for i in range(5)]
    access(client).create_many(pods, workers=2)
    assert access(client).delete_collection("Pod", "v1", "x", "run=1", grace_period_seconds=0) == "collection"
    assert len(client.responses) == 6
    assert [r.reads for r in client.responses] == [1] * 6
