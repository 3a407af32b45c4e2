"""Runtime configuration: where the runtime listens, keeps its state, which Python runs an image.

Everything has a default that works from a checkout of this repository; environment variables
override the defaults so the Makefile, tests and docker-compose can point the runtime elsewhere.
"""

import fnmatch
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from local_sagemaker.credentials import KeyPair
from local_sagemaker.gate import RequestLimits

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PORT = 4570
DEFAULT_CONTAINER_PYTHON = REPO_ROOT / ".venvs" / "container" / "bin" / "python"
# The project's rule engine (sagemaker_code/, the code that also runs as a rule processing job).
DEFAULT_RULE_EVALUATOR = REPO_ROOT / "sagemaker_code" / "evaluate_rules.py"


def _default_container_python() -> str:
    return os.environ.get("LOCAL_SAGEMAKER_CONTAINER_PYTHON") or str(DEFAULT_CONTAINER_PYTHON)


def _default_rule_evaluator() -> Path:
    return Path(os.environ.get("LOCAL_SAGEMAKER_RULE_EVALUATOR") or DEFAULT_RULE_EVALUATOR)


def _default_image_pythons() -> dict[str, str]:
    """``LOCAL_SAGEMAKER_IMAGE_PYTHONS`` is a JSON object ``{"<image glob>": "<python path>"}``."""
    raw = os.environ.get("LOCAL_SAGEMAKER_IMAGE_PYTHONS")
    if not raw:
        return {}
    mapping = json.loads(raw)
    if not isinstance(mapping, dict):
        raise ValueError(
            "LOCAL_SAGEMAKER_IMAGE_PYTHONS must be a JSON object of image glob -> python path"
        )
    return {str(k): str(v) for k, v in mapping.items()}


def _positive_int_env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{name} must be a positive whole number, not {raw!r}")
    return int(raw)


@dataclass
class RuntimeConfig:
    """Settings shared by every part of the runtime (available to backends as ``self.config``)."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    data_dir: Path = field(default_factory=lambda: Path(".local_sagemaker"))
    region: str = "us-east-1"
    account: str = "123456789012"
    container_python: str = field(default_factory=_default_container_python)
    # Image globs (fnmatch) -> Python interpreter; the first match wins, else container_python.
    image_pythons: dict[str, str] = field(default_factory=_default_image_pythons)
    # The script each Debugger/profiler rule runs as (writes <output dir>/result.json).
    rule_evaluator: Path = field(default_factory=_default_rule_evaluator)
    # Seconds between SIGTERM and SIGKILL when a job is stopped (SageMaker gives 120 s).
    stop_grace_seconds: float = 10.0
    # How often running jobs' checkpoint folders are compared and synced to S3.
    checkpoint_sync_seconds: float = 2.0
    # The one key pair requests must be signed with; None: the data dir's own (credentials.py).
    key_pair: KeyPair | None = None
    # Host header names served besides loopback ones (a compose service name, say).
    allowed_hosts: tuple[str, ...] = ()
    limits: RequestLimits = field(
        default_factory=lambda: RequestLimits(
            socket_timeout_seconds=_positive_int_env("LOCAL_SAGEMAKER_REQUEST_TIMEOUT_SECONDS", 30)
        )
    )
    # Caps on what one machine is asked to run: hosts per job, and jobs running user code at once.
    max_instance_count: int = field(
        default_factory=lambda: _positive_int_env("LOCAL_SAGEMAKER_MAX_INSTANCE_COUNT", 4)
    )
    max_concurrent_jobs: int = field(
        default_factory=lambda: _positive_int_env("LOCAL_SAGEMAKER_MAX_CONCURRENT_JOBS", 8)
    )
    # Memory (RSS, MiB) one instance of a multi-model endpoint may give its loaded models before
    # it unloads the least recently used (hosting/multi_model.py). 4096 holds about five of the
    # project's classifier model servers (each ~700 MiB RSS here, most of it torch).
    multi_model_memory_mb: int = field(
        default_factory=lambda: _positive_int_env("LOCAL_SAGEMAKER_MULTI_MODEL_MEMORY_MB", 4096)
    )

    def __post_init__(self):
        self.data_dir = Path(self.data_dir).resolve()

    def allowed_host_names(self) -> frozenset[str]:
        """Host names the gate lets in besides loopback: the given ones and a bound address."""
        names = {name.strip().lower() for name in self.allowed_hosts if name.strip()}
        if self.host not in ("0.0.0.0", "::", ""):
            names.add(self.host.lower())
        return frozenset(names)

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def python_for_image(self, image: str) -> str:
        """The interpreter that stands in for ``image`` (a training or inference image URI)."""
        for pattern, python in self.image_pythons.items():
            if fnmatch.fnmatchcase(image, pattern):
                return python
        return self.container_python

    def arn(self, resource_type: str, name: str) -> str:
        """A SageMaker ARN; like AWS, it embeds the lower-cased name (behaviour doc 4.1)."""
        return f"arn:aws:sagemaker:{self.region}:{self.account}:{resource_type}/{name.lower()}"
