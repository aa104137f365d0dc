"""module_utils/progress.py: the lines a module writes for its action plugin to show."""

from __future__ import annotations

import pytest

from ansible_collections.gpu_slicing.eks.plugins.module_utils import progress


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    monkeypatch.setattr(progress, "_last_line_at", {})
    monkeypatch.delenv(progress.PROGRESS_FILE_ENV, raising=False)
    monkeypatch.delenv(progress.INTERVAL_ENV, raising=False)


def test_nothing_is_written_without_the_variable(tmp_path):
    progress.report("x")
    assert progress.waiting("w", 1, 10, "d") is True  # throttling still runs, but no file
    assert list(tmp_path.iterdir()) == []


def test_first_line_at_once_then_one_per_interval(tmp_path, monkeypatch):
    out = tmp_path / "progress"
    monkeypatch.setenv(progress.PROGRESS_FILE_ENV, str(out))
    monkeypatch.setenv(progress.INTERVAL_ENV, "5")
    now = [100.0]
    calls = []

    def detail():
        calls.append(now[0])
        return "1/2 Ready"
    for t in (100.0, 101.0, 104.9, 105.0, 106.0, 110.5):
        now[0] = t
        progress.waiting("device plugin rollout", t - 100, 300, detail, clock=lambda: now[0])
    progress.waiting("other wait", 3.7, None, "multi\nline  text", clock=lambda: now[0])
    assert out.read_text().splitlines() == [
        "device plugin rollout: 0s of 300s, 1/2 Ready",
        "device plugin rollout: 5s of 300s, 1/2 Ready",
        "device plugin rollout: 10s of 300s, 1/2 Ready",
        "other wait: 3s, multi line text",
    ]
    assert calls == [100.0, 105.0, 110.5]  # the detail is built only when a line is due


@pytest.mark.parametrize("value", ["0", "-1", "soon"])
def test_bad_interval_falls_back_to_the_default(monkeypatch, value):
    monkeypatch.setenv(progress.INTERVAL_ENV, value)
    assert progress.interval() == progress.DEFAULT_INTERVAL


def test_an_unwritable_file_does_not_fail_the_module(tmp_path, monkeypatch):
    monkeypatch.setenv(progress.PROGRESS_FILE_ENV, str(tmp_path / "missing-dir" / "progress"))
    progress.report("still fine")
