"""kwok Stage configuration: kwok's own "fast" lifecycle plus one simulated failure.

The stages come from the pinned kwok module (so they follow its version), with one change:
pods labelled ``modeldeploy.io/simulate=fail`` never pass ``pod-ready``. Instead the extra
``pod-simulated-failure`` stage puts them (and any Running pod that gets the label later)
into Running with ``Ready=False`` and a container in ``CrashLoopBackOff``, which is what a
model server that cannot load its model looks like to Kubernetes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

FAIL_LABEL = "modeldeploy.io/simulate"
FAIL_VALUE = "fail"

#: Files taken unchanged (or, for pod-ready, patched) from the kwok module.
UPSTREAM = (
    "kustomize/stage/node/fast/node-initialize.yaml",
    "kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "kustomize/stage/pod/fast/pod-ready.yaml",
    "kustomize/stage/pod/fast/pod-complete.yaml",
    "kustomize/stage/pod/fast/pod-delete.yaml",
)

_FAIL_STATUS = f"""\
{{{{ $now := Now }}}}
conditions:
- lastTransitionTime: {{{{ $now | Quote }}}}
  status: "True"
  type: Initialized
- lastTransitionTime: {{{{ $now | Quote }}}}
  status: "False"
  reason: ContainersNotReady
  message: "simulated failure ({FAIL_LABEL}={FAIL_VALUE})"
  type: Ready
- lastTransitionTime: {{{{ $now | Quote }}}}
  status: "False"
  reason: ContainersNotReady
  type: ContainersReady
containerStatuses:
{{{{ range .spec.containers }}}}
- image: {{{{ .image | Quote }}}}
  name: {{{{ .name | Quote }}}}
  ready: false
  started: false
  restartCount: 1
  lastState:
    terminated:
      exitCode: 1
      reason: Error
      finishedAt: {{{{ $now | Quote }}}}
      startedAt: {{{{ $now | Quote }}}}
  state:
    waiting:
      reason: CrashLoopBackOff
      message: "simulated failure ({FAIL_LABEL}={FAIL_VALUE})"
{{{{ end }}}}
{{{{ $hostIPs := NodeIPsWith .spec.nodeName }}}}
{{{{ with $hostIPs }}}}
hostIP: {{{{ index . 0 | Quote }}}}
{{{{ end }}}}
phase: Running
startTime: {{{{ $now | Quote }}}}
"""


def _label_expr() -> str:
    return f'.metadata.labels["{FAIL_LABEL}"]'


def failure_stage() -> dict[str, Any]:
    return {
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "Stage",
        "metadata": {"name": "pod-simulated-failure"},
        "spec": {
            "resourceRef": {"apiGroup": "v1", "kind": "Pod"},
            "selector": {
                "matchExpressions": [
                    {"key": _label_expr(), "operator": "In", "values": [FAIL_VALUE]},
                    {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
                    {"key": ".status.phase", "operator": "In", "values": ["Pending", "Running"]},
                    {
                        "key": '.status.conditions.[] | select( .type == "Ready" ) | .status',
                        "operator": "NotIn",
                        "values": ["False"],
                    },
                ]
            },
            "next": {"statusTemplate": _FAIL_STATUS},
        },
    }


def render(upstream_dir: Path) -> str:
    """The YAML for ``kwok --config``, built from the kwok stage files in ``upstream_dir``."""
    docs: list[dict[str, Any]] = []
    for rel in UPSTREAM:
        doc = yaml.safe_load((upstream_dir / Path(rel).name).read_text())
        if doc["metadata"]["name"] == "pod-ready":
            doc["spec"]["selector"]["matchExpressions"].append(
                {"key": _label_expr(), "operator": "NotIn", "values": [FAIL_VALUE]}
            )
        docs.append(doc)
    docs.append(failure_stage())
    return yaml.safe_dump_all(docs, sort_keys=False)
