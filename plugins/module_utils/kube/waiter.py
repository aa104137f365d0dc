# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one polling helper: a deadline clock and a loop over a read and a pure predicate.

Every wait of the collection (the plugin rollout, each phase of the verification) polls
through ``poll_until``; what counts as done is a pure function the core can test alone.
The clock and sleep are parameters so unit tests run without waiting.
"""

from __future__ import annotations

import time


def ticks(timeout, interval, clock=time.monotonic, sleep=time.sleep):
    """Yield the seconds waited so far, first at once, then every ``interval`` until
    ``timeout`` seconds have passed (the last tick lands on the deadline)."""
    start = clock()
    while True:
        waited = clock() - start
        yield waited
        left = timeout - (clock() - start)
        if left <= 0:
            return
        sleep(min(interval, left))


def poll_until(read, done, timeout, interval, clock=time.monotonic, sleep=time.sleep, on_poll=None):
    """Call ``read()`` until ``done(value)`` is true or ``timeout`` passes.

    Returns ``(finished, value, waited_seconds)``: ``value`` is the last read, so a caller
    that ran out of time can say what it saw. ``on_poll(value, waited)`` sees every read
    (progress lines).
    """
    value, waited = None, 0.0
    for waited in ticks(timeout, interval, clock=clock, sleep=sleep):
        value = read()
        if on_poll is not None:
            on_poll(value, waited)
        if done(value):
            return True, value, waited
    return False, value, waited
