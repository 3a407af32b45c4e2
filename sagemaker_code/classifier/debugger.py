"""SageMaker Debugger: the smdebug hook, present only when the job asks for it.

SageMaker writes ``debughookconfig.json`` (path in ``SMDEBUG_CONFIG_FILE_PATH``, default
``<input config dir>/debughookconfig.json``) when the training job has a DebugHookConfig.
``DebuggerHook.from_config_file`` then builds ``smdebug.pytorch.Hook`` from it; without the
file every method is a no-op and smdebug is not even imported.

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

import os
from pathlib import Path
from typing import Any

from torch import nn

CONFIG_FILE_NAME = "debughookconfig.json"


class DebuggerHook:
    """A thin handle on an smdebug hook (or on none) for the training loop."""

    def __init__(self, hook: Any | None) -> None:
        self.hook = hook

    @property
    def enabled(self) -> bool:
        return self.hook is not None

    @classmethod
    def from_config_file(cls, input_config_dir: Path, is_master: bool = True) -> DebuggerHook:
        """The hook the job configured, or a disabled one when there is no config file.

        In data-parallel training only the master writes tensors: the rules read one worker.
        """
        config = Path(
            os.environ.get("SMDEBUG_CONFIG_FILE_PATH", input_config_dir / CONFIG_FILE_NAME)
        )
        if not config.is_file() or not is_master:
            return cls(None)
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
