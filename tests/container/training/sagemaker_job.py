"""Run ``sagemaker_code/train.py`` as SageMaker's training toolkit runs it, on a temp ``/opt/ml``.

``JobTree`` lays out the tree the platform gives a container (``input/config/*.json``,
``input/data/<channel>`` linked to real folders, ``model/``, ``output/``); ``run_training``
starts the script in a child process from the code dir, with the toolkit's ``SM_*`` variables
(or only ``SAGEMAKER_BASE_DIR``) and the toolkit's ``--key value`` arguments.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
from demo.dataset import make_dataset  # noqa: E402  (the repository root is importable now)

CODE_DIR = REPO_ROOT / "sagemaker_code"
METRICS_LINE = (
    r"#metrics epoch=(\d+) train_loss=(\d+\.\d{4}) train_acc=(\d\.\d{4}) "
    r"valid_loss=(\d+\.\d{4}) valid_acc=(\d\.\d{4}) epoch_time=(\d+\.\d{2}) "
    r"images_per_sec=(\d+\.\d)"
)

# The tiny configuration most runs use, as the SDK sends it (JSON-encoded strings).
FAST_HYPERPARAMETERS = {
    "backbone": '"simplecnn"',
    "batch-size": "16",
    "image-size": "32",
    "lr": "0.003",
    "freeze": '"full"',
}


@dataclass
class JobTree:
    """A training container's ``/opt/ml`` under ``base``."""

    base: Path
    channels: dict[str, Path]
    hyperparameters: dict[str, str] = field(default_factory=dict)
    hosts: tuple[str, ...] = ("algo-1",)
    current_host: str = "algo-1"

    @property
    def config_dir(self) -> Path:
        return self.base / "input" / "config"

    @property
    def model_dir(self) -> Path:
        return self.base / "model"

    @property
    def output_dir(self) -> Path:
        return self.base / "output"

    def channel_dir(self, name: str) -> Path:
        return self.base / "input" / "data" / name

    def failure(self) -> str:
        return (self.output_dir / "failure").read_text()

    def write(self) -> JobTree:
        """Create the folders and the config files SageMaker writes; returns self."""
        for path in (self.config_dir, self.model_dir, self.output_dir / "data"):
            path.mkdir(parents=True, exist_ok=True)
        for name, source in self.channels.items():
            self.channel_dir(name).parent.mkdir(parents=True, exist_ok=True)
            self.channel_dir(name).symlink_to(source, target_is_directory=True)
        self._write_json("hyperparameters.json", self.hyperparameters)
        self._write_json(
            "inputdataconfig.json",
            {name: {"TrainingInputMode": "File"} for name in self.channels},
        )
        self._write_json(
            "resourceconfig.json",
            {"current_host": self.current_host, "hosts": list(self.hosts)},
        )
        return self

    def _write_json(self, name: str, document: dict) -> None:
        (self.config_dir / name).write_text(json.dumps(document))

    def add_config(self, name: str, document: dict) -> None:
        """Another file in input/config (debughookconfig.json, checkpointconfig.json)."""
        self._write_json(name, document)

    def toolkit_environment(self) -> dict[str, str]:
        """The ``SM_*`` variables the training toolkit exports for this tree."""
        decoded = {k: _decode(v) for k, v in self.hyperparameters.items()}
        env = {
            "SM_MODEL_DIR": str(self.model_dir),
            "SM_OUTPUT_DIR": str(self.output_dir),
            "SM_OUTPUT_DATA_DIR": str(self.output_dir / "data"),
            "SM_INPUT_CONFIG_DIR": str(self.config_dir),
            "SM_CHANNELS": json.dumps(sorted(self.channels)),
            "SM_HPS": json.dumps(decoded, sort_keys=True),
            "SM_HOSTS": json.dumps(list(self.hosts)),
            "SM_CURRENT_HOST": self.current_host,
            "SM_NUM_GPUS": "0",
            "SM_NUM_CPUS": "1",
        }
        for name in self.channels:
            env[f"SM_CHANNEL_{name.upper()}"] = str(self.channel_dir(name))
        return env


@dataclass(frozen=True)
class FinishedJob:
    """A training run that exited: its tree, its process result and its extra output dirs."""

    tree: JobTree
    result: subprocess.CompletedProcess
    tensors: Path
    checkpoints: Path


def hook_config(tensors: Path) -> dict:
    """debughookconfig.json for the rules the DAG asks for, saving often enough to see."""
    every_step = {"save_interval": "1"}
    return {
        "LocalPath": str(tensors),
        "HookParameters": {"train.save_interval": "2", "eval.save_interval": "1"},
        "CollectionConfigurations": [
            {"CollectionName": "losses", "CollectionParameters": every_step},
            {"CollectionName": "gradients", "CollectionParameters": every_step},
            {
                "CollectionName": "relu_input",
                "CollectionParameters": {"include_regex": ".*relu_input", **every_step},
            },
        ],
    }


def make_small_dataset(root: Path) -> Path:
    """3 classes, 12/6/6 pictures per class in train/valid/test, 40 px JPEGs and PNGs."""
    return make_dataset(
        root, num_classes=3, images_per_class={"train": 12, "valid": 6, "test": 6}, image_size=40
    )


def _decode(value: str) -> object:
    try:
        return json.loads(value)
    except ValueError:
        return value


def toolkit_arguments(hyperparameters: dict[str, str]) -> list[str]:
    """``--key value`` pairs as the toolkit builds them: sorted, JSON-decoded, ``str()``-ed."""
    args = []
    for key in sorted(hyperparameters):
        args += [f"--{key}", str(_decode(hyperparameters[key]))]
    return args


def run_training(
    tree: JobTree,
    *,
    with_arguments: bool = True,
    with_sm_variables: bool = True,
    extra_env: dict[str, str] | None = None,
    timeout: float = 240,
) -> subprocess.CompletedProcess:
    """Run train.py to completion; stdout and stderr are captured as text."""
    process = start_training(tree, with_arguments, with_sm_variables, extra_env)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def start_training(
    tree: JobTree,
    with_arguments: bool = True,
    with_sm_variables: bool = True,
    extra_env: dict[str, str] | None = None,
) -> subprocess.Popen:
    """Start train.py without waiting; stdout and stderr are pipes (text)."""
    command = [sys.executable, "train.py"]
    if with_arguments:
        command += toolkit_arguments(tree.hyperparameters)
    return subprocess.Popen(
        command,
        cwd=CODE_DIR,
        env=_environment(tree, with_sm_variables, extra_env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _environment(
    tree: JobTree, with_sm_variables: bool, extra_env: dict[str, str] | None
) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SM_", "SAGEMAKER_", "SMDEBUG_"))
    }
    # Small and quiet: tests share two cores with the rest of the suite.
    env.update({"OMP_NUM_THREADS": "1", "SAGEMAKER_BASE_DIR": str(tree.base)})
    if with_sm_variables:
        env.update(tree.toolkit_environment())
    env.update(extra_env or {})
    return env
