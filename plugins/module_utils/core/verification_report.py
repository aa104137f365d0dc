# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure: the verification's summary line and its JSON and JUnit reports."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import json
from xml.sax.saxutils import escape, quoteattr

from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.verification import (
    FAILED,
    NOT_AVAILABLE,
    PASSED,
    STATUSES,
)


# --------------------------------------------------------------------------- summary and reports


def summarize(verdicts, check_mode=False):
    """One line: overall verdict, counts and what failed (node: check expected/observed)."""
    total = len(verdicts)
    bad = [v for v in verdicts if v.status == FAILED]
    counts = {s: 0 for s in STATUSES}
    for v in verdicts:
        for c in v.checks:
            counts[c.status] += 1
    head = "GPU slicing verification %s: %d node(s), %d failed; checks %d passed, %d failed, %d not available" % (
        "FAILED" if bad else "PASSED", total, len(bad), counts[PASSED], counts[FAILED], counts[NOT_AVAILABLE])
    if check_mode:
        head += " (check mode: node-side checks only, no test pods)"
    if not bad:
        return head
    parts = []
    for v in bad:
        items = ["%s (expected %s, observed %s)" % (c.name, _short(c.expected), _short(c.observed))
                 for c in v.failed_checks]
        parts.append("%s: %s" % (v.node, ", ".join(items)))
    return head + " -- " + "; ".join(parts)


def _short(value):
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def build_report(verdicts, timings, summary, run=None):
    """The structured result (also the JSON report's content)."""
    return {
        "passed": all(v.status != FAILED for v in verdicts) and bool(verdicts),
        "summary": summary,
        "nodes": [v.to_dict() for v in verdicts],
        "timings": timings,
        "run": run or {},
    }


def report_json(report):
    return json.dumps(report, indent=2, sort_keys=True, default=str) + "\n"


def report_junit(report, suite_name="gpu_slicing.eks.verify"):
    """JUnit XML: one testsuite per node, one testcase per check; not-available -> skipped."""
    nodes = report.get("nodes") or []
    total_tests = sum(len(n["checks"]) for n in nodes)
    total_fail = sum(1 for n in nodes for c in n["checks"] if c["status"] == FAILED)
    total_skip = sum(1 for n in nodes for c in n["checks"] if c["status"] == NOT_AVAILABLE)
    seconds = (report.get("timings") or {}).get("total_seconds", 0) or 0
    lines = ['<?xml version="1.0" encoding="UTF-8"?>',
             '<testsuites name=%s tests="%d" failures="%d" skipped="%d" time="%.3f">'
             % (quoteattr(suite_name), total_tests, total_fail, total_skip, seconds)]
    for node in nodes:
        checks = node["checks"]
        fails = sum(1 for c in checks if c["status"] == FAILED)
        skips = sum(1 for c in checks if c["status"] == NOT_AVAILABLE)
        lines.append('  <testsuite name=%s tests="%d" failures="%d" skipped="%d" errors="0">'
                     % (quoteattr("%s.%s" % (suite_name, node["node"])), len(checks), fails, skips))
        lines.append('    <properties><property name="profile" value=%s/></properties>'
                     % quoteattr(str(node.get("profile"))))
        for check in checks:
            lines.append('    <testcase classname=%s name=%s>'
                         % (quoteattr("%s.%s" % (suite_name, node["node"])), quoteattr(check["name"])))
            detail = "expected: %s\nobserved: %s" % (
                json.dumps(check.get("expected"), default=str), json.dumps(check.get("observed"), default=str))
            if check["status"] == FAILED:
                lines.append('      <failure message=%s type="failed">%s</failure>'
                             % (quoteattr(check["reason"]), escape(detail)))
            elif check["status"] == NOT_AVAILABLE:
                lines.append('      <skipped message=%s/>' % quoteattr(check["reason"]))
            else:
                lines.append('      <system-out>%s</system-out>' % escape(check["reason"] + "\n" + detail))
            lines.append('    </testcase>')
        lines.append('  </testsuite>')
    lines.append('</testsuites>')
    return "\n".join(lines) + "\n"
