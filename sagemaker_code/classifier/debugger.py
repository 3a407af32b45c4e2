"""SageMaker Debugger: the smdebug hook, present only when the job asks for it.

The job asks in one of two ways, and ``DebuggerHook.from_job`` builds ``smdebug.pytorch.Hook``
from either:

- a DebugHookConfig (rules.engine ``sagemaker``): SageMaker writes ``debughookconfig.json``
  (path in ``SMDEBUG_CONFIG_FILE_PATH``, default ``<input config dir>/debughookconfig.json``)
  and uploads the hook's ``LocalPath`` itself;
- without Debugger (rules.engine ``processing``): the job's ``Environment`` carries the
  collections in ``CLASSIFIER_DEBUG_HOOK_CONFIG`` (``{"CollectionConfigurations": [...]}``,
  the DebugHookConfig member of the same name), and the hook writes under
  ``<checkpoint dir>/debug-output``, which the job's CheckpointConfig syncs to S3.

Without either every method is a no-op and smdebug is not even imported.

What the rules find in the hook's output (``LocalPath`` of the config):
- the network's tensors under their module names (``features.0.relu_input_0``,
  ``layer1.0.relu_input_1``; ``gradients/<Model>_<param>`` for gradients), saved as the
  config's collections say;
- the loss as ``CrossEntropyLoss_output_0`` (collection ``losses``) in TRAIN mode for the
  training steps and in EVAL mode for the validation batches of every epoch, which is
  what Overfit and Overtraining compare;
- ``training_job_end.ts`` once ``close()`` ran.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from classifier.errors import TrainingError

CONFIG_FILE_NAME = "debughookconfig.json"
HOOK_CONFIG_VARIABLE = "CLASSIFIER_DEBUG_HOOK_CONFIG"
# Where, under the checkpoint dir, the hook writes when the job has no DebugHookConfig.
CHECKPOINT_SUBFOLDER = "debug-output"


class DebuggerHook:
    """A thin handle on an smdebug hook (or on none) for the training loop."""

    def __init__(self, hook: Any | None) -> None:
        self.hook = hook

    @property
    def enabled(self) -> bool:
        return self.hook is not None

    @classmethod
    def from_job(
        cls,
        input_config_dir: Path,
        checkpoint_dir: Path | None,
        is_master: bool = True,
        environ: Mapping[str, str] | None = None,
    ) -> DebuggerHook:
        """The hook the job configured, or a disabled one when it configured none.

        In data-parallel training only the master writes tensors: the rules read one worker.
        """
        env = os.environ if environ is None else environ
        config = Path(env.get("SMDEBUG_CONFIG_FILE_PATH", input_config_dir / CONFIG_FILE_NAME))
        if not is_master:
            return cls(None)
        if not config.is_file():
            if HOOK_CONFIG_VARIABLE not in env:
                return cls(None)
            config = _config_file_from_environment(env[HOOK_CONFIG_VARIABLE], checkpoint_dir)
        import smdebug.pytorch as smd  # slow to import and chatty: only when it is used

        return cls(smd.Hook.create_from_json_file(str(config)))

    def attach(self, model: nn.Module, loss: nn.Module) -> None:
        """Register the network (all its submodules and parameter gradients) and the loss.

        Call it while every parameter still requires gradients: smdebug hooks gradients only
        on those, and a frozen part may be unfrozen later (freeze policy ``staged``).
        """
        if self.hook is not None:
            self.hook.register_module(model)
            self.hook.register_loss(loss)

    def set_mode(self, mode: str) -> None:
        """Record what follows as ``train``, ``eval`` (validation) or ``predict`` (test) steps."""
        if self.hook is not None:
            import smdebug.pytorch as smd

            self.hook.set_mode(getattr(smd.modes, mode.upper()))

    def close(self) -> None:
        """Flush the writers and mark the end of training for the rules."""
        if self.hook is not None:
            self.hook.close()


def _config_file_from_environment(collections_json: str, checkpoint_dir: Path | None) -> Path:
    """A debughookconfig.json as SageMaker would write it, writing under the checkpoint dir.

    smdebug reads its configuration from such a file only; it goes to a temporary folder
    because the checkpoint dir is synced to S3 and /opt/ml/input may be read-only.
    """
    if checkpoint_dir is None:
        raise TrainingError(
            f"{HOOK_CONFIG_VARIABLE} is set but the job has no CheckpointConfig: the tensors "
            "would never leave the instance"
        )
    collections = json.loads(collections_json)["CollectionConfigurations"]
    config = Path(tempfile.mkdtemp(prefix="debughook-")) / CONFIG_FILE_NAME
    config.write_text(
        json.dumps(
            {
                "LocalPath": str(checkpoint_dir / CHECKPOINT_SUBFOLDER),
                "CollectionConfigurations": collections,
            }
        ),
        encoding="utf-8",
    )
    return config
