"""Unit tests for core/verification_report.py: summary line, JSON and JUnit reports (pure)."""

import json
import xml.etree.ElementTree as ET

from ansible_collections.gpu_slicing.eks.plugins.module_utils.core import verification as V
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core import verification_report as REP


def test_summary_and_reports():
    ok = V.NodeVerdict("a", "ts-4", [V.passed("allocatable", "ok", 4, 4), V.not_available("gpu_uuid_shared", "sim")])
    bad = V.NodeVerdict("b", "ts-4", [V.failed("allocatable", "plugin without sharing", 4, 1)])
    line = REP.summarize([ok, bad])
    assert "\n" not in line and line.startswith("GPU slicing verification FAILED")
    assert "b: allocatable (expected 4, observed 1)" in line
    assert REP.summarize([ok]).startswith("GPU slicing verification PASSED")
    report = REP.build_report([ok, bad], {"total_seconds": 1.5}, line)
    assert report["passed"] is False
    assert json.loads(REP.report_json(report))["nodes"][1]["checks"][0]["observed"] == 1
    root = ET.fromstring(REP.report_junit(report))
    assert root.get("tests") == "3" and root.get("failures") == "1" and root.get("skipped") == "1"
    cases = root.findall(".//testcase")
    assert cases[1].find("skipped") is not None and cases[2].find("failure") is not None
    assert REP.build_report([], {}, "")["passed"] is False  # nothing verified is not a pass
