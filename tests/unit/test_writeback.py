"""Registry write-back plans: tags and alias moves for a promotion and for a rollback."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from modeldeploy.api.spec import ModelDeploymentSpec, WriteBack
from modeldeploy.core.writeback import MAX_VALUE, Outcome, Write, plan

pytestmark = pytest.mark.unit

AT = "2026-12-03T17:00:00Z"


def test_a_promotion_tags_the_version_and_moves_the_aliases() -> None:
    spec = WriteBack(promotedAliases=["staging-approved"], previousAlias="previous-champion")
    writes = plan(spec, Outcome(version="7", promoted=True, reason="AllStepsPassed", at=AT,
                                namespace="ml", name="scorer", cluster="eu-1", previous="6",
                                analysis="error-rate 0.01 <= 0.05"))
    assert writes == [
        Write("7", {"modeldeploy.outcome": "Promoted", "modeldeploy.reason": "AllStepsPassed",
                    "modeldeploy.cluster": "eu-1", "modeldeploy.namespace": "ml",
                    "modeldeploy.name": "scorer", "modeldeploy.at": AT,
                    "modeldeploy.analysis": "error-rate 0.01 <= 0.05"},
              ("staging-approved",)),
        Write("6", {}, ("previous-champion",)),
    ]


def test_a_rollback_tags_the_version_rejected_with_its_reason_and_moves_nothing() -> None:
    spec = WriteBack(tagPrefix="deploy.prod", promotedAliases=["prod"], previousAlias="prev")
    writes = plan(spec, Outcome(version="8", promoted=False, previous="7", at=AT,
                                reason="AnalysisFailed: error-rate 0.29 > max 0.05",
                                namespace="ml", name="scorer"))
    assert writes == [Write("8", {"deploy.prod.outcome": "Rejected",
                                  "deploy.prod.reason": "AnalysisFailed: error-rate 0.29 > "
                                                        "max 0.05",
                                  "deploy.prod.namespace": "ml", "deploy.prod.name": "scorer",
                                  "deploy.prod.at": AT})]


def test_a_first_release_has_no_previous_version_to_mark_and_long_text_is_clipped() -> None:
    writes = plan(WriteBack(previousAlias="prev"), Outcome(
        version="1", promoted=True, reason="x", at=AT, namespace="n", name="m",
        analysis="line\n" * 400))
    assert len(writes) == 1 and writes[0].aliases == ()
    summary = writes[0].tags["modeldeploy.analysis"]
    assert len(summary) == MAX_VALUE and summary.endswith("...") and "\n" not in summary


def test_write_back_may_not_move_the_tracked_alias() -> None:
    with pytest.raises(ValidationError, match="may not move the alias this object tracks"):
        ModelDeploymentSpec.model_validate({"model": {
            "name": "m", "alias": "champion",
            "writeBack": {"promotedAliases": ["champion"]}}})
    ok = ModelDeploymentSpec.model_validate({"model": {
        "name": "m", "alias": "champion", "writeBack": {"previousAlias": "previous-champion"}}})
    assert ok.model.writeBack is not None and ok.model.writeBack.tagPrefix == "modeldeploy"
