"""``kubectl modeldeploy``: the kubectl plugin (installed as the ``kubectl-modeldeploy``
console script, so kubectl finds it on PATH).

    kubectl modeldeploy get [-A]                 every ModelDeployment, one line each
    kubectl modeldeploy status NAME [-w]         versions, steps, analysis, conditions;
                                                 -w: a live view with a weight/error timeline
    kubectl modeldeploy history NAME             every version that served, and how it left
    kubectl modeldeploy promote|abort|retry|pause|resume NAME

A request is a new value of the ``modeldeploy.io/request`` annotation, exactly what plain
kubectl does; the operator handles each value once. Failures (no such object, no kubeconfig,
no permission) are one line on stderr and exit code 1.

The rendering functions are pure: they take the object as the apiserver returns it."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from collections.abc import Sequence
from typing import Any

from modeldeploy.adapters.plugin_api import PluginApi, PluginError
from modeldeploy.api.status import release_of
from modeldeploy.core.release import ACTIONS, REQUEST_ANNOTATION

CLEAR = "\x1b[H\x1b[2J"
TIMELINE = 10


def _release(status: dict[str, Any]) -> dict[str, Any]:
    rollout = status.get("rollout") or {}
    return dict(release_of(rollout) or {})


def _age(stamp: str | None, now: dt.datetime) -> str:
    if not stamp:
        return "-"
    seconds = int((now - dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")))
                  .total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in rows)


def render_list(items: list[dict[str, Any]], *, all_namespaces: bool,
                now: dt.datetime) -> str:
    header = ["NAME", "PHASE", "STABLE", "CANARY", "WEIGHT", "STEP", "AGE"]
    if all_namespaces:
        header.insert(0, "NAMESPACE")
    rows = [header]
    for obj in sorted(items, key=lambda o: (o["metadata"].get("namespace", ""),
                                            o["metadata"]["name"])):
        st = obj.get("status") or {}
        canary = st.get("canary") or {}
        row = [obj["metadata"]["name"], str(st.get("phase") or "-"),
               str((st.get("stable") or {}).get("version") or "-"),
               str(canary.get("version") or "-"),
               f"{canary['weight']}%" if canary.get("weight") is not None and canary else "-",
               str(canary.get("step") or "-"),
               _age(obj["metadata"].get("creationTimestamp"), now)]
        if all_namespaces:
            row.insert(0, obj["metadata"].get("namespace", ""))
        rows.append(row)
    if len(rows) == 1:
        return "No ModelDeployments found."
    return _table(rows)


def _steps_line(spec: dict[str, Any], release: dict[str, Any]) -> str | None:
    rollout = spec.get("rollout") or {}
    steps = rollout.get("steps") or []
    if not steps or rollout.get("strategy", "canary") != "canary":
        return None
    current = release.get("step", 0) if release.get("state") in ("Stepping", "Paused") else None
    done = release.get("state") in ("Promoting",)
    parts = []
    for i, step in enumerate(steps):
        pause = step.get("pause")
        text = f"{step['weight']}%" + (" (wait)" if pause == "" else
                                       f" ({pause})" if pause else "")
        if i == current:
            text = f"[{text}]"
        parts.append(text)
    parts.append("[100%]" if done else "100%")
    return " → ".join(parts)


def render_status(obj: dict[str, Any], *, timeline: Sequence[tuple[str, str, str]] = ()) -> str:
    meta, spec, st = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
    model = spec.get("model") or {}
    lines = [f"{meta.get('namespace')}/{meta['name']}: {st.get('phase') or 'no status yet'}"
             + (f" — {st['message']}" if st.get("message") else "")]
    stable = st.get("stable") or {}
    lines.append(f"model     {model.get('name')} {st.get('selector') or ''}".rstrip())
    lines.append(f"stable    version {stable.get('version')}" if stable else "stable    none")
    health = st.get("health") or {}
    if health:
        took = f", {health['latencyMs']:.0f} ms" if health.get("latencyMs") is not None else ""
        lines.append(f"health    {health.get('result')} (version {health.get('version')}{took}, "
                     f"{health.get('consecutiveFailures', 0)} failures in a row)")
    release = _release(st)
    if release:
        kind = (st.get("rollout") or {}).get("type")
        paused = f" (by {release['pausedBy']})" if release.get("pausedBy") else ""
        lines.append(f"release   {kind} of version {release.get('version')}: "
                     f"{release.get('state')}{paused}, weight {release.get('weight', 0)}%")
        steps = _steps_line(spec, release)
        if steps:
            lines.append(f"steps     {steps}")
        if release.get("reason"):
            lines.append(f"reason    {release['reason']}: {release.get('message') or ''}")
        gates = release.get("gates") or []
        if gates:
            lines.append("gates")
            for g in gates:
                took = f" {g['latencyMs']:.0f} ms" if g.get("latencyMs") is not None else ""
                lines.append(f"  {g.get('gate', ''):<16} {g.get('result', ''):<9} "
                             f"{g.get('reason', '')}{took}")
        measured = (release.get("analysis") or {}).get("measurements") or []
        if measured:
            lines.append("analysis")
            for m in measured:
                value = "no value" if m.get("value") is None else f"{m['value']:.4g}"
                lines.append(f"  {m['metric']:<16} {value:<10} {m.get('threshold') or '':<18} "
                             f"{m.get('verdict')}")
    lines.append("conditions")
    for c in st.get("conditions") or []:
        lines.append(f"  {c['type']:<18} {c['status']:<7} {c.get('reason', '')}")
    if timeline:
        lines.append("timeline  (time, weight, first metric)")
        lines += [f"  {t}  {w:>5}  {e}" for t, w, e in timeline[-TIMELINE:]]
    return "\n".join(lines)


def render_history(obj: dict[str, Any]) -> str:
    rows = [["VERSION", "OUTCOME", "AT", "REASON"]]
    for h in (obj.get("status") or {}).get("history") or []:
        rows.append([str(h.get("version")), str(h.get("outcome")), str(h.get("at") or "-"),
                     str(h.get("reason") or "")])
    return _table(rows) if len(rows) > 1 else "No history yet."


def timeline_point(obj: dict[str, Any], now: dt.datetime) -> tuple[str, str, str]:
    """One row of the live view's timeline: time, the new version's weight, and the first
    analysis metric's last value."""
    st = obj.get("status") or {}
    release = _release(st)
    weight = f"{release.get('weight', 0)}%" if release else "-"
    measured = (release.get("analysis") or {}).get("measurements") or []
    first = measured[0] if measured else None
    metric = (f"{first['metric']}={first['value']:.4g}" if first and first.get("value")
              is not None else "-")
    return now.strftime("%H:%M:%S"), weight, metric


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kubectl modeldeploy", description=(
        "Watch and drive ModelDeployment releases."))
    p.add_argument("--kubeconfig", default=None)
    p.add_argument("--context", default=None)
    p.add_argument("-n", "--namespace", default=None)
    sub = p.add_subparsers(dest="command", required=True)
    get = sub.add_parser("get", help="list ModelDeployments")
    get.add_argument("-A", "--all-namespaces", action="store_true")
    status = sub.add_parser("status", help="one ModelDeployment in detail")
    status.add_argument("name")
    status.add_argument("-w", "--watch", action="store_true", help="a live view")
    status.add_argument("--interval", type=float, default=1.0)
    sub.add_parser("history", help="versions that served").add_argument("name")
    for action in ACTIONS:
        sub.add_parser(action, help=f"ask the operator to {action}").add_argument("name")
    return p


def _watch(api: PluginApi, namespace: str, name: str, interval: float) -> int:
    points: list[tuple[str, str, str]] = []
    try:
        while True:
            obj = api.get(namespace, name)
            point = timeline_point(obj, dt.datetime.now(dt.UTC))
            if not points or points[-1][1:] != point[1:]:
                points.append(point)
            print(CLEAR + render_status(obj, timeline=points), flush=True)
            time.sleep(interval)
    except KeyboardInterrupt:
        return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        api = PluginApi(kubeconfig=args.kubeconfig, context=args.context)
        namespace = args.namespace or api.default_namespace
        now = dt.datetime.now(dt.UTC)
        if args.command == "get":
            items = api.list(None if args.all_namespaces else namespace)
            print(render_list(items, all_namespaces=args.all_namespaces, now=now))
        elif args.command == "status" and args.watch:
            return _watch(api, namespace, args.name, args.interval)
        elif args.command == "status":
            print(render_status(api.get(namespace, args.name)))
        elif args.command == "history":
            print(render_history(api.get(namespace, args.name)))
        else:
            api.get(namespace, args.name)  # a clear "not found" before writing anything
            value = f"{args.command}:{now.strftime('%Y%m%dT%H%M%S.%fZ')}"
            api.annotate(namespace, args.name, REQUEST_ANNOTATION, value)
            print(f"modeldeployment {namespace}/{args.name}: {args.command} requested "
                  f"({REQUEST_ANNOTATION}={value}); see status.lastRequest")
    except PluginError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
