# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Large lists read straight from the response, page by page: JSON, or protobuf for the few
fields a report needs (``protobuf.py``). ``client`` is kubernetes.core's K8SClient."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.gpu_slicing.eks.plugins.module_utils.kube import protobuf as kube_protobuf
from ansible_collections.gpu_slicing.eks.plugins.module_utils.kube.retries import response_header


def list_raw(client, kind, api_version, namespace=None, label_selector=None, field_selector=None, page_size=2000,
             fields_only=False):
    """Items as plain dicts straight from the response, page by page.

    The dynamic client's ResourceInstance wrapping costs more than the request itself on
    large lists (20,000 pods), so reports read the raw response instead. Decoding a page and
    fetching the next one overlap: the continue token is read from the head of the page
    (the list's metadata comes before its items), so the API server serves page N+1 while
    page N is decoded here.

    ``fields_only`` (Pods and Nodes): ask for protobuf and keep only the fields that
    kube_protobuf's reader for the kind names. A server that answers JSON all the same
    (a proxy in between) is read as JSON, whole objects.
    """
    resource = client.resource(kind, api_version)
    reader = kube_protobuf.READERS[kind] if fields_only else None

    def fetch(token):
        kwargs = selection(namespace, label_selector, field_selector)
        kwargs.update(limit=page_size, serialize=False)
        if token:
            kwargs["_continue"] = token
        if reader:
            kwargs["header_params"] = {"Accept": kube_protobuf.ACCEPT_PROTOBUF_OR_JSON}
        try:
            response = client.client.get(resource, **kwargs)
        except Exception as exc:
            if not reader or not _refused_unreadably(exc):
                raise
            # A refusal in protobuf reaches us without its message (the client reads error
            # bodies as text): ask once more as JSON, for the error that says what is wrong.
            del kwargs["header_params"]
            response = client.client.get(resource, **kwargs)
        return response.data, kube_protobuf.is_protobuf(response_header(response, "Content-Type"))

    def token_and_items(page):
        data, protobuf = page
        if protobuf:
            return kube_protobuf.continue_token(data), lambda: kube_protobuf.list_items(data, reader)
        return _continue_token(data), lambda: json.loads(data).get("items") or []

    items = []
    with ThreadPoolExecutor(max_workers=1) as prefetch:
        page = fetch(None)
        while True:
            token, decode = token_and_items(page)
            upcoming = prefetch.submit(fetch, token) if token else None
            items.extend(decode())
            if upcoming is None:
                return items
            page = upcoming.result()


def list_raw_together(client, *requests):
    """Several ``list_raw`` calls at the same time (each a dict of its keyword arguments);
    their results in order. The API server works on one while this process decodes another."""
    for request in requests:  # discovery once, outside the threads
        client.resource(request["kind"], request["api_version"])
    with ThreadPoolExecutor(max_workers=len(requests) or 1) as pool:
        futures = [pool.submit(list_raw, client, **request) for request in requests]
        return [f.result() for f in futures]


def selection(namespace=None, label_selector=None, field_selector=None):
    """A list request's namespace and selectors, only those given (the dynamic client's names)."""
    kwargs = {}
    if namespace:
        kwargs["namespace"] = namespace
    if label_selector:
        kwargs["label_selector"] = label_selector
    if field_selector:
        kwargs["field_selector"] = field_selector
    return kwargs


def _refused_unreadably(exc):
    """A 4xx answer (not 429, which the retries handle) whose body is not JSON text."""
    status = getattr(exc, "status", None)
    if not isinstance(status, int) or not 400 <= status < 500 or status == 429:
        return False
    body = getattr(exc, "body", None)
    return not (isinstance(body, str) and body.lstrip().startswith("{"))


_CONTINUE_RE = re.compile(rb'"continue"\s*:\s*"((?:[^"\\]|\\.)*)"')


def _continue_token(data):
    """The ``metadata.continue`` token of a list response, read from its first bytes (the API
    server writes kind, apiVersion and metadata before items), or None on the last page."""
    head = data[:data.find(b'"items"')] if b'"items"' in data[:65536] else data[:65536]
    match = _CONTINUE_RE.search(head)
    return (json.loads(b'"' + match.group(1) + b'"') or None) if match else None
