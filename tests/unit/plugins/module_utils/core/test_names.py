# -*- coding: utf-8 -*-
"""Unit tests for plugins/module_utils/core/names.py: the name rules and the one home of the keys."""

from __future__ import annotations

import ast
import glob
import os

import pytest

from ansible_collections.gpu_slicing.eks.plugins.module_utils.core import names
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.names import (
    DNS_LABEL_RE,
    DNS_SUBDOMAIN_RE,
    LABEL_NAME_RE,
    LABEL_VALUE_RE,
    name_errors,
)

PLUGINS = os.path.join(os.path.dirname(names.__file__), "..", "..")


@pytest.mark.parametrize("name, label, subdomain", [
    ("nvidia-device-plugin", True, True),
    ("a", True, True),
    ("nvidia.device-plugin", False, True),
    ("Nvidia", False, False),
    ("-plugin", False, False),
    ("plugin-", False, False),
    ("a..b", False, False),
    ("", False, False),
])
def test_dns_names(name, label, subdomain):
    assert bool(DNS_LABEL_RE.match(name)) is label
    assert bool(DNS_SUBDOMAIN_RE.match(name)) is subdomain


@pytest.mark.parametrize("value, name_ok, value_ok", [
    ("ts-4", True, True),
    ("My_Label.1", True, True),
    ("", False, True),
    ("-x", False, False),
    ("x_", False, False),
    ("a b", False, False),
])
def test_label_name_and_value(value, name_ok, value_ok):
    assert bool(LABEL_NAME_RE.match(value)) is name_ok
    assert bool(LABEL_VALUE_RE.match(value)) is value_ok


def test_name_errors_name_option_value_and_fix():
    errors = name_errors(labels={"namespace": "Bad_NS", "release_name": "nvdp"},
                         subdomains={"config_map_name": "cfg..x", "other": None}, max_label=53)
    assert errors == [
        "namespace: 'Bad_NS' is invalid: not a lowercase RFC 1123 label of at most 53 characters. "
        "Fix: use lowercase letters, digits and '-', starting and ending with a letter or digit "
        "(e.g. nvidia-device-plugin)",
        "config_map_name: 'cfg..x' is invalid: not a lowercase RFC 1123 subdomain. "
        "Fix: use lowercase letters, digits, '-' and '.' (e.g. nvidia-device-plugin-configs)",
    ]
    assert name_errors(labels={"namespace": "x" * 54}, max_label=53)
    assert not name_errors(labels={"namespace": "x" * 63}, subdomains={"name": "a.b"})


def _code_strings(path):
    """String constants of a Python file, docstrings left out."""
    tree = ast.parse(open(path).read())
    docs = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            docs.add(id(body[0].value))
    return [(n.lineno, n.value) for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs]


def test_label_and_annotation_keys_have_one_home():
    """No plugin code spells a label or annotation key that names.py holds: it imports the name."""
    keys = {getattr(names, n): n for n in dir(names)
            if n.endswith(("_LABEL", "_ANNOTATION")) or n == "KARPENTER_DISRUPTED_TAINT_KEY"}
    found = []
    for path in glob.glob(os.path.join(PLUGINS, "**", "*.py"), recursive=True):
        if os.path.samefile(path, names.__file__):
            continue
        found += ["%s:%d %s" % (os.path.relpath(path, PLUGINS), line, keys[value])
                  for line, value in _code_strings(path) if value in keys]
    assert not found, "use the names from core/names.py: %s" % ", ".join(found)


@pytest.mark.parametrize("labels, subdomains, max_label, wanted", [
    ({"namespace": "nvidia-device-plugin"}, {"config_map_name": "a.b-c"}, 63, []),
    ({"namespace": "Bad"}, None, 63, ["namespace: 'Bad' is invalid: not a lowercase RFC 1123 label of at most 63"]),
    ({"release_name": "r" * 54}, None, 53, ["release_name: '%s' is invalid" % ("r" * 54)]),
    (None, {"config_map_name": "a_b"}, 63, ["config_map_name: 'a_b' is invalid: not a lowercase RFC 1123 subdomain"]),
    ({"namespace": None}, {"config_map_name": None}, 63, []),
])
def test_name_errors_cases(labels, subdomains, max_label, wanted):
    errors = name_errors(labels=labels, subdomains=subdomains, max_label=max_label)
    assert len(errors) == len(wanted)
    for error, start in zip(errors, wanted):
        assert error.startswith(start) and "Fix: " in error
