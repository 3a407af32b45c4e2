"""What the SageMaker training toolkit gives a script, reproduced: hyperparameter decoding, the
command line (behaviour doc 5.3), the ``SM_*`` environment (5.2) and the failure text (5.4).

Pure functions over a job description and a host tree, so they can be tested on their own.
"""

import json
import os
import shlex
import subprocess
from functools import cache
from pathlib import Path

from local_sagemaker.executor.workspace import HostTree

# Keys the toolkit consumes itself and never passes to the script (TT params.py).
RESERVED_HYPERPARAMETERS = {
    "sagemaker_program",
    "sagemaker_submit_directory",
    "sagemaker_enable_cloudwatch_metrics",
    "sagemaker_region",
    "sagemaker_container_log_level",
    "sagemaker_job_name",
    "default_user_module_name",
    "_tuning_objective_metric",
    "sagemaker_s3_output",
}
DEFAULT_LOG_LEVEL = 20
INSTANCE_GROUP = "homogeneousCluster"
# Environment of the runtime that must not leak into a job's Python.
ENVIRONMENT_NOT_INHERITED = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")


def decode_hyperparameters(raw: dict[str, str]) -> dict:
    """Each value ``json.loads``-decoded, the raw string kept when it is not JSON (TT)."""
    decoded = {}
    for key, value in raw.items():
        try:
            decoded[key] = json.loads(value)
        except (json.JSONDecodeError, TypeError):
            decoded[key] = value
    return decoded


def user_hyperparameters(decoded: dict) -> dict:
    return {
        k: v
        for k, v in decoded.items()
        if k not in RESERVED_HYPERPARAMETERS and not k.startswith("sagemaker_")
    }


def framework_parameters(decoded: dict) -> dict:
    return {
        k: v
        for k, v in decoded.items()
        if k.startswith("sagemaker_") and k not in RESERVED_HYPERPARAMETERS
    }


def _arg_value(value) -> str:
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def command_args(user_hps: dict) -> list[str]:
    """Sorted ``--key value`` pairs (``-k value`` for one-letter keys), values as ``str()``."""
    args = []
    for key in sorted(user_hps):
        args += [f"-{key}" if len(key) == 1 else f"--{key}", _arg_value(user_hps[key])]
    return args


def env_value(value) -> str:
    """Toolkit rule: strings as they are, None as "", anything else compact sorted JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


@cache
def gpu_count() -> int:
    """Number of ``GPU `` lines from ``nvidia-smi --list-gpus``; 0 when there is none."""
    try:
        listing = subprocess.run(
            ["nvidia-smi", "--list-gpus"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in listing.splitlines() if line.startswith("GPU "))


def input_data_config(job: dict) -> dict:
    """inputdataconfig.json: per channel, its input mode, distribution and wrapper (DG)."""
    config = {}
    for channel in job.get("InputDataConfig", []):
        source = channel.get("DataSource", {}).get("S3DataSource", {})
        entry = {
            "TrainingInputMode": channel.get(
                "InputMode", job["AlgorithmSpecification"].get("TrainingInputMode", "File")
            ),
            "S3DistributionType": source.get("S3DataDistributionType", "FullyReplicated"),
            "RecordWrapperType": channel.get("RecordWrapperType", "None"),
        }
        if "ContentType" in channel:
            entry["ContentType"] = channel["ContentType"]
        config[channel["ChannelName"]] = entry
    return config


def resource_config(job: dict, current_host: str, hosts: list[str]) -> dict:
    instance_type = job["ResourceConfig"].get("InstanceType", "local")
    return {
        "current_host": current_host,
        "current_instance_type": instance_type,
        "current_group_name": INSTANCE_GROUP,
        "hosts": hosts,
        "instance_groups": [
            {"instance_group_name": INSTANCE_GROUP, "instance_type": instance_type, "hosts": hosts}
        ],
        "network_interface_name": "eth0",
    }


def inherited_environment(python: str) -> dict[str, str]:
    """The runtime's environment minus Python-path variables, with the image's Python first on
    PATH: ``python``/``python3`` there are the image's, as in its container (the SDK v3's
    ``sm_train.sh`` driver runs ``python3`` from PATH)."""
    env = {k: v for k, v in os.environ.items() if k not in ENVIRONMENT_NOT_INHERITED}
    env["PATH"] = os.pathsep.join(filter(None, [str(Path(python).parent), env.get("PATH")]))
    return env


def training_environment(
    job: dict,
    tree: HostTree,
    hosts: list[str],
    region: str,
    master_port: int,
    python: str,
    extra: dict[str, str],
) -> dict[str, str]:
    """The full environment of one host's training process.

    Starts from :func:`inherited_environment` (for the image's ``python``), adds the ``SM_*`` set
    with every /opt/ml path pointing into ``tree``, the job's ``Environment`` map, the
    distributed-training rendezvous (``MASTER_ADDR``/``MASTER_PORT``) and ``extra``
    (config-file locations chosen by the executor).
    """
    decoded = decode_hyperparameters(job.get("HyperParameters", {}))
    user_hps = user_hyperparameters(decoded)
    channels = sorted(input_data_config(job))
    program = decoded.get("sagemaker_program", "")
    instance_type = job["ResourceConfig"].get("InstanceType", "local")
    toolkit = {
        "model_dir": str(tree.model_dir),
        "channels": channels,
        "hps": user_hps,
        "hosts": hosts,
        "current_host": tree.host,
        "num_gpus": gpu_count(),
        "num_cpus": os.cpu_count() or 1,
        "num_neurons": 0,
        "log_level": decoded.get("sagemaker_container_log_level", DEFAULT_LOG_LEVEL),
        "network_interface_name": "eth0",
        "user_args": command_args(user_hps),
        "user_entry_point": program,
        "module_name": program.removesuffix(".py"),
        "module_dir": decoded.get("sagemaker_submit_directory", str(tree.code_dir)),
        "framework_module": os.environ.get("SAGEMAKER_TRAINING_MODULE", ""),
        "framework_params": framework_parameters(decoded),
        "input_dir": str(tree.input_dir),
        "input_config_dir": str(tree.config_dir),
        "output_dir": str(tree.output_dir),
        "output_data_dir": str(tree.output_data_dir),
        "output_intermediate_dir": str(tree.intermediate_dir),
        "resource_config": resource_config(job, tree.host, hosts),
        "input_data_config": input_data_config(job),
        "current_instance_type": instance_type,
        "current_instance_group": INSTANCE_GROUP,
        "current_instance_group_hosts": hosts,
        "instance_groups": [INSTANCE_GROUP],
        "instance_groups_dict": {
            INSTANCE_GROUP: {
                "instance_group_name": INSTANCE_GROUP,
                "instance_type": instance_type,
                "hosts": hosts,
            }
        },
        "distribution_instance_groups": [INSTANCE_GROUP],
        "is_hetero": False,
    }
    toolkit["training_env"] = _training_env_json(job, toolkit)
    env = inherited_environment(python)
    env.update({f"SM_{key.upper()}": env_value(value) for key, value in toolkit.items()})
    env.update({f"SM_CHANNEL_{c.upper()}": str(tree.channel_dir(c)) for c in channels})
    env.update({f"SM_HP_{k.upper()}": env_value(v) for k, v in user_hps.items()})
    env.update(
        {
            "TRAINING_JOB_NAME": job["TrainingJobName"],
            "TRAINING_JOB_ARN": job["TrainingJobArn"],
            "SAGEMAKER_JOB_NAME": str(decoded.get("sagemaker_job_name", job["TrainingJobName"])),
            "SAGEMAKER_REGION": str(decoded.get("sagemaker_region", region)),
            "CURRENT_HOST": tree.host,
            "SAGEMAKER_BASE_DIR": str(tree.root),
            "PYTHONPATH": str(tree.code_dir),
            "PYTHONUNBUFFERED": "1",
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(master_port),
        }
    )
    env.update(job.get("Environment", {}))
    env.update(extra)
    return env


def _training_env_json(job: dict, toolkit: dict) -> dict:
    """SM_TRAINING_ENV: the toolkit's whole view of the job as one JSON object."""
    names = {"hps": "hyperparameters", "channels": None, "framework_params": None}
    training_env = {names.get(k, k): v for k, v in toolkit.items() if names.get(k, k)}
    training_env.update(
        additional_framework_parameters=toolkit["framework_params"],
        channel_input_dirs={
            c: str(Path(toolkit["input_dir"]) / "data" / c) for c in toolkit["channels"]
        },
        distribution_hosts=toolkit["hosts"],
        is_master=toolkit["current_host"] == toolkit["hosts"][0],
        master_hostname=toolkit["hosts"][0],
        job_name=job["TrainingJobName"],
        is_modelparallel_enabled=None,
        is_smddpmprun_installed=False,
        is_smddprun_installed=False,
        topology=None,
    )
    return training_env


def entry_point_command(python: str, program: str, args: list[str]) -> list[str]:
    """argv for the user entry point (run from the code dir): ``.sh`` via /bin/sh, else Python."""
    if program.endswith(".sh"):
        return ["/bin/sh", "-c", shlex.join([f"./{program}", *args])]
    return [python, program, *args]


def user_script_failure(exit_code: int, stderr_lines: list[str], argv: list[str]) -> str:
    """The toolkit's ``ExecuteUserScriptError`` text written to /opt/ml/output/failure (TT)."""
    error_message = "\n".join(stderr_lines)
    command = " ".join(argv)
    return (
        f"ExecuteUserScriptError:\nExitCode {exit_code}\n"
        f'ErrorMessage "{error_message}"\nCommand "{command}"'
    )
