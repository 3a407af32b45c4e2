"""docker-compose.yaml cannot run here (no Docker engine), so these tests keep it from rotting.

The schema is the Compose Specification's JSON schema (compose_spec.json, Apache-2.0, as shipped by
docker-compose 1.29.2); the rest checks what this project relies on.
"""

import json
import re
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import jsonschema
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yaml").read_text())
SCHEMA = json.loads((Path(__file__).parent / "compose_spec.json").read_text())
AIRFLOW_SERVICES = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
}


def test_file_satisfies_the_compose_specification():
    jsonschema.validate(COMPOSE, SCHEMA)


def test_has_the_official_airflow_3_services_and_the_local_runtime():
    services = COMPOSE["services"]
    assert set(services) == {"postgres", "airflow-init", "local-sagemaker", *AIRFLOW_SERVICES}
    for name, command in AIRFLOW_SERVICES.items():
        assert services[name]["command"] == command
        assert services[name]["depends_on"]["airflow-init"]["condition"] == (
            "service_completed_successfully"
        )
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_every_dependency_names_a_defined_service():
    services = COMPOSE["services"]
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on undefined service {dependency}"


def test_airflow_uses_postgres_and_the_local_executor():
    env = COMPOSE["services"]["airflow-scheduler"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
    assert "@postgres/" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]


@pytest.mark.parametrize("folder", ["dags", "plugins", "include", "sagemaker_code"])
def test_project_folders_are_mounted_into_every_airflow_service(folder):
    assert (REPO_ROOT / folder).is_dir(), f"compose mounts ./{folder}, which does not exist"
    for name in AIRFLOW_SERVICES:
        sources = [volume.split(":")[0] for volume in COMPOSE["services"][name]["volumes"]]
        assert f"./{folder}" in sources, f"{name} does not mount ./{folder}"


def test_plugins_find_include_and_sagemaker_code_beside_them():
    """plugins/sagemaker_lifecycle locates include/ and sagemaker_code/ as siblings of plugins/."""
    for name in AIRFLOW_SERVICES:
        targets = {
            volume.split(":")[0]: volume.split(":")[1]
            for volume in COMPOSE["services"][name]["volumes"]
        }
        plugins_parent = Path(targets["./plugins"]).parent
        for folder in ("include", "sagemaker_code"):
            assert Path(targets[f"./{folder}"]) == plugins_parent / folder


def test_default_connection_points_at_the_runtime_service():
    env = COMPOSE["services"]["airflow-scheduler"]["environment"]
    match = re.fullmatch(r"\$\{AIRFLOW_CONN_AWS_DEFAULT:-(.+)\}", env["AIRFLOW_CONN_AWS_DEFAULT"])
    assert match, "the connection must be overridable from .env for real AWS"
    extras = parse_qs(urlparse(match.group(1)).query)
    runtime = urlparse(extras["endpoint_url"][0])
    assert runtime.hostname == "local-sagemaker"
    published = COMPOSE["services"]["local-sagemaker"]["ports"]
    assert published == [f"127.0.0.1:{runtime.port}:{runtime.port}"], "publish on loopback only"


def test_ports_are_published_on_loopback_only():
    for name, service in COMPOSE["services"].items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


@pytest.mark.parametrize("service", ["airflow-apiserver", "local-sagemaker"])
def test_built_images_copy_files_that_exist(service):
    build = COMPOSE["services"][service]["build"]
    dockerfile = REPO_ROOT / build["context"] / build["dockerfile"]
    for line in dockerfile.read_text().splitlines():
        if line.startswith("COPY "):
            source = next(word for word in line.split()[1:] if not word.startswith("--"))
            assert (REPO_ROOT / source).exists(), f"{dockerfile.name} copies missing {source}"


def test_runtime_image_runs_jobs_in_the_container_environment():
    dockerfile = (REPO_ROOT / "docker" / "local-sagemaker.Dockerfile").read_text()
    assert "requirements.py runtime" in dockerfile
    assert "requirements.py container" in dockerfile
    assert "LOCAL_SAGEMAKER_CONTAINER_PYTHON=/opt/venvs/container/bin/python" in dockerfile
