"""Operator configuration, from environment variables (the Helm chart sets them)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from modeldeploy.adapters.scoring import DEFAULT_SERVICE_URL_TEMPLATE, service_url
from modeldeploy.api import DEFAULT_MLFLOW_IMAGE


@dataclass(frozen=True)
class OperatorConfig:
    #: Registry used when a ModelDeployment names none (MODELDEPLOY_DEFAULT_TRACKING_URI).
    default_tracking_uri: str | None = None
    default_registry_uri: str | None = None
    #: Image for runtime ``mlflow`` when the spec names none.
    mlflow_image: str = DEFAULT_MLFLOW_IMAGE
    #: The MLflow webhook receiver; it only starts when a secret is configured.
    webhook_host: str = "0.0.0.0"  # noqa: S104 - in a pod, behind its Service
    webhook_port: int = 8090
    webhook_secret: str | None = None
    #: Prometheus metrics at /metrics (MODELDEPLOY_METRICS_PORT; 0 turns them off).
    metrics_host: str = "0.0.0.0"  # noqa: S104 - in a pod, scraped through its Service
    metrics_port: int = 8081
    #: Reconcile workers, registry call timeout, periodic resync of every object.
    #: URL prefixes a spec may name as registry (MODELDEPLOY_ALLOWED_REGISTRIES, comma
    #: separated); empty allows any. Limits where the operator sends requests and credentials.
    allowed_registries: tuple[str, ...] = ()
    #: Namespaces the operator watches and acts in (MODELDEPLOY_WATCH_NAMESPACES, comma
    #: separated); empty: every namespace. ``modeldeploy-operator`` passes them to Kopf, and
    #: the operator's own watches and lists use the same set, so namespaced Roles suffice.
    watch_namespaces: tuple[str, ...] = ()
    #: Namespaces where labelled registry-credential Secrets are read
    #: (MODELDEPLOY_CREDENTIAL_NAMESPACES); None (unset): wherever ModelDeployments are
    #: watched; set but empty: nowhere (no Secret is ever read). A ModelDeployment elsewhere
    #: that names a credentials Secret gets a condition saying so.
    credential_namespaces: tuple[str, ...] | None = None
    workers: int = 4
    registry_timeout: float = 15.0
    resync_seconds: float = 300.0
    #: How long a registry "not found" (or refused credentials) may last before the object
    #: is Stalled (kstatus: Failed): long enough for a model that is being registered.
    stall_after: float = 120.0
    #: Leader election on a Lease (MODELDEPLOY_LEADER_ELECTION, on unless "false"): with
    #: several replicas exactly one acts. The Lease lives in MODELDEPLOY_LEASE_NAMESPACE
    #: (default: the pod's namespace, else "default") under MODELDEPLOY_LEASE_NAME.
    #: Prometheus for canary analysis (MODELDEPLOY_PROMETHEUS_URL); without it every
    #: measurement is an Error (and a release with analysis rolls back at the error limit).
    prometheus_url: str | None = None
    #: Where a version's Service answers (MODELDEPLOY_SERVICE_URL_TEMPLATE; placeholders
    #: {service}, {namespace}, {port}): the smoke test and health probes POST there.
    service_url_template: str = DEFAULT_SERVICE_URL_TEMPLATE
    #: This cluster's name, written with release outcomes to the registry
    #: (MODELDEPLOY_CLUSTER_NAME; the ``<prefix>.cluster`` tag), so one registry serving many
    #: clusters tells them apart.
    cluster_name: str = ""
    prometheus_timeout: float = 10.0
    leader_election: bool = True
    lease_namespace: str = "default"
    lease_name: str = "modeldeploy-operator"
    lease_identity: str = ""
    lease_duration: float = 12.0
    lease_renew_deadline: float = 8.0
    lease_retry_period: float = 2.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OperatorConfig:
        e = os.environ if env is None else env

        def get(name: str) -> str | None:
            value = e.get(f"MODELDEPLOY_{name}")
            return value if value else None

        tracking = get("DEFAULT_TRACKING_URI")
        return cls(
            default_tracking_uri=tracking,
            default_registry_uri=get("DEFAULT_REGISTRY_URI") or tracking,
            mlflow_image=get("MLFLOW_IMAGE") or DEFAULT_MLFLOW_IMAGE,
            webhook_host=get("WEBHOOK_HOST") or cls.webhook_host,
            webhook_port=int(get("WEBHOOK_PORT") or cls.webhook_port),
            webhook_secret=get("WEBHOOK_SECRET"),
            metrics_host=get("METRICS_HOST") or cls.metrics_host,
            metrics_port=int(get("METRICS_PORT") or cls.metrics_port),
            allowed_registries=_csv(get("ALLOWED_REGISTRIES")),
            watch_namespaces=_csv(get("WATCH_NAMESPACES")),
            credential_namespaces=(None if e.get("MODELDEPLOY_CREDENTIAL_NAMESPACES") is None
                                   else _csv(e["MODELDEPLOY_CREDENTIAL_NAMESPACES"])),
            workers=int(get("WORKERS") or cls.workers),
            registry_timeout=float(get("REGISTRY_TIMEOUT") or cls.registry_timeout),
            resync_seconds=float(get("RESYNC_SECONDS") or cls.resync_seconds),
            stall_after=float(get("STALL_AFTER_SECONDS") or cls.stall_after),
            prometheus_url=get("PROMETHEUS_URL"),
            service_url_template=_template(get("SERVICE_URL_TEMPLATE")
                                           or DEFAULT_SERVICE_URL_TEMPLATE),
            cluster_name=get("CLUSTER_NAME") or "",
            prometheus_timeout=float(get("PROMETHEUS_TIMEOUT") or cls.prometheus_timeout),
            leader_election=(get("LEADER_ELECTION") or "true").lower() not in ("false", "0",
                                                                            "no", "off"),
            lease_namespace=get("LEASE_NAMESPACE") or e.get("POD_NAMESPACE")
            or _pod_namespace() or cls.lease_namespace,
            lease_name=get("LEASE_NAME") or cls.lease_name,
            lease_identity=get("LEASE_IDENTITY") or "",
            lease_duration=float(get("LEASE_DURATION_SECONDS") or cls.lease_duration),
            lease_renew_deadline=float(get("LEASE_RENEW_DEADLINE_SECONDS")
                                       or cls.lease_renew_deadline),
            lease_retry_period=float(get("LEASE_RETRY_PERIOD_SECONDS")
                                     or cls.lease_retry_period),
        )


    @property
    def secret_namespaces(self) -> tuple[str, ...] | None:
        """Where credential Secrets are watched: a tuple of namespaces, or None for every
        namespace (a cluster-wide watch)."""
        if self.credential_namespaces is None:
            return self.watch_namespaces or None
        if self.watch_namespaces:
            return tuple(n for n in self.credential_namespaces if n in self.watch_namespaces)
        return self.credential_namespaces


def _template(template: str) -> str:
    """The service URL template, refused at start-up (ValueError) when it cannot be used."""
    service_url(template, service="s", namespace="n", port=1)
    return template


def _csv(value: str | None) -> tuple[str, ...]:
    """A comma-separated list, blanks and duplicates dropped, order kept."""
    return tuple(dict.fromkeys(p.strip() for p in (value or "").split(",") if p.strip()))


_SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def _pod_namespace() -> str | None:
    """The namespace of the pod we run in (its service account's), None outside a pod."""
    try:
        with open(_SERVICE_ACCOUNT_NAMESPACE, encoding="utf-8") as f:
            return f.read().strip() or None
    except OSError:
        return None


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _parts(uri: str) -> tuple[str, str, int | None, str] | None:
    """(scheme, host, port, path) of an http(s) URL; None when it is not one (or its port is
    not a number)."""
    try:
        split = urlsplit(uri.strip())
        port = split.port
    except ValueError:
        return None
    scheme = split.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not split.hostname:
        return None
    return (scheme, split.hostname.lower(), port or _DEFAULT_PORTS[scheme],
            split.path.rstrip("/"))


def registry_allowed(uri: str, allowed: Iterable[str]) -> bool:
    """Whether ``uri`` is one of the ``allowed`` registries: the same scheme, host and port,
    and a path at or below the allowed path (whole segments). Compared parsed, never as
    string prefixes: ``https://mlflow.corp`` must not admit ``https://mlflow.corp.evil.io``
    or ``https://mlflow.corp@evil.io``, and a URL with credentials in it is never allowed."""
    got = _parts(uri)
    if got is None or "@" in urlsplit(uri.strip()).netloc:
        return False
    for entry in allowed:
        want = _parts(entry)
        if want is not None and got[:3] == want[:3] and (
                got[3] == want[3] or got[3].startswith(want[3] + "/")):
            return True
    return False
