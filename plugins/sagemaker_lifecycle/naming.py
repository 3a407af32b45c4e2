"""SageMaker resource names for one DAG run.

Names are derived from the DAG run, never from the clock, so a retried or cleared task finds the
job its earlier try started instead of failing on a duplicate name (the hooks attach to it or
reuse its result). Every name matches SageMaker's `[a-zA-Z0-9](-*[a-zA-Z0-9])*` and its length
limit (32 for tuning jobs, 63 for everything else). The endpoint name does not depend on the run:
each run deploys to the same endpoint, updating it in place. Only the project's first model, with
no endpoint to join yet, is tried on an endpoint of the run's own (`trial_endpoint`).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime

NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")
MAX_NAME_LENGTH = 63
MAX_TUNING_JOB_NAME_LENGTH = 32
# A candidate's tuning job is `<project>-tune-<yymmdd>-<8 hex>-<index>`: the project's share.
MAX_PROJECT_LENGTH = MAX_TUNING_JOB_NAME_LENGTH - len("-tune-yymmdd-12345678-9")


def check_name(name: str, max_length: int = MAX_NAME_LENGTH) -> str:
    """`name` itself if SageMaker accepts it; ValueError saying why otherwise."""
    if not NAME_PATTERN.match(name):
        raise ValueError(
            f"{name!r} is not a valid SageMaker name: use letters, digits and hyphens, "
            "starting and ending with a letter or digit"
        )
    if len(name) > max_length:
        raise ValueError(f"{name!r} is {len(name)} characters long; SageMaker allows {max_length}")
    return name


@dataclass(frozen=True)
class RunNames:
    """The names of everything one DAG run creates in SageMaker."""

    project: str
    run_stamp: str  # <yymmdd>-<8 hex of the run id>

    def _name(self, kind: str, max_length: int = MAX_NAME_LENGTH) -> str:
        return check_name(f"{self.project}-{kind}-{self.run_stamp}", max_length)

    def candidate(self, index: int) -> RunNames:
        """The names of candidate `index`'s jobs and model: the run's with `-<index>` after the
        stamp, so every filter on the run's names (clean-up's) matches them too. One digit
        (settings.MAX_CANDIDATES) keeps the tuning job's name within its 32 characters."""
        if not 0 <= index <= 9:
            raise ValueError(f"candidate index {index} is not a single digit")
        return RunNames(project=self.project, run_stamp=f"{self.run_stamp}-{index}")

    @property
    def tuning_job(self) -> str:
        return self._name("tune", MAX_TUNING_JOB_NAME_LENGTH)

    @property
    def training_job(self) -> str:
        return self._name("train")

    @property
    def model(self) -> str:
        return self._name("model")

    @property
    def endpoint_config(self) -> str:
        return self._name("epc")

    @property
    def challenger_endpoint_config(self) -> str:
        """The config that adds this run's model to the endpoint beside the champion, untried."""
        return check_name(f"{self.endpoint_config}-challenger")

    @property
    def endpoint(self) -> str:
        return check_name(f"{self.project}-endpoint")

    @property
    def trial_endpoint(self) -> str:
        """Where the project's first model is tried before its version is decided: the endpoint
        users call (`endpoint`) exists only once a version is Approved."""
        return check_name(f"{self.endpoint}-trial-{self.run_stamp}")

    @property
    def transform_job(self) -> str:
        return self._name("transform")

    @property
    def champion_model(self) -> str:
        """The champion's model, made from its Approved version to score it on this snapshot."""
        return check_name(f"{self.model}-champion")

    @property
    def champion_transform_job(self) -> str:
        """Its batch transform (named after the run's own, so clean-up finds it too)."""
        return check_name(f"{self.transform_job}-champion")

    @property
    def explanation_job(self) -> str:
        return self._name("explain")


def retry_name(name: str, attempt: int, max_length: int = MAX_NAME_LENGTH) -> str:
    """A fresh name for attempt `attempt` (>= 2) after the job called `name` failed or stopped."""
    suffix = f"-a{attempt}"
    return check_name(name[: max_length - len(suffix)].rstrip("-") + suffix, max_length)


def run_names(project: str, run_id: str, run_date: datetime) -> RunNames:
    """The names for the DAG run `run_id` on `run_date` (its logical date or run_after)."""
    check_name(project, MAX_PROJECT_LENGTH)
    digest = hashlib.blake2b(run_id.encode(), digest_size=4).hexdigest()
    return RunNames(project=project, run_stamp=f"{run_date:%y%m%d}-{digest}")
