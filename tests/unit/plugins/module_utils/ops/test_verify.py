"""Unit tests for ops/verify.py: the options, the operation and the report files."""

import json
import xml.etree.ElementTree as ET

from ansible_collections.gpu_slicing.eks.plugins.module_utils.core import verification as V
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core import verification_report as REP
from ansible_collections.gpu_slicing.eks.plugins.module_utils.ops import verify as R


def test_write_reports(tmp_path):
    report = REP.build_report([V.NodeVerdict("a", "p", [V.passed("x", "ok")])], {"total_seconds": 0.1}, "s")
    written = R.write_reports(report, str(tmp_path / "r" / "v.json"), str(tmp_path / "v.xml"))
    assert json.loads((tmp_path / "r" / "v.json").read_text())["passed"] is True
    ET.parse(str(tmp_path / "v.xml"))
    assert set(written) == {"report_json", "report_junit"}
