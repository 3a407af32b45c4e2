"""Lets approvals time out under `airflow dags test`, as the scheduler lets them under `make up`.

On Airflow 3.3 an approval (Human-in-the-loop) task waits in the AWAITING_INPUT state; once its
response timeout has passed, the scheduler applies the request's defaults. `airflow dags test`
runs no scheduler and keeps waiting for such a task forever (airflow/sdk/definitions/dag.py:
"dag.test() never resolves them itself"). This process runs the scheduler's own timeout sweep,
`SchedulerJobRunner.check_awaiting_input_timeouts`, once a second against the same metadata
database, so the local profile's approval is answered with its default after its timeout.

    python -m demo.approvals    # with the AIRFLOW_HOME (and config) of the `dags test` run
"""

from __future__ import annotations

import time

SWEEP_SECONDS = 1.0


def main() -> None:
    # Imported here: Airflow reads AIRFLOW_HOME at import, and only this process needs it.
    from airflow.jobs.job import Job
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner

    scheduler = SchedulerJobRunner(job=Job())  # never started: only its sweep is used
    while True:
        scheduler.check_awaiting_input_timeouts()
        time.sleep(SWEEP_SECONDS)


if __name__ == "__main__":
    main()
