"""deploy/ agrees with the code: every file parses; every `BATCH_EXPORTS_*` variable the manifests set is a setting;
images, commands, ports and probes are the ones the processes have; nothing is published beyond loopback; the
search attributes registered are the contract's; the worker's pods outlive its drain. (No Docker engine or
cluster here: the manifests are checked by reading them.)"""

import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import yaml

from api.routes import health
from batch_exports.settings import Settings
from contracts.search_attributes import SEARCH_ATTRIBUTES

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
K8S_FILE = DEPLOY / "k8s" / "batch-exports.yaml"
K8S = [doc for doc in yaml.safe_load_all(K8S_FILE.read_text()) if doc]
DEFAULTS = Settings()
DEFAULT_SHUTDOWN_GRACE_SECONDS = 25
"""The worker's drain on SIGTERM, where the settings do not say (BATCH_EXPORTS_SHUTDOWN_GRACE_SECONDS)."""


def k8s(kind: str, name: str) -> dict[str, Any]:
    (found,) = [doc for doc in K8S if doc["kind"] == kind and doc["metadata"]["name"] == name]
    return found


def container(deployment: str) -> dict[str, Any]:
    (found,) = k8s("Deployment", deployment)["spec"]["template"]["spec"]["containers"]
    return found


def setting_name(variable: str) -> str:
    return variable.removeprefix("BATCH_EXPORTS_").lower()


def test_every_file_parses() -> None:
    for path in DEPLOY.rglob("*"):
        if path.suffix in (".yaml", ".yml"):
            assert list(yaml.safe_load_all(path.read_text())), path
        elif path.suffix == ".json":
            assert json.loads(path.read_text()), path
    assert {doc["kind"] for doc in K8S} >= {"ConfigMap", "Job", "Deployment", "PodDisruptionBudget", "Service"}


def test_every_variable_the_manifests_set_is_a_setting() -> None:
    variables = {name for service in COMPOSE["services"].values() for name in service.get("environment") or {}}
    variables |= set(k8s("ConfigMap", "batch-exports")["data"])
    variables |= {env["name"] for doc in K8S if doc["kind"] == "Deployment" for env in container_envs(doc)}
    variables |= set(re.findall(r"--from-literal=(BATCH_EXPORTS_\w+)=", K8S_FILE.read_text()))
    ours = {name for name in variables if name.startswith("BATCH_EXPORTS_")}
    assert "BATCH_EXPORTS_DATABASE_URL" in ours and "BATCH_EXPORTS_ENCRYPTION_KEY" in ours
    assert sorted(name for name in ours if setting_name(name) not in Settings.model_fields) == []


def container_envs(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    return [env for c in deployment["spec"]["template"]["spec"]["containers"] for env in c.get("env", [])]


def test_images_and_commands_are_the_processes_that_exist() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert 'CMD ["python", "worker.py"]' in dockerfile
    commands = {
        "worker": ["python", "worker.py"],
        "api": ["python", "-m", "api"],
        "migrate": ["python", "-m", "entrypoints.migrate"],
    }
    for service, command in commands.items():
        assert COMPOSE["services"][service]["command"] == command
        assert COMPOSE["services"][service]["image"] == "batch-exports:latest"
        assert COMPOSE["services"][service]["build"]["dockerfile"] == "deploy/Dockerfile"
    assert container("batch-exports-worker")["command"] == commands["worker"]
    assert container("batch-exports-api")["command"] == commands["api"]
    (migrate,) = k8s("Job", "batch-exports-migrate")["spec"]["template"]["spec"]["containers"]
    assert migrate["command"] == commands["migrate"]
    for c in (container("batch-exports-worker"), container("batch-exports-api"), migrate):
        assert c["image"] == "batch-exports:latest"
    assert (ROOT / "worker.py").exists()
    for module in ("api", "entrypoints.migrate"):
        assert importlib.util.find_spec(module) is not None, module


def test_the_image_compiles_the_sources_the_workflow_sandbox_imports_for_every_run() -> None:
    """The sandbox imports workflows/run.py afresh per execution; from /app (not writable by the image's user)
    without bytecode, that is a compile per run."""
    lines = (DEPLOY / "Dockerfile").read_text().splitlines()
    compiled = next(i for i, line in enumerate(lines) if line.startswith("RUN ") and "compileall -q /app" in line)
    assert compiled < lines.index("USER app")
    assert lines.index("COPY workflows ./workflows") < compiled


def test_ports_and_probes_agree_with_the_code() -> None:
    api, worker = container("batch-exports-api"), container("batch-exports-worker")
    api_ports = {port["name"]: port["containerPort"] for port in api["ports"]}
    worker_ports = {port["name"]: port["containerPort"] for port in worker["ports"]}
    assert api_ports == {"http": DEFAULTS.api_port, "metrics": DEFAULTS.api_metrics_port}
    assert worker_ports == {"metrics": DEFAULTS.worker_metrics_port}
    assert (
        f"EXPOSE {DEFAULTS.api_port} {DEFAULTS.worker_metrics_port} {DEFAULTS.api_metrics_port}"
        in (DEPLOY / "Dockerfile").read_text()
    )
    # Probes name ports the container has; the gateway is ready when /_health (a route of the app) says so.
    health_paths = {path for _, path, _ in health.ROUTES}
    assert api["readinessProbe"]["httpGet"]["path"] in health_paths
    for c, ports in ((api, api_ports), (worker, worker_ports)):
        for probe in ("readinessProbe", "livenessProbe"):
            check = c[probe].get("httpGet") or c[probe]["tcpSocket"]
            assert check["port"] in ports, (c["name"], probe)
    assert worker["readinessProbe"]["httpGet"] == {"path": "/metrics", "port": "metrics"}
    # Prometheus finds them where they listen, in Kubernetes and in compose.
    for name, port in (("batch-exports-worker", DEFAULTS.worker_metrics_port),
                       ("batch-exports-api", DEFAULTS.api_metrics_port)):  # fmt: skip
        annotations = k8s("Deployment", name)["spec"]["template"]["metadata"]["annotations"]
        assert annotations == {"prometheus.io/scrape": "true", "prometheus.io/port": str(port)}
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "compose.yml").read_text())["scrape_configs"]
    assert {job["job_name"]: job["dns_sd_configs"][0]["port"] for job in scrape} == {
        "batch-exports-worker": DEFAULTS.worker_metrics_port,
        "batch-exports-api": DEFAULTS.api_metrics_port,
    }
    assert COMPOSE["services"]["worker"]["expose"] == [str(DEFAULTS.worker_metrics_port)]
    assert COMPOSE["services"]["api"]["expose"] == [str(DEFAULTS.api_metrics_port)]
    assert COMPOSE["services"]["api"]["ports"][0].endswith(f":{DEFAULTS.api_port}")
    # In a container the processes bind every interface, or nothing could reach them.
    for env in (COMPOSE["x-app"]["environment"], k8s("ConfigMap", "batch-exports")["data"]):
        assert env["BATCH_EXPORTS_API_HOST"] == env["BATCH_EXPORTS_METRICS_HOST"] == "0.0.0.0"


def test_compose_publishes_nothing_beyond_loopback() -> None:
    published = {name: service.get("ports", []) for name, service in COMPOSE["services"].items()}
    assert {name for name, ports in published.items() if ports} == {"temporal-ui", "api", "prometheus", "grafana"}
    for ports in published.values():
        for port in ports:
            assert port.startswith("${PUBLISH_ADDRESS:-127.0.0.1}:"), port
    assert "start-dev" not in json.dumps(COMPOSE)  # a real cluster, not the dev server
    assert COMPOSE["services"]["temporal"]["image"].startswith("temporalio/server:")
    assert COMPOSE["services"]["temporal"]["environment"]["DB"] == "postgres12"


def test_the_search_attributes_registered_are_the_contracts() -> None:
    script = (DEPLOY / "temporal" / "register.sh").read_text()
    registered = dict(re.findall(r"(\w+)=(Keyword|Int|Datetime|Text|Double|Bool|KeywordList)\b", script))
    expected = {key.name: key.indexed_value_type.name.title() for key in SEARCH_ATTRIBUTES}
    assert registered == expected
    # Kubernetes runs the same script (a ConfigMap cannot include a file from outside its manifest).
    assert k8s("ConfigMap", "batch-exports-temporal-admin")["data"]["register.sh"] == script
    (job,) = k8s("Job", "batch-exports-temporal-admin")["spec"]["template"]["spec"]["containers"]
    assert job["command"] == ["/bin/sh", "/deploy/register.sh"]
    assert COMPOSE["services"]["temporal-admin"]["entrypoint"] == ["/bin/sh", "/deploy/register.sh"]


def test_worker_pods_outlive_the_drain() -> None:
    grace = DEFAULTS.model_dump().get("shutdown_grace_seconds", DEFAULT_SHUTDOWN_GRACE_SECONDS)
    pod = k8s("Deployment", "batch-exports-worker")["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] >= grace + 10
    assert int(COMPOSE["services"]["worker"]["stop_grace_period"].removesuffix("s")) >= grace + 10
    for name in ("batch-exports-worker", "batch-exports-api"):
        budget = k8s("PodDisruptionBudget", name)
        assert budget["spec"]["selector"]["matchLabels"] == {"app": name}
        assert budget["spec"]["minAvailable"] < k8s("Deployment", name)["spec"]["replicas"]
    for name in ("batch-exports-worker", "batch-exports-api"):
        resources = container(name)["resources"]
        assert resources["requests"]["cpu"] and resources["requests"]["memory"] and resources["limits"]["memory"]


def test_autoscaling_and_the_helm_values_point_at_the_same_cluster() -> None:
    config = k8s("ConfigMap", "batch-exports")["data"]
    (scaled,) = yaml.safe_load_all((DEPLOY / "k8s" / "autoscaling" / "keda-worker.yaml").read_text())
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "temporal"
    assert trigger["metadata"]["taskQueue"] == config["BATCH_EXPORTS_TASK_QUEUE"] == DEFAULTS.task_queue
    assert trigger["metadata"]["endpoint"] == config["TEMPORAL_ADDRESS"]
    assert trigger["metadata"]["namespace"] == config["TEMPORAL_NAMESPACE"]
    assert scaled["spec"]["scaleTargetRef"]["name"] == "batch-exports-worker"
    values = yaml.safe_load((DEPLOY / "helm" / "temporal-values.yaml").read_text())
    persistence = values["server"]["config"]["persistence"]
    for store in ("default", "visibility"):
        assert persistence[store]["driver"] == "sql" and persistence[store]["sql"]["driver"] == "postgres12"
    assert not values["cassandra"]["enabled"] and not values["elasticsearch"]["enabled"]
