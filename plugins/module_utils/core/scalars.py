# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Scalars as users write them, read strictly: booleans, whole numbers, shares of a GPU and
Kubernetes memory quantities. Pure; every refusal is an :class:`InvalidInput` naming the field.

:func:`slices_per_gpu` is the one fraction -> slices rule (the sharing profiles and the cost
view both count with it).
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.errors import InvalidInput

_INT_STRING_RE = re.compile(r"^[0-9]+$")
_QUANTITY_RE = re.compile(r"^([0-9]+(?:\.[0-9]+)?|\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")
_BINARY_SUFFIXES = {"Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50, "Ei": 2 ** 60}
_DECIMAL_SUFFIXES = {"k": 10 ** 3, "M": 10 ** 6, "G": 10 ** 9, "T": 10 ** 12, "P": 10 ** 15, "E": 10 ** 18}


def _is_bool(value):
    return isinstance(value, bool)


def parse_bool(value, field):
    """Booleans only (``true``/``false``; the strings "true"/"false"/"yes"/"no" as Ansible writes them)."""
    if _is_bool(value):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "on"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("false", "no", "off"):
        return False
    raise InvalidInput(field, value, "write true or false", why="not a boolean")


def parse_int(value, field):
    """A whole number: int (not bool) or a string of digits.  Floats such as 2.5 or 4.0 are refused."""
    if _is_bool(value):
        raise InvalidInput(field, value, "write a whole number such as 4, not a boolean",
                           why="a boolean is not a number")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _INT_STRING_RE.match(value.strip()):
        return int(value.strip())
    if isinstance(value, str) and re.match(r"^-[0-9]+$", value.strip()):
        return int(value.strip())
    if isinstance(value, float):
        raise InvalidInput(field, value, "write a whole number such as %d" % max(2, int(value)),
                           why="not a whole number")
    raise InvalidInput(field, value, "write a whole number such as 4", why="not a whole number")


def parse_fraction(value, field):
    """A share of one GPU as an exact Fraction: 0.25, "0.25", "1/4", "25%".

    Floats are read through ``str()`` so 0.2 is exactly 1/5 (``1/0.2`` in binary floating
    point is 4.999...).  No range check here.
    """
    if _is_bool(value) or value is None:
        raise InvalidInput(field, value, "write a number such as 0.25", why="not a number")
    try:
        if isinstance(value, Fraction):
            return value
        if isinstance(value, (int, float)):
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(value)
            return Fraction(str(value))
        if isinstance(value, str):
            text = value.strip()
            if text.endswith("%"):
                return Fraction(text[:-1].strip()) / 100
            return Fraction(text)
    except (ValueError, ZeroDivisionError):
        pass
    raise InvalidInput(field, value, "write a number such as 0.25 (a quarter of a GPU)",
                       why="not a number")


def slices_per_gpu(fraction, field="fraction"):
    """The one fraction -> replicas rule: floor(1/f), computed exactly (0.2 gives 5, not 4).

    ``fraction`` is anything :func:`parse_fraction` reads and must be > 0; callers check their
    own upper bound (a sharing profile needs 2 slices or more, the cost view accepts 1).
    """
    return math.floor(1 / parse_fraction(fraction, field))


def parse_quantity(value, field):
    """A Kubernetes memory quantity in bytes (int): 4Gi, 4096Mi, "4G", 1.5Gi, 17179869184."""
    if _is_bool(value) or value is None:
        raise InvalidInput(field, value, "write a memory size such as 4Gi or 4096Mi", why="not a quantity")
    if isinstance(value, int):
        amount = Fraction(value)
    else:
        text = str(value).strip()
        match = _QUANTITY_RE.match(text)
        if not match:
            raise InvalidInput(field, value,
                               "write a memory size such as 4Gi, 4096Mi or 4G (Kubernetes quantity)",
                               why="not a Kubernetes memory quantity")
        number, suffix = match.groups()
        amount = Fraction(number)
        if suffix:
            amount *= _BINARY_SUFFIXES.get(suffix) or _DECIMAL_SUFFIXES[suffix]
    if amount <= 0:
        raise InvalidInput(field, value, "give a positive size such as 4Gi", why="must be greater than zero")
    return int(math.floor(amount))
