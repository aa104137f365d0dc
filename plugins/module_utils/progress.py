# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Progress lines during long waits, for a person watching the job output.

A module's stdout is one JSON document at the end, so it cannot print while it waits. The
collection's action plugins (``plugins/plugin_utils/progress_action.py``) give the module a
file in ``GPU_SLICING_PROGRESS_FILE`` and show each line written there as it appears. Without
that variable (another runner, async tasks) every call here does nothing.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import time

PROGRESS_FILE_ENV = "GPU_SLICING_PROGRESS_FILE"
INTERVAL_ENV = "GPU_SLICING_PROGRESS_INTERVAL"
DEFAULT_INTERVAL = 10.0

_last_line_at = {}


def interval():
    """Seconds between two lines of the same wait (GPU_SLICING_PROGRESS_INTERVAL, default 10)."""
    try:
        value = float(os.environ.get(INTERVAL_ENV, DEFAULT_INTERVAL))
    except ValueError:
        return DEFAULT_INTERVAL
    return value if value > 0 else DEFAULT_INTERVAL


def report(line):
    """Append one line for the action plugin to show; never fails the module."""
    path = os.environ.get(PROGRESS_FILE_ENV)
    if not path:
        return
    try:
        with open(path, "a") as handle:
            handle.write(" ".join(str(line).split()) + "\n")
    except (IOError, OSError):
        pass  # progress is a courtesy: a full disk or a removed file must not fail the task


def waiting(key, elapsed, budget, detail, clock=time.monotonic):
    """A throttled line for one wait: the first call at once, then one every interval() seconds.

    ``key`` names the wait (one throttle per wait), ``detail`` is a string or a callable that
    makes it (called only when a line is due, so a costly summary is not built every poll).
    """
    now = clock()
    last = _last_line_at.get(key)
    if last is not None and now - last < interval():
        return False
    _last_line_at[key] = now
    text = detail() if callable(detail) else detail
    limit = "" if budget is None else " of %ds" % int(budget)
    report("%s: %ds%s, %s" % (key, int(elapsed), limit, text))
    return True
