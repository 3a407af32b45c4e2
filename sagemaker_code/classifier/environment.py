"""The SageMaker training contract, read once into one object.

SageMaker's training toolkit exports ``SM_*`` variables; a bare container (or a local run)
may only have the ``/opt/ml`` tree. ``TrainingEnvironment.from_environ()`` reads the variables
first and falls back to the files and to the documented defaults, so the training script
works in both cases:

===================  ===============================  ===================================
attribute            variable                         fallback
===================  ===============================  ===================================
model_dir            SM_MODEL_DIR                     <base>/model
output_dir           SM_OUTPUT_DIR                    <base>/output
output_data_dir      SM_OUTPUT_DATA_DIR               <base>/output/data
input_config_dir     SM_INPUT_CONFIG_DIR              <base>/input/config
channels             SM_CHANNELS, SM_CHANNEL_<NAME>   inputdataconfig.json, else the
                                                      folders of <base>/input/data
hosts, current_host  SM_HOSTS, SM_CURRENT_HOST        resourceconfig.json, else algo-1
num_gpus, num_cpus   SM_NUM_GPUS, SM_NUM_CPUS         torch.cuda.device_count(), CPUs
hyperparameters      SM_HPS                           hyperparameters.json, JSON-decoded
checkpoint_dir       (none)                           checkpointconfig.json ``LocalPath``
===================  ===============================  ===================================

``<base>`` is ``SAGEMAKER_BASE_DIR`` or ``/opt/ml``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

DEFAULT_BASE_DIR = "/opt/ml"
DEFAULT_CHECKPOINT_DIR = "/opt/ml/checkpoints"
# Hyperparameters the platform adds for itself; the toolkit never passes them to the script.
PLATFORM_HYPERPARAMETER_PREFIXES = ("sagemaker_", "_tuning_objective_metric")


def decode_hyperparameter(value: Any) -> Any:
    """JSON-decode a wire value as the toolkit does (``'"adam"'`` -> ``adam``); else keep it."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def user_hyperparameters(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Decoded hyperparameters without the platform's own (``sagemaker_*``) keys."""
    return {
        name: decode_hyperparameter(value)
        for name, value in raw.items()
        if not name.startswith(PLATFORM_HYPERPARAMETER_PREFIXES)
    }


@dataclass(frozen=True)
class TrainingEnvironment:
    """Where a training job finds its inputs and puts its outputs, and the cluster it runs on."""

    model_dir: Path
    output_dir: Path
    output_data_dir: Path
    input_config_dir: Path
    channels: dict[str, Path]
    hosts: list[str]
    current_host: str
    num_gpus: int
    num_cpus: int
    hyperparameters: dict[str, Any]
    checkpoint_dir: Path | None

    @property
    def is_distributed(self) -> bool:
        return len(self.hosts) > 1

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> TrainingEnvironment:
        """Read the environment of the current process (or ``environ``), with the defaults."""
        env = os.environ if environ is None else environ
        base = Path(env.get("SAGEMAKER_BASE_DIR", DEFAULT_BASE_DIR))
        config_dir = Path(env.get("SM_INPUT_CONFIG_DIR", base / "input" / "config"))
        output_dir = Path(env.get("SM_OUTPUT_DIR", base / "output"))
        resources = _read_json(config_dir / "resourceconfig.json")
        hosts = _json_list(env.get("SM_HOSTS")) or resources.get("hosts") or ["algo-1"]
        return cls(
            model_dir=Path(env.get("SM_MODEL_DIR", base / "model")),
            output_dir=output_dir,
            output_data_dir=Path(env.get("SM_OUTPUT_DATA_DIR", output_dir / "data")),
            input_config_dir=config_dir,
            channels=_channels(env, base / "input" / "data", config_dir),
            hosts=sorted(hosts),
            current_host=env.get("SM_CURRENT_HOST") or resources.get("current_host") or hosts[0],
            num_gpus=int(env.get("SM_NUM_GPUS") or torch.cuda.device_count()),
            num_cpus=int(env.get("SM_NUM_CPUS") or os.cpu_count() or 1),
            hyperparameters=_hyperparameters(env, config_dir),
            checkpoint_dir=_checkpoint_dir(config_dir),
        )


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _json_list(text: str | None) -> list[str]:
    return json.loads(text) if text else []


def _channels(env: Mapping[str, str], data_dir: Path, config_dir: Path) -> dict[str, Path]:
    """Channel name -> local folder, from SM_CHANNELS, inputdataconfig.json or the data dir."""
    names = _json_list(env.get("SM_CHANNELS"))
    if not names:
        names = list(_read_json(config_dir / "inputdataconfig.json"))
    if not names and data_dir.is_dir():
        names = [path.name for path in data_dir.iterdir() if path.is_dir()]
    return {
        name: Path(env.get(f"SM_CHANNEL_{name.upper()}", data_dir / name)) for name in sorted(names)
    }


def _hyperparameters(env: Mapping[str, str], config_dir: Path) -> dict[str, Any]:
    if env.get("SM_HPS"):
        return user_hyperparameters(json.loads(env["SM_HPS"]))
    return user_hyperparameters(_read_json(config_dir / "hyperparameters.json"))


def _checkpoint_dir(config_dir: Path) -> Path | None:
    """SageMaker writes checkpointconfig.json only when the job has a CheckpointConfig."""
    config_file = config_dir / "checkpointconfig.json"
    if not config_file.is_file():
        return None
    return Path(_read_json(config_file).get("LocalPath") or DEFAULT_CHECKPOINT_DIR)
