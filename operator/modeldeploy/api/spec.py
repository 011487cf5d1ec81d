"""``ModelDeployment.spec``: the pydantic models are the single source of truth.

The CRD's OpenAPI schema (``crds/modeldeployment.yaml``) is generated from these classes by
:mod:`modeldeploy.api.crd`; every field's description comes from its ``description=``, and the
cross-field rules are declared once per class in ``model_config["json_schema_extra"]`` as CEL
``x-kubernetes-validations`` (enforced by the apiserver at admission) *and* mirrored by a
pydantic validator (enforced again when the operator reads an object, so an object that got in
before a rule existed still gets a clear answer instead of a crash).
"""

from __future__ import annotations

import itertools
import re
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from modeldeploy.api.cel import Rule, rules
from modeldeploy.core import durations
from modeldeploy.core.durations import DURATION_PATTERN
from modeldeploy.core.templates import PLACEHOLDERS, TEMPLATES, unknown_placeholders

Duration = Annotated[
    str,
    Field(pattern=DURATION_PATTERN, max_length=32,
          description="A duration such as 30s, 5m, 1h30m or 500ms."),
]
Quantity = Annotated[str, Field(pattern=r"^[0-9]+(\.[0-9]+)?([munkMGTPE]i?|e[0-9]+)?$",
                                max_length=32)]
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


class _Model(BaseModel):
    """Base for every spec class: camelCase on the wire, unknown fields rejected."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


# --- model -------------------------------------------------------------------------------


class LegacyStage(StrEnum):
    """MLflow's deprecated model-version stages (aliases replace them in MLflow 2.9+)."""

    STAGING = "Staging"  # the "Staging" stage
    PRODUCTION = "Production"  # the "Production" stage
    ARCHIVED = "Archived"  # the "Archived" stage


class SecretKeyRef(_Model):
    name: str = Field(description="Name of a Secret in the ModelDeployment's namespace.",
                      pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", max_length=253)
    tokenKey: str = Field(default="token", description=(
        "Key holding a bearer token (MLFLOW_TRACKING_TOKEN). Used when present in the Secret."))
    usernameKey: str = Field(default="username", description=(
        "Key holding a basic-auth username (MLFLOW_TRACKING_USERNAME), used with passwordKey."))
    passwordKey: str = Field(default="password", description=(
        "Key holding a basic-auth password (MLFLOW_TRACKING_PASSWORD)."))


class Registry(_Model):
    trackingUri: str | None = Field(default=None, max_length=2048, pattern=r"^https?://\S+$",
                                    description=(
        "MLflow tracking server URL (http or https). Defaults to the operator's "
        "MODELDEPLOY_DEFAULT_TRACKING_URI."))
    registryUri: str | None = Field(default=None, max_length=2048, pattern=r"^https?://\S+$",
                                    description=(
        "MLflow Model Registry URL, when it differs from trackingUri. Defaults to trackingUri."))
    credentialsSecret: SecretKeyRef | None = Field(default=None, description=(
        "Secret with credentials for the registry: a token, or a username and password."))


SELECTOR_RULE = ("set exactly one of alias, stage and version "
                 "(version: latest tracks the newest version)")
#: The shortest poll interval a spec may ask for: registry load is shared, but not free.
MIN_POLL_INTERVAL = "5s"
POLL_RULE = f"pollInterval must be at least {MIN_POLL_INTERVAL} (webhooks are the fast path)"
MODEL_NAME_RULE = "MLflow refuses registered model names that contain '/' or ':'"


ALIAS_PATTERN = r"^[A-Za-z0-9_\-]+$"
WRITE_BACK_ALIAS_RULE = ("writeBack may not move the alias this object tracks (it would release "
                         "what it just released, or switch back and forth)")


class WriteBack(_Model):
    """What the operator records in the registry when a release ends (its credentials)."""

    tagPrefix: str = Field(default="modeldeploy", min_length=1, max_length=64,
                           pattern=r"^[A-Za-z0-9_\-.]+$", description=(
        "Tags written on the version: <prefix>.outcome (Promoted or Rejected), .reason, "
        ".cluster, .namespace, .name, .at and .analysis."))
    promotedAliases: list[Annotated[str, Field(min_length=1, max_length=256,
                                               pattern=ALIAS_PATTERN)]] | None = Field(
        default=None, max_length=8, description=(
            "Aliases moved to a version once it is promoted here, e.g. staging-approved, "
            "which a production ModelDeployment can require (gates.required.aliases)."))
    previousAlias: str | None = Field(default=None, min_length=1, max_length=256,
                                      pattern=ALIAS_PATTERN, description=(
        "Alias moved to the version a promotion replaced, e.g. previous-champion."))


@rules(
    Rule("[has(self.alias), has(self.stage), has(self.version)].filter(x, x).size() == 1",
         SELECTOR_RULE),
    Rule(f"!has(self.pollInterval) || duration(self.pollInterval) >= "
         f"duration('{MIN_POLL_INTERVAL}')", POLL_RULE, field_path=".pollInterval"),
    Rule("!self.name.contains('/') && !self.name.contains(':')", MODEL_NAME_RULE,
         field_path=".name"),
    Rule("!has(self.writeBack) || !has(self.alias) || "
         "!has(self.writeBack.promotedAliases) || "
         "!self.writeBack.promotedAliases.exists(a, a == self.alias)",
         WRITE_BACK_ALIAS_RULE, field_path=".writeBack.promotedAliases"),
    Rule("!has(self.writeBack) || !has(self.alias) || "
         "!has(self.writeBack.previousAlias) || self.writeBack.previousAlias != self.alias",
         WRITE_BACK_ALIAS_RULE, field_path=".writeBack.previousAlias"),
)
class ModelRef(_Model):
    name: str = Field(min_length=1, max_length=256, description=(
        "Registered model name in the MLflow Model Registry."))
    alias: str | None = Field(default=None, min_length=1, max_length=256,
                              pattern=ALIAS_PATTERN, description=(
        "Track the version this alias points to (e.g. champion). Moving the alias in MLflow "
        "releases the new version."))
    stage: LegacyStage | None = Field(default=None, description=(
        "Track the newest version in this legacy stage (deprecated in MLflow; prefer alias)."))
    version: str | None = Field(default=None, pattern=r"^([1-9][0-9]*|latest)$", max_length=20,
                                description=(
        "Pin an explicit version number, or \"latest\" to track the newest version."))
    registry: Registry | None = Field(default=None, description=(
        "Where the registry is; defaults come from the operator's configuration."))
    pollInterval: Duration = Field(default="30s", description=(
        "How often the registry is polled for changes (at least 5s). Webhooks trigger at "
        "once; polling is the backstop for lost deliveries. Objects tracking the same model "
        "share one poll."))
    writeBack: WriteBack | None = Field(default=None, description=(
        "Record each release's outcome in the registry: tags on the version, aliases moved. "
        "A failed write is retried and reported; it never changes a traffic decision."))

    @model_validator(mode="after")
    def _one_selector(self) -> Self:
        if sum(x is not None for x in (self.alias, self.stage, self.version)) != 1:
            raise ValueError(SELECTOR_RULE)
        if durations.parse(self.pollInterval) < durations.parse(MIN_POLL_INTERVAL):
            raise ValueError(POLL_RULE)
        if "/" in self.name or ":" in self.name:
            raise ValueError(MODEL_NAME_RULE)
        if (self.writeBack is not None and self.alias is not None
                and (self.alias in (self.writeBack.promotedAliases or ())
                     or self.alias == self.writeBack.previousAlias)):
            raise ValueError(WRITE_BACK_ALIAS_RULE)
        return self

    def selector(self) -> tuple[str, str]:
        """(kind, value): ("alias", "champion"), ("stage", ...), ("version", "3") or
        ("latest", "") for ``version: latest``."""
        if self.alias is not None:
            return ("alias", self.alias)
        if self.stage is not None:
            return ("stage", self.stage.value)
        if self.version is None or self.version == "latest":  # None: validation prevents it
            return ("latest", "")
        return ("version", self.version)


# --- serving -----------------------------------------------------------------------------


class Runtime(StrEnum):
    """How a version is served."""

    MLFLOW = "mlflow"  # MLflow's scoring server (`mlflow models serve`) in the configured image
    CUSTOM = "custom"  # the user's image; the model URI is passed by env and templated args


class EnvVar(_Model):
    name: str = Field(min_length=1, max_length=256, pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$",
                      description="Environment variable name.")
    value: str | None = Field(default=None, description=(
        "Literal value; {{ modelUri }}, {{ modelName }} and {{ version }} are substituted."))
    valueFrom: dict[str, Any] | None = Field(default=None, description=(
        "A Kubernetes EnvVarSource (secretKeyRef, configMapKeyRef, fieldRef, ...)."),
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True})


class Resources(_Model):
    requests: dict[str, Quantity] | None = Field(default=None, description=(
        "Minimum resources, e.g. {cpu: 500m, memory: 1Gi}."))
    limits: dict[str, Quantity] | None = Field(default=None, description="Maximum resources.")


class Toleration(_Model):
    key: str | None = Field(default=None, description="Taint key the toleration applies to.")
    operator: str | None = Field(default=None, pattern=r"^(Exists|Equal)$",
                                 description="Exists or Equal.")
    value: str | None = Field(default=None, description="Taint value for Equal.")
    effect: str | None = Field(default=None, pattern=r"^(NoSchedule|PreferNoSchedule|NoExecute)$",
                               description="NoSchedule, PreferNoSchedule or NoExecute.")
    tolerationSeconds: int | None = Field(default=None, ge=0, description=(
        "For NoExecute: how long the pod stays bound after the taint appears."))


class Probe(_Model):
    path: str = Field(default="/ping", pattern=r"^/\S*$", description="HTTP GET path.")
    initialDelaySeconds: int = Field(default=0, ge=0, description="Wait before the first probe.")
    periodSeconds: int = Field(default=10, ge=1, description="Probe every this many seconds.")
    timeoutSeconds: int = Field(default=2, ge=1, description="Per-probe timeout.")
    failureThreshold: int = Field(default=3, ge=1, description="Failures before giving up.")


class Probes(_Model):
    readiness: Probe | None = Field(default=None, description=(
        "Readiness probe; defaults to GET /ping (MLflow's scoring server)."))
    liveness: Probe | None = Field(default=None, description=(
        "Liveness probe; defaults to GET /ping with a longer initial delay."))
    startup: Probe | None = Field(default=None, description=(
        "Startup probe, for models that take long to load."))


@rules(Rule("self.minReplicas <= self.maxReplicas",
            "minReplicas must not exceed maxReplicas", field_path=".minReplicas"))
class Autoscaling(_Model):
    minReplicas: int = Field(default=1, ge=1, le=1000, description="Lower bound of replicas.")
    maxReplicas: int = Field(ge=1, le=1000, description="Upper bound of replicas.")
    targetCPUUtilizationPercentage: int = Field(default=70, ge=1, le=100, description=(
        "Average CPU utilisation (percent of requests) the HorizontalPodAutoscaler aims for."))

    @model_validator(mode="after")
    def _bounds(self) -> Self:
        if self.minReplicas > self.maxReplicas:
            raise ValueError("minReplicas must not exceed maxReplicas")
        return self


#: Environment variables the operator sets on every serving container; a spec that sets one
#: too would make the Deployment invalid (duplicate env names), so admission refuses it.
RESERVED_ENV = ("MODEL_URI", "MODEL_NAME", "MODEL_VERSION", "MLFLOW_TRACKING_URI",
                "MLFLOW_REGISTRY_URI", "MLFLOW_DISABLE_TELEMETRY", "HOME",
                "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
RESERVED_ENV_RULE = ("env names set by the operator may not be set here: "
                     + ", ".join(RESERVED_ENV))
UNIQUE_ENV_RULE = "env names must be unique"


@rules(
    Rule("self.runtime != 'custom' || has(self.image)",
         "runtime custom needs an image", field_path=".image"),
    Rule("!has(self.env) || self.env.all(e, !(e.name in ["
         + ", ".join(f"'{n}'" for n in RESERVED_ENV) + "]))",
         RESERVED_ENV_RULE, field_path=".env"),
    Rule("!has(self.env) || self.env.all(e, self.env.exists_one(f, f.name == e.name))",
         UNIQUE_ENV_RULE, field_path=".env"),
)
class Serving(_Model):
    runtime: Runtime = Field(default=Runtime.MLFLOW, description=(
        "mlflow: MLflow's scoring server serves the resolved version. custom: your image; the "
        "model URI arrives as MODEL_URI and through {{ modelUri }} in command/args."))
    image: str | None = Field(default=None, min_length=1, max_length=512, description=(
        "Container image. For runtime mlflow it defaults to the operator's "
        "MODELDEPLOY_MLFLOW_IMAGE."))
    command: list[str] | None = Field(default=None, max_length=64, description=(
        "Container command; {{ modelUri }}, {{ modelName }} and {{ version }} are substituted."))
    args: list[str] | None = Field(default=None, max_length=64, description=(
        "Container args, templated like command."))
    port: int = Field(default=8080, ge=1, le=65535, description="Port the server listens on.")
    replicas: int = Field(default=1, ge=0, le=1000, description=(
        "Replicas per version (ignored while autoscaling is set)."))
    resources: Resources | None = Field(default=None, description="Container resources.")
    env: list[EnvVar] | None = Field(default=None, max_length=128, description=(
        "Extra environment variables for the serving container."))
    probes: Probes | None = Field(default=None, description="Probe overrides.")
    nodeSelector: dict[str, str] | None = Field(default=None, description=(
        "Node labels the serving pods must match."))
    tolerations: list[Toleration] | None = Field(default=None, max_length=64,
                                                 description="Tolerations of the serving pods.")
    serviceAccountName: str | None = Field(default=None, pattern=DNS_LABEL, max_length=253,
                                           description="ServiceAccount of the serving pods.")
    podLabels: dict[str, str] | None = Field(default=None, description=(
        "Extra labels on serving pods (modeldeploy.io/* keys are reserved)."))
    podAnnotations: dict[str, str] | None = Field(default=None, description=(
        "Extra annotations on serving pods."))
    autoscaling: Autoscaling | None = Field(default=None, description=(
        "Run a HorizontalPodAutoscaler per version instead of fixed replicas."))

    @model_validator(mode="after")
    def _custom_image(self) -> Self:
        if self.runtime is Runtime.CUSTOM and self.image is None:
            raise ValueError("runtime custom needs an image")
        names = [e.name for e in self.env or []]
        if set(names) & set(RESERVED_ENV):
            raise ValueError(RESERVED_ENV_RULE)
        if len(set(names)) != len(names):
            raise ValueError(UNIQUE_ENV_RULE)
        return self


# --- traffic and rollout ---------------------------------------------------------------------


class Router(StrEnum):
    """What shifts traffic between versions."""

    GATEWAY_API = "gatewayAPI"  # weights on a Gateway API HTTPRoute
    ISTIO = "istio"  # weights on an Istio VirtualService
    REPLICAS = "replicas"  # one Service over all versions; traffic follows replica counts


class ParentRef(_Model):
    name: str = Field(min_length=1, max_length=253, description="Gateway name.")
    namespace: str | None = Field(default=None, pattern=DNS_LABEL, max_length=63,
                                  description="Gateway namespace (default: the object's).")
    sectionName: str | None = Field(default=None, max_length=253,
                                    description="Listener name on the Gateway.")


class GatewayAPI(_Model):
    parentRefs: list[ParentRef] = Field(default_factory=list, max_length=32, description=(
        "Gateways the HTTPRoute attaches to."))
    hostnames: list[str] | None = Field(default=None, max_length=16,
                                        description="Hostnames the HTTPRoute matches.")


class Istio(_Model):
    hosts: list[str] = Field(min_length=1, max_length=16,
                             description="Hosts of the VirtualService.")
    gateways: list[str] | None = Field(default=None, max_length=16,
                                       description="Istio Gateways the VirtualService binds to.")


@rules(
    Rule("self.router != 'gatewayAPI' || has(self.gatewayAPI)",
         "router gatewayAPI needs the gatewayAPI section", field_path=".gatewayAPI"),
    Rule("self.router != 'istio' || has(self.istio)",
         "router istio needs the istio section", field_path=".istio"),
)
class Traffic(_Model):
    router: Router = Field(default=Router.REPLICAS, description=(
        "gatewayAPI: weighted HTTPRoute. istio: weighted VirtualService. replicas: a plain "
        "Service; the split follows replica counts."))
    gatewayAPI: GatewayAPI | None = Field(default=None, description="HTTPRoute settings.")
    istio: Istio | None = Field(default=None, description="VirtualService settings.")

    @model_validator(mode="after")
    def _sections(self) -> Self:
        if self.router is Router.GATEWAY_API and self.gatewayAPI is None:
            raise ValueError("router gatewayAPI needs the gatewayAPI section")
        if self.router is Router.ISTIO and self.istio is None:
            raise ValueError("router istio needs the istio section")
        return self


class Strategy(StrEnum):
    """How a new version is released."""

    CANARY = "canary"  # shift traffic step by step with analysis
    BLUE_GREEN = "blueGreen"  # bring up the new version in full, then switch at once
    AB_TEST = "abTest"  # route a sticky audience to the new version
    SHADOW = "shadow"  # mirror traffic to the new version; responses are discarded


PAUSE_PATTERN = r"^$|" + DURATION_PATTERN


class Step(_Model):
    weight: int = Field(ge=1, le=100, description="Percent of traffic to the new version.")
    pause: str | None = Field(default=None, pattern=PAUSE_PATTERN, max_length=32, description=(
        "How long to hold this weight (analysis keeps running) before the next step. Empty "
        "(\"\"): hold until a human resumes or promotes. Absent: move on once the weight is "
        "live and, with analysis, a measurement at this weight (one interval after it went "
        "live) succeeded."))

    def waits_for_human(self) -> bool:
        return self.pause == ""

    def pause_seconds(self) -> float:
        return durations.parse(self.pause) if self.pause else 0.0


class Direction(StrEnum):
    """Which way a registry metric is better."""

    LOWER = "lower"  # lower is better (rmse, loss)
    HIGHER = "higher"  # higher is better (accuracy, auc)


class OnMissing(StrEnum):
    """What a missing value means to a gate."""

    BLOCK = "block"  # no value, no traffic
    ALLOW = "allow"  # let it through, and say so in status


@rules(Rule("!(has(self.maxRegression) && has(self.maxDelta))",
            "set at most one of maxRegression (relative) and maxDelta (absolute)",
            field_path=".maxDelta"))
class RegistryMetricGate(_Model):
    name: str = Field(min_length=1, max_length=256, description=(
        "A metric logged in the version's run, e.g. rmse or auc."))
    direction: Direction = Field(description="Whether lower or higher is better.")
    maxRegression: str | None = Field(default=None, pattern=r"^[0-9]+(\.[0-9]+)?%$",
                                      description=(
        "How much worse than the stable version's value the new one may be, relative to it "
        "(e.g. 2%). Neither this nor maxDelta: no regression at all."))
    maxDelta: float | None = Field(default=None, ge=0, description=(
        "How much worse than the stable version's value the new one may be, in the metric's "
        "own unit (e.g. 0.01)."))
    onMissing: OnMissing = Field(default=OnMissing.BLOCK, description=(
        "When the new version's run did not log the metric (or has no run): block, or allow "
        "and record it. A stable version without the metric (a first release) never blocks."))

    @model_validator(mode="after")
    def _one_limit(self) -> Self:
        if self.maxRegression is not None and self.maxDelta is not None:
            raise ValueError("set at most one of maxRegression (relative) and maxDelta "
                             "(absolute)")
        return self


class OnMissingExample(StrEnum):
    SKIP = "skip"  # no input example: the smoke test is skipped, and status says so
    FAIL = "fail"  # no input example: the version gets no traffic


class SmokeTest(_Model):
    attempts: int = Field(default=3, ge=1, le=10, description=(
        "Tries before the smoke test fails (one success passes)."))
    timeout: Duration = Field(default="10s", description="Time allowed for one attempt.")
    maxLatency: Duration = Field(default="1s", description=(
        "Slowest acceptable response to the input example."))
    onMissingExample: OnMissingExample = Field(default=OnMissingExample.SKIP, description=(
        "A version logged without an input example: skip the smoke test, or fail it."))


class OnBreakingChange(StrEnum):
    BLOCK = "block"  # the version gets no traffic
    APPROVE = "approve"  # it waits until a human promotes it
    WARN = "warn"  # it proceeds; a Warning event and the status name the change


class SignatureGate(_Model):
    onBreakingChange: OnBreakingChange = Field(default=OnBreakingChange.BLOCK, description=(
        "A removed or retyped input, a new required input, or any change of the outputs, "
        "compared with the stable version's signature."))


class RequiredMarks(_Model):
    tags: dict[str, str] | None = Field(default=None, max_length=32, description=(
        "Version tags that must be present, with these values (\"*\": any value), e.g. "
        "validation_status: approved."))
    aliases: list[str] | None = Field(default=None, max_length=16, description=(
        "Aliases that must point at the version, e.g. staging (moved there by the staging "
        "ModelDeployment's write-back)."))


class Gates(_Model):
    smokeTest: SmokeTest | None = Field(default=None, description=(
        "POST the version's logged input example to its Service's /invocations and check "
        "the answer against its output signature and a latency budget."))
    registryMetrics: list[RegistryMetricGate] | None = Field(default=None, max_length=32,
                                                             description=(
        "Compare the new version's run metrics with the stable version's."))
    signature: SignatureGate | None = Field(default=None, description=(
        "What a breaking change of the model signature does."))
    required: RequiredMarks | None = Field(default=None, description=(
        "Registry marks the version must carry before it may start."))


@rules(Rule("has(self.template) != has(self.query)",
            "set exactly one of template and query", field_path=".query"),
       Rule("has(self.min) || has(self.max) || has(self.maxIncrease)",
            "set at least one of min, max and maxIncrease", field_path=".max"))
class AnalysisMetric(_Model):
    name: str = Field(min_length=1, max_length=63, pattern=DNS_LABEL,
                      description="Metric name shown in status.")
    template: str | None = Field(
        default=None, max_length=63,
        pattern="^(" + "|".join(re.escape(t) for t in sorted(TEMPLATES)) + ")$",
        description="A built-in query: " + ", ".join(sorted(TEMPLATES)) + ".")
    provider: str = Field(default="prometheus", pattern=r"^prometheus$",
                          description="Measurement source.")
    query: str | None = Field(default=None, max_length=4096, description=(
        "PromQL returning one value; {{ namespace }}, {{ name }}, {{ model }}, {{ version }}, "
        "{{ stableVersion }} and {{ interval }} are substituted."))
    min: float | None = Field(default=None, description="Fail when the value is below this.")
    max: float | None = Field(default=None, description="Fail when the value is above this.")
    maxIncrease: float | None = Field(default=None, ge=0, description=(
        "Fail when the new version's value exceeds the stable version's, measured the same "
        "way over the same window, by more than this (in the metric's unit)."))

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.template is None) == (self.query is None):
            raise ValueError("set exactly one of template and query")
        unknown = unknown_placeholders(self.query or "")
        if unknown:
            raise ValueError(f"query: unknown placeholder(s) {', '.join(unknown)}; use "
                             + ", ".join("{{ " + p + " }}" for p in PLACEHOLDERS))
        if self.min is None and self.max is None and self.maxIncrease is None:
            raise ValueError("set at least one of min, max and maxIncrease")
        return self


#: The shortest analysis interval: a query window below a scrape or two measures nothing.
MIN_ANALYSIS_INTERVAL = "1s"
INTERVAL_RULE = f"analysis interval must be at least {MIN_ANALYSIS_INTERVAL}"


@rules(Rule(f"!has(self.interval) || duration(self.interval) >= "
            f"duration('{MIN_ANALYSIS_INTERVAL}')", INTERVAL_RULE, field_path=".interval"))
class Analysis(_Model):
    interval: Duration = Field(default="1m", description=(
        "Time between measurements, and the window each query looks back over (at least "
        "1s)."))
    failureLimit: int = Field(default=0, ge=0, le=100, description=(
        "Failed measurements tolerated; one more rolls the release back."))
    inconclusiveLimit: int = Field(default=3, ge=0, le=100, description=(
        "Inconclusive measurements (no data, too few requests) tolerated while the release "
        "holds its step; one more rolls it back. Inconclusive never promotes."))
    consecutiveErrorLimit: int = Field(default=4, ge=0, le=100, description=(
        "Measurement errors in a row (Prometheus down, a PromQL error) tolerated; one more "
        "rolls the release back."))
    minRequests: int = Field(default=0, ge=0, description=(
        "Requests the new version must have served within an interval for a measurement of a "
        "built-in template to count (fewer: Inconclusive). A query metric counts no requests: "
        "make its query return nothing when there are too few."))
    metrics: list[AnalysisMetric] = Field(default_factory=list, max_length=32,
                                          description="What to measure.")

    @model_validator(mode="after")
    def _interval(self) -> Self:
        if durations.parse(self.interval) < durations.parse(MIN_ANALYSIS_INTERVAL):
            raise ValueError(INTERVAL_RULE)
        return self


class BlueGreen(_Model):
    autoPromote: bool = Field(default=True, description=(
        "Switch traffic as soon as the preview is Ready and its analysis passed; false: wait "
        "for a promote request."))
    scaleDownDelay: Duration = Field(default="30s", description=(
        "How long the previous version stays scaled up after the switch, so that switching "
        "back is instant."))


HEADER_NAME = r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]{1,256}$"


@rules(Rule("[has(self.header), has(self.cookie)].filter(x, x).size() == 1",
            "set exactly one of header and cookie", field_path=".header"))
class AudienceMatch(_Model):
    """Who is in the A/B audience: requests carrying this header or cookie value."""

    header: str | None = Field(default=None, pattern=HEADER_NAME, max_length=256,
                               description="An HTTP header name, e.g. x-user-group.")
    cookie: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_\-.]{1,128}$",
                               max_length=128, description="A cookie name, e.g. ab.")
    value: str = Field(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9_\-.:/@+=]+$",
                       description="The exact value that puts a request in the audience.")

    @model_validator(mode="after")
    def _one(self) -> Self:
        if (self.header is None) == (self.cookie is None):
            raise ValueError("set exactly one of header and cookie")
        return self


class AbTest(_Model):
    match: AudienceMatch = Field(description=(
        "The sticky audience: every request with this header or cookie value goes to the new "
        "version (one user stays on one version); everyone else stays on the stable one."))
    duration: Duration = Field(default="10m", description=(
        "How long the test runs before the new version is promoted (with analysis: and its "
        "last measurement succeeded)."))


class Shadow(_Model):
    percent: int = Field(default=100, ge=1, le=100, description=(
        "Percent of requests copied to the new version; users see only the stable version's "
        "answers."))
    duration: Duration = Field(default="10m", description=(
        "How long the new version is shadowed before it is promoted (with analysis: and its "
        "last measurement on mirrored traffic succeeded)."))


STEPS_RULE = "canary step weights must be strictly increasing"


@rules(
    Rule("!has(self.steps) || self.steps.map(s, s.weight).isSorted() && "
         "self.steps.all(s, self.steps.filter(t, t.weight == s.weight).size() == 1)",
         STEPS_RULE, field_path=".steps"),
    Rule("self.strategy != 'canary' || has(self.steps) && size(self.steps) > 0",
         "strategy canary needs at least one step", field_path=".steps"),
    Rule("self.strategy != 'abTest' || has(self.abTest)",
         "strategy abTest needs the abTest section (its audience)", field_path=".abTest"),
)
class Rollout(_Model):
    strategy: Strategy = Field(default=Strategy.CANARY, description=(
        "canary: shift traffic step by step. blueGreen: bring the new version up behind a "
        "preview Service, then switch at once. abTest: route a sticky audience (header or "
        "cookie) to it, then promote. shadow: mirror requests to it (users see only the "
        "stable version), then promote."))
    steps: list[Step] | None = Field(default=None, max_length=20, description=(
        "Canary steps; weights strictly increasing within 1..100 (100 is implied at the end)."))
    progressDeadline: Duration = Field(default="10m", description=(
        "How long the new version may take to become Ready; past it the release is rolled "
        "back (ProgressDeadlineExceeded)."))
    blueGreen: BlueGreen | None = Field(default=None, description="Blue-green settings.")
    abTest: AbTest | None = Field(default=None, description="A/B test settings.")
    shadow: Shadow | None = Field(default=None, description="Shadow (mirroring) settings.")
    gates: Gates | None = Field(default=None, description="Checks before any traffic moves.")
    analysis: Analysis | None = Field(default=None, description="Metric analysis during steps.")
    bakeWindow: Duration | None = Field(default=None, description=(
        "After a promotion, keep measuring the new stable version this long with the previous "
        "version still up: a Failed measurement switches traffic straight back to it (no new "
        "pods). Needs traffic.router gatewayAPI or istio."))
    fastTrackWindow: Duration = Field(default="24h", description=(
        "A version that served as stable here within this window returns fast-tracked (e.g. "
        "pinning spec.model.version back to it): no steps; gates run and are recorded, and "
        "only the smoke test can stop it."))
    fixForward: bool = Field(default=False, description=(
        "Emergency: the stable version is broken, so skip every comparison with it (registry "
        "metrics, signature, maxIncrease analysis); the smoke test and absolute analysis "
        "bounds still apply."))

    @model_validator(mode="after")
    def _increasing(self) -> Self:
        weights = [s.weight for s in self.steps or []]
        if any(b <= a for a, b in itertools.pairwise(weights)):
            raise ValueError(STEPS_RULE)
        if self.strategy is Strategy.CANARY and not weights:
            raise ValueError("strategy canary needs at least one step")
        if self.strategy is Strategy.AB_TEST and self.abTest is None:
            raise ValueError("strategy abTest needs the abTest section (its audience)")
        return self


class HealthCheck(_Model):
    """Probe the serving version with its logged input example, at an interval."""

    interval: Duration = Field(default="1m", description=(
        "Time between probes (also how often RollbackReady is checked)."))
    timeout: Duration = Field(default="5s", description="Time allowed for one probe.")
    maxLatency: Duration = Field(default="1s", description=(
        "Slowest acceptable answer; slower counts as a failure."))
    failureThreshold: int = Field(default=3, ge=1, le=100, description=(
        "Failures in a row that make the version Unhealthy (condition and Warning event)."))


REPLICAS_AUTOSCALING_RULE = (
    "a canary with the replicas router splits traffic by replica counts, which an autoscaler "
    "would change: use traffic.router gatewayAPI or istio, or drop serving.autoscaling")


BAKE_ROUTER_RULE = ("rollout.bakeWindow switches traffic back by route weights: use "
                    "traffic.router gatewayAPI or istio")
ROUTE_STRATEGY_RULE = ("strategies abTest and shadow need a route object: use traffic.router "
                       "gatewayAPI or istio")
_REPLICAS_ROUTER = ("(!has(self.traffic) || !has(self.traffic.router) || "
                    "self.traffic.router == 'replicas')")


@rules(Rule("!(has(self.rollout) && has(self.rollout.bakeWindow) && " + _REPLICAS_ROUTER + ")",
            BAKE_ROUTER_RULE, field_path=".rollout.bakeWindow"),
       Rule("!(has(self.rollout) && has(self.rollout.strategy) && "
            "self.rollout.strategy in ['abTest', 'shadow'] && " + _REPLICAS_ROUTER + ")",
            ROUTE_STRATEGY_RULE, field_path=".rollout.strategy"),
       Rule("!(has(self.rollout) && (!has(self.rollout.strategy) || "
            "self.rollout.strategy == 'canary') && (!has(self.traffic) || "
            "!has(self.traffic.router) || self.traffic.router == 'replicas') && "
            "has(self.serving) && has(self.serving.autoscaling))",
            REPLICAS_AUTOSCALING_RULE, field_path=".serving.autoscaling"))
class ModelDeploymentSpec(_Model):
    model: ModelRef = Field(description="Which registered model version to serve.")
    serving: Serving = Field(default_factory=Serving, description="How each version is served.")
    traffic: Traffic | None = Field(default=None, description=(
        "How traffic reaches the versions: a weighted HTTPRoute (gatewayAPI), a weighted "
        "VirtualService (istio), or one Service over all versions (replicas)."))
    rollout: Rollout | None = Field(default=None, description=(
        "How a new version is released (absent: a rolling switch once it is Ready)."))
    healthCheck: HealthCheck | None = Field(default=None, description=(
        "Probe the serving version with its input example while it serves (absent: no "
        "probes; RollbackReady is still checked every minute)."))

    @model_validator(mode="after")
    def _replicas_split_without_autoscaler(self) -> Self:
        router = self.traffic.router if self.traffic else Router.REPLICAS
        if self.rollout is not None and self.rollout.strategy is Strategy.CANARY and \
                router is Router.REPLICAS and self.serving.autoscaling is not None:
            raise ValueError(REPLICAS_AUTOSCALING_RULE)
        if self.rollout is not None and self.rollout.bakeWindow is not None and \
                router is Router.REPLICAS:
            raise ValueError(BAKE_ROUTER_RULE)
        if self.rollout is not None and router is Router.REPLICAS and \
                self.rollout.strategy in (Strategy.AB_TEST, Strategy.SHADOW):
            raise ValueError(ROUTE_STRATEGY_RULE)
        return self


__all__ = [
    "AnalysisMetric", "Autoscaling", "Duration", "EnvVar", "LegacyStage", "ModelDeploymentSpec",
    "ModelRef", "Registry", "Rollout", "Router", "Runtime", "SecretKeyRef", "Serving",
    "Strategy", "Traffic",
]
