"""Progressive releases — canary and blue-green — as a state machine kept in ``.status``.

Pure, like the rest of ``core``. :func:`advance` makes at most one transition per call, and
everything it needs is in the stored status (absolute times, counters, the step index), so a
restarted operator carries on where the last one stopped and waits out only the rest of a
pause. The stable version serves throughout; traffic moves only after the previous weight is
confirmed on the live route. Status shape (``status.rollout``)::

    type: Canary                  # or BlueGreen
    canary:
      version: "8"
      state: Stepping             # Gating, Starting, Stepping, Paused, Promoting,
                                  # RollingBack, Aborted, Switched (blue-green), Baking
      step: 1                     # index into spec.rollout.steps
      weight: 50                  # read back from the live route, never the requested one
      startedAt / stepStartedAt / stepEndsAt / switchedAt: absolute times
      pausedBy: Step | Request | Analysis
      reason / message            # why it rolled back (AnalysisFailed, ...)
      analysis: {successful, failed, inconclusive, consecutiveErrors, stepSuccesses, nextAt,
                 measurements: [{metric, verdict, value, stableValue, threshold, query, ...}]}

Gates (``spec.rollout.gates``) come first: registry gates while Gating (no pods yet), the smoke
test once the new version is Ready (:mod:`.gates`). Canary: Starting (the new version comes up
with weight 0) → Stepping through each step's
weight (held for its pause; with analysis, until a successful measurement at that weight) →
Promoting (weight 100) → promoted. Blue-green: Starting (up in full behind the preview
Service) → Stepping (analysis) → switched at once → Switched (the previous version stays up
for ``scaleDownDelay``). A Failed verdict past ``failureLimit``, an Error streak, too many
Inconclusive verdicts, the progress deadline or an abort request: RollingBack (weight 0
first) → Aborted, which keeps the version from being released again while the selector
still points at it (until a retry request). With ``bakeWindow``, a promoted version bakes
(Baking) with the previous one still up; a Failed measurement switches back at once
(:mod:`.endings`). The package: :mod:`.base` (working copy, facts), :mod:`.machine` (the
transitions and requests), :mod:`.gates`, :mod:`.measuring`, :mod:`.endings`.
"""

from modeldeploy.core.release.base import (
    ACTIONS,
    KINDS,
    REQUEST_ANNOTATION,
    ROLLING_BACK_EVENT,
    Facts,
    Working,
    _at,
    _later,
    progressive,
    state_of,
    wanted_weight,
)
from modeldeploy.core.release.endings import promote
from modeldeploy.core.release.machine import advance, start

__all__ = [
    "ACTIONS", "KINDS", "REQUEST_ANNOTATION", "ROLLING_BACK_EVENT", "Facts", "Working", "_at",
    "_later", "advance", "progressive", "promote", "start", "state_of", "wanted_weight",
]
