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
from cryptography.fernet import Fernet

from devtools import compose_env

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


CELERY_SERVICES = {"redis": ["celery"], "airflow-worker": ["celery"], "flower": ["flower"]}


def test_has_the_official_airflow_3_services_and_the_local_runtime():
    services = COMPOSE["services"]
    assert set(services) == {
        "postgres", "airflow-init", "local-sagemaker", *AIRFLOW_SERVICES, *CELERY_SERVICES
    }  # fmt: skip
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


def test_airflow_uses_postgres_and_the_local_executor_unless_told_celery():
    env = COMPOSE["services"]["airflow-scheduler"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "${AIRFLOW_EXECUTOR:-LocalExecutor}"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
    assert "@postgres/" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]


def test_the_celery_profile_is_shaped_as_the_official_file():
    """Redis broker, Postgres result backend, workers running `celery worker` with the same image,
    mounts and environment as the scheduler; each only under its profile."""
    services = COMPOSE["services"]
    for name, profiles in CELERY_SERVICES.items():
        assert services[name]["profiles"] == profiles, name
    assert all("profiles" not in services[name] for name in AIRFLOW_SERVICES)
    env = COMPOSE["x-airflow-common"]["environment"]
    broker = urlparse(env["AIRFLOW__CELERY__BROKER_URL"])
    assert (broker.scheme, broker.hostname, broker.port) == ("redis", "redis", 6379)
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://")
    assert "@postgres/" in env["AIRFLOW__CELERY__RESULT_BACKEND"]
    worker = services["airflow-worker"]
    assert worker["command"] == "celery worker"
    assert worker["volumes"] == services["airflow-scheduler"]["volumes"]
    assert worker["image"] == services["airflow-scheduler"]["image"]
    assert worker["environment"].items() >= env.items()
    assert worker["depends_on"]["redis"]["condition"] == "service_healthy"
    assert services["flower"]["command"] == "celery flower"
    header = (REPO_ROOT / "docker-compose.yaml").read_text().split("x-airflow-common")[0]
    assert "AIRFLOW_EXECUTOR=CeleryExecutor docker compose --profile celery up" in header


@pytest.mark.parametrize("folder", ["dags", "plugins", "include", "sagemaker_code"])
def test_project_folders_are_mounted_into_every_airflow_service(folder):
    assert (REPO_ROOT / folder).is_dir(), f"compose mounts ./{folder}, which does not exist"
    for name in (*AIRFLOW_SERVICES, "airflow-worker"):
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


def _required(value: str) -> str:
    """The variable a `${NAME:?message}` entry requires (compose refuses to start without it)."""
    match = re.fullmatch(r"\$\{(\w+):\?[^}]+\}", value)
    assert match, f"{value!r} must be required from .env, with no default"
    return match.group(1)


@pytest.fixture
def env_file(tmp_path) -> dict[str, str]:
    """What `make compose-env` writes into a fresh .env."""
    target = tmp_path / ".env"
    compose_env.complete(target)
    return compose_env.present_values(target.read_text())


def test_compose_refuses_default_secrets_and_the_make_target_generates_them(env_file):
    env = COMPOSE["x-airflow-common"]["environment"]
    secrets = [_required(env[name]) for name in
               ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__CORE__FERNET_KEY")]  # fmt: skip
    assert set(secrets) <= set(env_file)
    Fernet(env_file["AIRFLOW_FERNET_KEY"].encode())  # a valid Fernet key
    assert len(env_file["AIRFLOW_JWT_SECRET"]) >= 32
    assert ".env" in (REPO_ROOT / ".gitignore").read_text().splitlines()
    assert "compose-env:" in (REPO_ROOT / "Makefile").read_text()


def test_generated_secrets_differ_per_installation_and_a_second_run_keeps_them(tmp_path):
    first, second = tmp_path / "a.env", tmp_path / "b.env"
    first.write_text("AIRFLOW_VAR_SAGEMAKER_BUCKET=mine\n")
    compose_env.complete(first)
    compose_env.complete(second)
    kept = first.read_text()
    assert compose_env.complete(first) == [] and first.read_text() == kept
    assert "AIRFLOW_VAR_SAGEMAKER_BUCKET=mine" in kept
    a, b = (compose_env.present_values(f.read_text()) for f in (first, second))
    assert all(a[name] != b[name] for name in compose_env.GENERATED)


def test_the_runtime_and_the_connection_share_the_generated_key_pair(env_file):
    runtime = COMPOSE["services"]["local-sagemaker"]["environment"]
    key_id = _required(runtime["LOCAL_SAGEMAKER_ACCESS_KEY_ID"])
    secret = _required(runtime["LOCAL_SAGEMAKER_SECRET_ACCESS_KEY"])
    assert runtime["LOCAL_SAGEMAKER_ALLOWED_HOSTS"] == "local-sagemaker"
    env = COMPOSE["x-airflow-common"]["environment"]
    connection = urlparse(env_file[_required(env["AIRFLOW_CONN_AWS_DEFAULT"])])
    assert (connection.username, connection.password) == (env_file[key_id], env_file[secret])
    runtime_url = urlparse(parse_qs(connection.query)["endpoint_url"][0])
    assert runtime_url.hostname == "local-sagemaker"
    published = COMPOSE["services"]["local-sagemaker"]["ports"]
    assert published == [f"127.0.0.1:{runtime_url.port}:{runtime_url.port}"], "loopback only"


def test_the_aws_path_passes_variables_and_credentials_from_env_to_every_airflow_service():
    """.env fills `${}` only; AIRFLOW_VAR_* and AWS_* reach the containers through env_file."""
    for name in (*AIRFLOW_SERVICES, "airflow-init", "airflow-worker"):
        assert COMPOSE["services"][name]["env_file"] == ".env", name
    header = (REPO_ROOT / "docker-compose.yaml").read_text().split("x-airflow-common")[0]
    documented = (
        "AIRFLOW_VAR_SAGEMAKER_ROLE_ARN",
        "AIRFLOW_VAR_SAGEMAKER_BUCKET",
        "AWS_ACCESS_KEY_ID",
        "PIPELINE_PROFILE=",
        "--scale local-sagemaker=0",
    )
    for line in documented:
        assert line in header


def test_offline_compose_runs_the_local_profile_on_the_mounted_demo_dataset():
    env = COMPOSE["x-airflow-common"]["environment"]
    match = re.fullmatch(r"\$\{PIPELINE_PROFILE-(.+)\}", env["PIPELINE_PROFILE"])
    assert match, "AWS users must be able to empty PIPELINE_PROFILE from .env"
    profile = Path(match.group(1)).relative_to("/opt/airflow")
    assert (REPO_ROOT / profile).is_file()
    local = yaml.safe_load((REPO_ROOT / profile).read_text())
    assert local["hyperparameters"]["backbone"] == "simplecnn"  # no ImageNet download
    mounts = dict(v.split(":")[:2] for v in COMPOSE["x-airflow-common"]["volumes"])
    assert mounts["./.demo"] == f"/opt/airflow/{Path(local['dataset']['source']).parts[0]}"


def test_the_comment_says_how_the_generated_admin_password_is_found():
    text = (REPO_ROOT / "docker-compose.yaml").read_text()
    assert "admin / admin" not in text
    assert "simple_auth_manager_passwords.json.generated" in text
    env = COMPOSE["x-airflow-common"]["environment"]
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "admin:admin"  # user:role


def test_the_runtime_container_runs_as_a_non_root_user():
    dockerfile = (REPO_ROOT / "docker" / "local-sagemaker.Dockerfile").read_text()
    users = re.findall(r"^USER (\S+)", dockerfile, re.MULTILINE)
    assert users and users[-1] not in ("root", "0"), "the runtime must not run jobs as root"
    assert "user" not in COMPOSE["services"]["local-sagemaker"], "compose must not override it"


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
    assert "requirements.py container container-libraries" in dockerfile
    assert "LOCAL_SAGEMAKER_CONTAINER_PYTHON=/opt/venvs/container/bin/python" in dockerfile
