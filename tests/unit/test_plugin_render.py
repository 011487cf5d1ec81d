"""The kubectl plugin's views, rendered from objects captured live (the Argo CD testdata)."""

from __future__ import annotations

import datetime as dt

from modeldeploy.plugin import render_history, render_list, render_status, timeline_point
from tests.support.argocd_lua import CUSTOMIZATION, load

NOW = dt.datetime(2026, 12, 3, 15, 0, tzinfo=dt.UTC)
PAUSED = load(CUSTOMIZATION / "testdata" / "suspended_pausedStep.yaml")
STEPPING = load(CUSTOMIZATION / "testdata" / "progressing_stepping.yaml")
ROLLED_BACK = load(CUSTOMIZATION / "testdata" / "degraded_rolledBack.yaml")
ANALYSIS = load(CUSTOMIZATION / "testdata" / "progressing_analysisPause.yaml")


def test_list_shows_phase_versions_weight_and_step() -> None:
    lines = render_list([STEPPING, ROLLED_BACK], all_namespaces=True, now=NOW).splitlines()
    assert lines[0].split() == ["NAMESPACE", "NAME", "PHASE", "STABLE", "CANARY", "WEIGHT",
                                "STEP", "AGE"]
    assert lines[1].split()[:7] == ["ml", "scorer", "Progressing", "1", "2", "50%", "2/2"]
    assert render_list([], all_namespaces=False, now=NOW) == "No ModelDeployments found."


def test_status_marks_the_current_step_and_tells_why_a_release_stopped() -> None:
    paused = render_status(PAUSED)
    assert "Canary of version 2: Paused (by Step), weight 20%" in paused
    assert "steps     [20% (wait)] → 50% (1h) → 100%" in paused
    stepping = render_status(STEPPING)
    assert "20% (wait) → [50% (1h)] → 100%" in stepping
    rolled_back = render_status(ROLLED_BACK)
    assert "reason    Aborted: abort request" in rolled_back and "Degraded" in rolled_back


def test_status_lists_each_analysis_metric_with_value_threshold_and_verdict() -> None:
    text = render_status(ANALYSIS)
    row = next(line for line in text.splitlines() if line.strip().startswith("errors"))
    assert "no value" in row and "<= 0.05" in row and "Inconclusive" in row, row


def test_the_timeline_records_weight_and_the_first_metric() -> None:
    assert timeline_point(STEPPING, NOW) == ("15:00:00", "50%", "-")
    text = render_status(STEPPING, timeline=[("15:00:00", "20%", "-"), ("15:00:05", "50%", "-")])
    assert text.splitlines()[-1].split() == ["15:00:05", "50%", "-"]


def test_history_lists_every_version_and_how_it_left() -> None:
    rows = render_history(ROLLED_BACK).splitlines()
    assert rows[0].split() == ["VERSION", "OUTCOME", "AT", "REASON"]
    assert rows[1].split()[:2] == ["3", "RolledBack"]


def test_status_shows_gates_and_a_shadow_release() -> None:
    approval = render_status(load(CUSTOMIZATION / "testdata" / "suspended_approval.yaml"))
    assert "Canary of version 2: Gating (by Approval), weight 0%" in approval
    row = next(line for line in approval.splitlines() if line.strip().startswith("Signature"))
    assert "Waiting" in row and "ApprovalRequired" in row, row
    shadow = render_status(load(CUSTOMIZATION / "testdata" / "progressing_shadow.yaml"))
    assert "Shadow of version 2: Stepping, weight 0%" in shadow
    assert "mirroring 50% to version 2" in shadow
