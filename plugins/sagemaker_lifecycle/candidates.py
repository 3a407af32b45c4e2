"""The candidate architectures of a run: their tasks in the DAG, and which of them reached the
comparison (pure).

Each candidate runs in one map index of the DAG's `candidate` task group (tune, train, gate,
approve, evaluate, explain). The comparison takes the candidates whose tasks all succeeded (an
explanation skipped because explanations are off counts as success); every other candidate is
dropped with the reason its own tasks give: the rules blocked it, a person rejected it, or a task
failed. Airflow's task states arrive as `get_task_states` gives them: `<task id>_<map index>`.
"""

from __future__ import annotations

from collections.abc import Mapping

from sagemaker_lifecycle.gate import Decision

GROUP = "candidate"
TUNING_TASK = f"{GROUP}.train.tune_hyperparameters"
TRAINING_TASK = f"{GROUP}.train.train_best_model"
RULE_JOBS_TASK = f"{GROUP}.gate.start_rule_jobs"
GATE_TASK = f"{GROUP}.gate.gate_on_rules"
APPROVAL_TASK = f"{GROUP}.gate.approve_deployment"
TRANSFORM_TASK = f"{GROUP}.evaluate.batch_transform"
EVALUATE_TASK = f"{GROUP}.evaluate.evaluate"
EXPLAIN_TASK = f"{GROUP}.evaluate.explain_predictions"
# A candidate's tasks in flow order (planning tasks between them are found by state alone).
FLOW = (TUNING_TASK, TRAINING_TASK, RULE_JOBS_TASK, GATE_TASK, APPROVAL_TASK,
        TRANSFORM_TASK, EVALUATE_TASK, EXPLAIN_TASK)  # fmt: skip
# What the comparison and the winner's deployment read of a compared candidate: key -> task.
COMPARED_XCOMS = {"tuning": TUNING_TASK, "training": TRAINING_TASK, "transform": TRANSFORM_TASK,
                  "report": EVALUATE_TASK}  # fmt: skip
FAILED = "failed"
REJECTED = "rejected at the approval"


def states_of(task_states: Mapping[str, str], map_index: int) -> dict[str, str]:
    """Task id -> state of the candidate at `map_index`, from `<task id>_<map index>` keys."""
    states = {}
    for key, state in task_states.items():
        task_id, _, index = key.rpartition("_")
        if task_id.startswith(f"{GROUP}.") and index == str(map_index):
            states[task_id] = state
    return states


def _flow_position(task_id: str) -> int:
    return FLOW.index(task_id) if task_id in FLOW else -1


def dropped_reason(states: Mapping[str, str], verdict: Mapping | None) -> str | None:
    """Why the candidate with these task `states` (and the gate's `verdict`, None before the
    gate decided) is left out of the comparison; None when it takes part."""
    if verdict and verdict["decision"] == Decision.BLOCK:
        return "blocked by the rules: " + "; ".join(verdict["reasons"])
    failed = sorted((task for task, state in states.items() if state == FAILED), key=_flow_position)
    if failed:
        return f"{failed[0]} failed (see its log)"
    if states.get(APPROVAL_TASK) == "skipped":
        return f"{REJECTED} (a person's answer, or the default one)"
    evaluated = states.get(EVALUATE_TASK)
    if evaluated != "success":
        return f"{EVALUATE_TASK} is {evaluated or 'missing'}"
    return None
