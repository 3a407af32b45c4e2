"""Failures with a meaning for the platform around the code.

- ``TrainingError``: a problem with the job's input (data, hyperparameters, weights) that the
  user must fix. ``report_training_failure`` writes its message to ``<output dir>/failure``,
  which SageMaker shows as the job's ``FailureReason``.
- ``ClientError``: a bad inference request. It carries an HTTP ``status_code`` (400 unless
  said otherwise). The project's local model server answers with any exception's
  ``status_code``; on AWS's inference images the class also derives from the
  sagemaker-inference toolkit's ``GenericInferenceToolkitError``, so the real toolkit answers
  with the same status instead of 500.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    from sagemaker_inference.errors import GenericInferenceToolkitError

    _TOOLKIT_ERROR_BASES: tuple[type, ...] = (GenericInferenceToolkitError,)
except ImportError:  # the training image and the local runtime have no inference toolkit
    _TOOLKIT_ERROR_BASES = ()

# SageMaker keeps the first 1024 characters of the failure file as FailureReason.
FAILURE_REASON_LIMIT = 1024


class TrainingError(Exception):
    """The training job cannot go on; the message says what is wrong and where."""


class ClientError(*_TOOLKIT_ERROR_BASES, ValueError):
    """A request the handlers refuse; ``status_code`` is the HTTP status to answer with."""

    def __init__(self, message: str, status_code: int = 400) -> None:
        if _TOOLKIT_ERROR_BASES:
            GenericInferenceToolkitError.__init__(self, status_code, message)
        else:
            ValueError.__init__(self, message)
        self.status_code = status_code
        self.message = message

    def __str__(self) -> str:
        return self.message


@contextmanager
def report_training_failure(output_dir: Path) -> Iterator[None]:
    """Turn an exception into SageMaker's failure signal: ``<output_dir>/failure`` and exit 1.

    A ``TrainingError`` is reported by its message alone; any other exception by its type,
    message and traceback, since it points at a bug rather than at the job's input.
    """
    try:
        yield
    except TrainingError as error:
        _fail(output_dir, f"TrainingError: {error}")
    except Exception as error:
        _fail(output_dir, f"{type(error).__name__}: {error}\n{traceback.format_exc()}")


def _fail(output_dir: Path, reason: str) -> None:
    print(reason, file=sys.stderr, flush=True)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "failure").write_text(reason[:FAILURE_REASON_LIMIT], encoding="utf-8")
    sys.exit(1)
