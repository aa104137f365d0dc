# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's errors: one base, one input error, one result shape.

Operations raise; only ``runner.run_module`` turns an error into ``fail_json``, with
``msg``, ``error_kind`` and, for bad input, ``error: {field, value, why, fix}``.
"""

from __future__ import annotations


class GpuSlicingError(Exception):
    """A failure a user can act on. ``kind`` is a short machine-readable category; ``result``
    holds extra keys for the module result (for example what was restored after a failure)."""

    kind = "error"

    def __init__(self, msg, kind=None, **result):
        super().__init__(msg)
        if kind:
            self.kind = kind
        self.result = result

    @property
    def message(self):
        return str(self)

    def to_result(self):
        """The keys a failed module run returns."""
        out = dict(self.result)
        out.update(msg=str(self), error_kind=self.kind)
        return out


class InvalidInput(GpuSlicingError, ValueError):
    """Bad input: ``<field>: <value!r> is invalid: <why>. Fix: <fix>``. Raised before anything is written."""

    kind = "invalid"

    def __init__(self, field, value, fix, why="not accepted"):
        self.field = field
        self.value = value
        self.why = why
        self.fix = fix
        super().__init__("%s: %r is invalid: %s. Fix: %s" % (field, value, why, fix))

    def to_dict(self):
        return {"field": self.field, "value": plain(self.value), "why": self.why, "fix": self.fix}

    def to_result(self):
        out = super().to_result()
        out["error"] = self.to_dict()
        return out


def plain(value):
    """``value`` when it is a scalar a module result can carry, else its repr."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)
