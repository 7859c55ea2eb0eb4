"""The Kubernetes deployment (issue 15, point 2), checked as far as a machine without a cluster allows.

docs/kubernetes/dagster.yaml loads as a Dagster instance whose run launcher is dagster-k8s's K8sRunLauncher with
its config validated by dagster-k8s, storage in a real PostgreSQL database; docs/kubernetes/values.yaml uses only
keys of the dagster/dagster chart, in the shape the chart's values.schema.json gives them; both run queues keep
the limits of the repository's dagster.yaml. Nothing here talks to Kubernetes, runs helm or builds an image.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster_k8s import K8sRunLauncher

from cert_loader_tests.dagster_support import sqlalchemy_url

REPO = Path(__file__).resolve().parents[1]
K8S_DOCS = REPO / "docs" / "kubernetes"
SECRET = "cert-loader-env"
NAMESPACE = "cert-loader"

# A kubeconfig that loads but names no reachable cluster: K8sRunLauncher.__init__ calls
# kubernetes.config.load_kube_config(kubeconfig_file) when load_incluster_config is false and builds API
# clients, without any request (dagster_k8s/launcher.py, utils.load_kubernetes_config in dagster-k8s 0.29.27).
DUMMY_KUBECONFIG = {
    "apiVersion": "v1", "kind": "Config", "current-context": "dummy",
    "clusters": [{"name": "dummy", "cluster": {"server": "https://127.0.0.1:9"}}],
    "users": [{"name": "dummy", "user": {"token": "not-a-token"}}],
    "contexts": [{"name": "dummy", "context": {"cluster": "dummy", "user": "dummy", "namespace": NAMESPACE}}],
}


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def pg_url(make_database) -> str:
    """A database of its own for the instance's tables (dropped with this run's databases by make_database)."""
    return sqlalchemy_url(make_database("k8s_instance", mark=False))


@pytest.fixture
def k8s_env(pg_url, tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("DAGSTER_PG_URL", pg_url)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    return tmp_path


def test_instance_config_loads_with_postgres_storage(k8s_env) -> None:
    """The file as shipped: dagster validates it, builds the storages and the queue, and reaches PostgreSQL."""
    with dg.DagsterInstance.from_config(str(K8S_DOCS)) as instance:
        assert instance.get_runs() == []  # the run storage's tables exist in the database of DAGSTER_PG_URL
        assert type(instance.event_log_storage).__name__ == "PooledPostgresEventLogStorage"
        assert isinstance(instance.run_coordinator, dg.QueuedRunCoordinator)
        launcher = instance.get_ref().run_launcher_data
        assert (launcher.module_name, launcher.class_name) == ("dagster_k8s", "K8sRunLauncher")


def test_run_launcher_is_a_validated_k8s_run_launcher(k8s_env) -> None:
    """The same file with the kubeconfig of a dummy cluster (no service-account token here): the launcher exists."""
    config = _load(K8S_DOCS / "dagster.yaml")
    kubeconfig = k8s_env / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(DUMMY_KUBECONFIG))
    config["run_launcher"]["config"].update(load_incluster_config=False, kubeconfig_file=str(kubeconfig))
    (k8s_env / "dagster.yaml").write_text(yaml.safe_dump(config))
    with dg.DagsterInstance.from_config(str(k8s_env)) as instance:
        launcher = instance.run_launcher
        assert isinstance(launcher, K8sRunLauncher)
        assert launcher.job_namespace == NAMESPACE
        assert launcher.env_secrets == [SECRET]
        assert launcher.image_pull_policy == "IfNotPresent"
        assert launcher.instance_config_map == "cert-loader-instance"
        assert launcher.dagster_home == str(k8s_env)
        assert launcher.resources["limits"]["memory"] == "8Gi"


def test_instance_config_with_a_bad_launcher_key_is_refused(k8s_env) -> None:
    """The validation is real: dagster-k8s's config schema refuses a key it does not know."""
    config = _load(K8S_DOCS / "dagster.yaml")
    config["run_launcher"]["config"]["envSecrets"] = [SECRET]  # the chart's spelling, not the launcher's
    (k8s_env / "dagster.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(dg.DagsterInvalidConfigError, match="envSecrets"):
        with dg.DagsterInstance.from_config(str(k8s_env)) as instance:
            instance.run_launcher  # noqa: B018 - building it is the check


# The keys docs/kubernetes/values.yaml may use, level by level, as the chart's values.schema.json defines them
# (dagster-io/dagster, helm/dagster/values.schema.json at commit bdb8547fab497826eeec292bc160b549a0a329ef,
# a chart with dagsterWebserver, codeServerArgs and queuedRunCoordinator.dequeueNumWorkers). Each dict lists
# every property of its schema object, so a misspelt key fails; ANY marks a value not checked further.
# Hand-written from that schema, not a copy: helm itself validates the merged values against the real one.
ANY = object()
PULL_POLICY = {"Always", "IfNotPresent", "Never"}
IMAGE = {"repository": str, "tag": (str, int), "pullPolicy": PULL_POLICY}
SECRET_REFS = [{"name": str}]
TAG_LIMIT = {"key": str, "value": (str, {"applyLimitPerUniqueValue": bool}), "limit": int}
USER_DEPLOYMENT = dict.fromkeys(
    ["codeServerArgs", "deploymentNamespace", "env", "envConfigMaps", "annotations", "nodeSelector", "affinity",
     "tolerations", "podSecurityContext", "securityContext", "resources", "livenessProbe", "readinessProbe",
     "startupProbe", "labels", "volumeMounts", "volumes", "schedulerName", "initContainers",
     "sidecarContainers"], ANY) | {
    "name": str, "image": IMAGE, "dagsterApiGrpcArgs": [str], "port": int, "envSecrets": SECRET_REFS,
    "includeConfigInLaunchedRuns": {"enabled": bool}}
K8S_RUN_LAUNCHER = dict.fromkeys(
    ["image", "kubeconfigFile", "envConfigMaps", "envVars", "volumeMounts", "volumes", "labels",
     "failPodOnRunFailure", "schedulerName", "securityContext", "runK8sConfig"], ANY) | {
    "imagePullPolicy": PULL_POLICY, "jobNamespace": str, "loadInclusterConfig": bool, "envSecrets": SECRET_REFS,
    "resources": ANY}
QUEUED_RUN_COORDINATOR = dict.fromkeys(
    ["dequeueIntervalSeconds", "dequeueNumWorkers", "dequeueUseThreads", "blockOpConcurrencyLimitedRuns"], ANY) | {
    "maxConcurrentRuns": int, "tagConcurrencyLimits": [TAG_LIMIT]}
DAEMON = dict.fromkeys(
    ["image", "heartbeatTolerance", "env", "envConfigMaps", "envSecrets", "deploymentLabels", "labels",
     "nodeSelector", "affinity", "tolerations", "podSecurityContext", "securityContext", "resources",
     "livenessProbe", "readinessProbe", "startupProbe", "annotations", "runMonitoring", "runRetries", "sensors",
     "schedules", "schedulerName", "volumeMounts", "volumes", "initContainerResources"], ANY) | {
    "enabled": bool,
    "runCoordinator": {"enabled": bool, "type": {"QueuedRunCoordinator", "CustomRunCoordinator"},
                       "config": {"queuedRunCoordinator": QUEUED_RUN_COORDINATOR, "customRunCoordinator": ANY}}}
CHART_VALUES = dict.fromkeys(
    ["dagsterWebserver", "generateCeleryConfigSecret", "rabbitmq", "redis", "flower", "ingress", "imagePullSecrets",
     "computeLogManager", "scheduler", "busybox", "migrate", "serviceAccount", "retention",
     "additionalInstanceConfig"], ANY) | {
    "dagster-user-deployments": {"enabled": bool, "enableSubchart": bool, "imagePullSecrets": ANY,
                                 "deployments": [USER_DEPLOYMENT]},
    "runLauncher": {"type": {"CeleryK8sRunLauncher", "K8sRunLauncher", "CustomRunLauncher"},
                    "config": {"celeryK8sRunLauncher": ANY, "k8sRunLauncher": K8S_RUN_LAUNCHER,
                               "customRunLauncher": ANY}},
    "postgresql": dict.fromkeys(["image", "postgresqlPassword", "postgresqlParams", "postgresqlScheme"], ANY) | {
        "enabled": bool, "postgresqlHost": str, "postgresqlUsername": str, "postgresqlDatabase": str,
        "service": {"port": int}},
    "generatePostgresqlPasswordSecret": bool,
    "global": {"postgresqlSecretName": str, "dagsterHome": str, "serviceAccountName": str,
               "celeryConfigSecretName": str},
    "dagsterDaemon": DAEMON,
    "pythonLogs": {"pythonLogLevel": {"CRITICAL", "FATAL", "ERROR", "WARN", "WARNING", "INFO", "DEBUG", "NOTSET"},
                   "managedPythonLoggers": [str], "dagsterHandlerConfig": ANY},
    "telemetry": {"enabled": bool},
}


def _mismatches(value, shape, where: str) -> list[str]:
    """Where ``value`` leaves ``shape``: unknown keys, wrong types, values outside an enumeration."""
    if shape is ANY:
        return []
    if isinstance(shape, tuple):  # any one of the alternatives
        found = [_mismatches(value, alternative, where) for alternative in shape]
        return [] if any(not f for f in found) else [f"{where}: fits none of {shape}"]
    if isinstance(shape, set):
        return [] if value in shape else [f"{where}: {value!r} not one of {sorted(shape)}"]
    if isinstance(shape, list):
        if not isinstance(value, list):
            return [f"{where}: not a list"]
        return [m for i, item in enumerate(value) for m in _mismatches(item, shape[0], f"{where}[{i}]")]
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            return [f"{where}: not a mapping"]
        unknown = [f"{where}.{key}: not a key of the chart" for key in value if key not in shape]
        return unknown + [m for key, item in value.items() if key in shape
                          for m in _mismatches(item, shape[key], f"{where}.{key}")]
    ok = isinstance(value, shape) and not (shape is int and isinstance(value, bool))
    return [] if ok else [f"{where}: {value!r} is not {shape.__name__}"]


def test_helm_values_use_the_charts_keys() -> None:
    values = _load(K8S_DOCS / "values.yaml")
    assert _mismatches(values, CHART_VALUES, "values") == []
    assert _mismatches({"runLauncher": {"typo": 1}}, CHART_VALUES, "v") == ["v.runLauncher.typo: not a key of the chart"]


def test_helm_values_wire_the_k8s_launcher_secrets_and_external_postgres() -> None:
    """What the chart needs for this deployment, beyond spelling: the rules of its templates and schema."""
    values = _load(K8S_DOCS / "values.yaml")
    launcher = values["runLauncher"]
    assert launcher["type"] == "K8sRunLauncher" and "k8sRunLauncher" in launcher["config"]  # the schema's if/then
    assert launcher["config"]["k8sRunLauncher"]["envSecrets"] == [{"name": SECRET}]
    assert launcher["config"]["k8sRunLauncher"]["jobNamespace"] == NAMESPACE
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert deployment["envSecrets"] == [{"name": SECRET}]
    assert deployment["dagsterApiGrpcArgs"] == ["--module-name", "cert_loader.definitions"]
    # An external PostgreSQL whose password comes from an existing Secret, not one the chart generates.
    assert values["postgresql"]["enabled"] is False and values["postgresql"]["postgresqlHost"]
    assert values["generatePostgresqlPasswordSecret"] is False and values["global"]["postgresqlSecretName"]
    assert "postgresqlPassword" not in values["postgresql"]
    # The instance config for a self-mounted instance uses the same Secret and namespace.
    k8s_launcher = _load(K8S_DOCS / "dagster.yaml")["run_launcher"]["config"]
    assert (k8s_launcher["env_secrets"], k8s_launcher["job_namespace"]) == ([SECRET], NAMESPACE)


def _main_queue() -> dict:
    return _load(REPO / "dagster.yaml")["concurrency"]["runs"]


def test_run_queue_limits_match_the_main_instance() -> None:
    main = _main_queue()
    stores = {limit["key"] for limit in main["tag_concurrency_limits"]}
    assert stores == {"dagster/partition"} | {f"cert_loader/server.{s}" for s in ("ids", "hcp1", "hcp2", "adb", "sp")}
    assert _load(K8S_DOCS / "dagster.yaml")["concurrency"] == _load(REPO / "dagster.yaml")["concurrency"]
    helm = _load(K8S_DOCS / "values.yaml")["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert helm["maxConcurrentRuns"] == main["max_concurrent_runs"]
    # The chart renders tag_concurrency_limits as `tagConcurrencyLimits | toYaml`: the same list, as written
    # (helm/dagster/templates/helpers/instance/_run-coordinator.tpl).
    assert helm["tagConcurrencyLimits"] == main["tag_concurrency_limits"]
