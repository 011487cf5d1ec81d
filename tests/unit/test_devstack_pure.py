"""Pure pieces of the dev stack: the wrapper go.mod, version ldflags, the failure Stage."""

from __future__ import annotations

import re

from devstack import build, versions
from devstack.kwok_stages import FAIL_LABEL, FAIL_VALUE, failure_stage


def test_wrapper_gomod_replaces_every_staging_module_with_the_pinned_version() -> None:
    gomod = build.kube_wrapper_gomod()
    assert f"require k8s.io/kubernetes {versions.KUBERNETES}" in gomod
    replaced = re.findall(r"k8s\.io/(\S+) => k8s\.io/(\S+) (v\S+)", gomod)
    assert {m for m, _, _ in replaced} == set(build.KUBE_STAGING_MODULES)
    assert all(a == b and v == versions.KUBERNETES_STAGING for a, b, v in replaced)


def test_staging_version_matches_the_kubernetes_minor() -> None:
    kube = versions.KUBERNETES.lstrip("v").split(".")
    staging = versions.KUBERNETES_STAGING.lstrip("v").split(".")
    assert staging == ["0", kube[1], kube[2]]


def test_ldflags_stamp_the_release_into_both_version_packages() -> None:
    flags = " ".join(build.kube_ldflags("2026-01-01T00:00:00Z"))
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        assert f"-X {pkg}.gitVersion={versions.KUBERNETES}" in flags
        assert f"-X {pkg}.gitMinor={versions.KUBERNETES.split('.')[1]}" in flags


def test_failure_stage_selects_only_labelled_live_pods() -> None:
    stage = failure_stage()
    exprs = {e["key"]: e for e in stage["spec"]["selector"]["matchExpressions"]}
    label = exprs[f'.metadata.labels["{FAIL_LABEL}"]']
    assert (label["operator"], label["values"]) == ("In", [FAIL_VALUE])
    assert exprs[".metadata.deletionTimestamp"]["operator"] == "DoesNotExist"
    template = stage["spec"]["next"]["statusTemplate"]
    assert "CrashLoopBackOff" in template and "type: Ready" in template
