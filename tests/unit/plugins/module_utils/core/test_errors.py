# -*- coding: utf-8 -*-
"""Unit tests for plugins/module_utils/core/errors.py: one base, one input error, one result shape."""

from __future__ import annotations

import pytest

from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.errors import GpuSlicingError, InvalidInput, plain


def test_base_result_has_msg_kind_and_extra_keys():
    err = GpuSlicingError("the rollout did not finish", kind="timeout", restored=["cm"])
    assert err.message == str(err) == "the rollout did not finish"
    assert err.to_result() == {"msg": "the rollout did not finish", "error_kind": "timeout", "restored": ["cm"]}
    assert GpuSlicingError("x").to_result()["error_kind"] == "error"


def test_invalid_input_wording_and_result():
    err = InvalidInput("profiles[1].replicas", 1, "use 2 or more", why="too few")
    assert str(err) == "profiles[1].replicas: 1 is invalid: too few. Fix: use 2 or more"
    assert isinstance(err, ValueError) and isinstance(err, GpuSlicingError)
    assert err.to_dict() == {"field": "profiles[1].replicas", "value": 1, "why": "too few", "fix": "use 2 or more"}
    result = err.to_result()
    assert result["error_kind"] == "invalid" and result["msg"] == str(err) and result["error"] == err.to_dict()
    assert InvalidInput("f", "v", "fix").why == "not accepted"


@pytest.mark.parametrize("value, shown", [("a", "a"), (3, 3), (0.5, 0.5), (None, None), (True, True),
                                          ([1], "[1]"), ({"a": 1}, "{'a': 1}")])
def test_plain_values(value, shown):
    assert plain(value) == shown
