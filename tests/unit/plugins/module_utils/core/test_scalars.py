# -*- coding: utf-8 -*-
"""Unit tests for plugins/module_utils/core/scalars.py."""

import pytest

from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.errors import InvalidInput
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.scalars import parse_quantity


@pytest.mark.parametrize("quantity, size", [("4Gi", 4 << 30), ("4096Mi", 4 << 30), ("4G", 4 * 10 ** 9),
                                            ("1.5Gi", 3 << 29), (".5Gi", 1 << 29), ("100", 100), (7, 7)])
def test_parse_quantity(quantity, size):
    assert parse_quantity(quantity, "q") == size


@pytest.mark.parametrize("quantity", ["4gb", "-4Gi", "4 Gi", "", "Gi", True, None, "4m"])
def test_parse_quantity_rejects(quantity):
    with pytest.raises(InvalidInput) as info:
        parse_quantity(quantity, "profiles[0].slice_memory")
    assert info.value.field == "profiles[0].slice_memory"
