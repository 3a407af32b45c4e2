"""Answers the next approval requests of a DAG through Airflow's Core API, as a person would.

Run in the Airflow environment of an `airflow dags test` run (the same AIRFLOW_HOME), with the
simple auth manager's all-admins switch on. It polls `GET /api/v2/dags/<dag>/dagRuns/~/hitlDetails`
until a request has no response, then PATCHes the answer to it. The API runs in this process
(FastAPI's TestClient over Airflow's own app), so the answer takes the path of one given on the
Required Actions page: validated, recorded, and the waiting task resumed by the API's handler.

    python tests/pipeline/answer_approval.py <dag_id> Approve|Reject [requests] [timeout seconds]

`requests` (default 1): how many requests to answer, one after the other (a run of several
candidates asks once per candidate whose `approve` rules found issues).
"""

from __future__ import annotations

import sys
import time


def answer(dag_id: str, option: str, timeout: float) -> str:
    """Answer the first request without a response that appears within `timeout` seconds."""
    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    client = TestClient(create_app())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listed = client.get(f"/api/v2/dags/{dag_id}/dagRuns/~/hitlDetails")
        listed.raise_for_status()
        pending = [d for d in listed.json()["hitl_details"] if not d["response_received"]]
        if pending:
            ti = pending[0]["task_instance"]
            path = (f"/api/v2/dags/{dag_id}/dagRuns/{ti['dag_run_id']}/taskInstances/"
                    f"{ti['task_id']}/{ti['map_index']}/hitlDetails")  # fmt: skip
            answered = client.patch(path, json={"chosen_options": [option], "params_input": {}})
            answered.raise_for_status()
            return f"answered {option} to {ti['task_id']} [{ti['map_index']}] of {ti['dag_run_id']}"
        time.sleep(1)
    raise SystemExit(f"no approval request of {dag_id} appeared within {timeout:g} s")


if __name__ == "__main__":
    dag, choice, *rest = sys.argv[1:]
    requests, timeout = (int(rest[0]) if rest else 1), (float(rest[1]) if len(rest) > 1 else 600)
    for _ in range(requests):
        print(answer(dag, choice, timeout), flush=True)
