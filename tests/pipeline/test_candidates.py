"""Which candidates of a run reach the comparison, and the reason each other one is left out."""

import pytest
from sagemaker_lifecycle import candidates as c

# As get_task_states gives them: `<task id>_<map index>`; map indexes 1 and 11 must not mix.
STATES = {
    "candidate.train.tune_hyperparameters_1": "success",
    "candidate.train.train_best_model_1": "success",
    "candidate.gate.gate_on_rules_1": "failed",
    "candidate.gate.approve_deployment_1": "upstream_failed",
    "candidate.evaluate.evaluate_1": "upstream_failed",
    "candidate.train.tune_hyperparameters_11": "failed",
    "compare.compare_candidates": "running",
}
ALL_DONE = {task: "success" for task in c.FLOW}
BLOCKED = {"decision": "block", "reasons": ["VanishingGradient found issues: ..."]}


def test_a_candidate_s_states_are_its_own_map_index_s():
    assert c.states_of(STATES, 1) == {
        "candidate.train.tune_hyperparameters": "success",
        "candidate.train.train_best_model": "success",
        "candidate.gate.gate_on_rules": "failed",
        "candidate.gate.approve_deployment": "upstream_failed",
        "candidate.evaluate.evaluate": "upstream_failed",
    }
    assert c.states_of(STATES, 11) == {"candidate.train.tune_hyperparameters": "failed"}
    assert c.states_of(STATES, 2) == {}


def test_a_candidate_whose_tasks_all_succeeded_is_compared():
    assert c.dropped_reason(ALL_DONE, {"decision": "deploy", "reasons": []}) is None
    # Explanations off: its explanation is skipped, and it is still compared.
    assert c.dropped_reason({**ALL_DONE, c.EXPLAIN_TASK: "skipped"}, None) is None


@pytest.mark.parametrize(
    ("states", "verdict", "reason"),
    [
        ({**ALL_DONE, c.GATE_TASK: "failed", c.APPROVAL_TASK: "upstream_failed"}, BLOCKED,
         "blocked by the rules: VanishingGradient found issues: ..."),
        # The first task that failed in the flow, not a later one or one that only followed.
        ({**ALL_DONE, c.TRAINING_TASK: "failed", c.GATE_TASK: "upstream_failed",
          c.EXPLAIN_TASK: "failed"}, None, f"{c.TRAINING_TASK} failed (see its log)"),
        ({**ALL_DONE, c.EXPLAIN_TASK: "failed"}, None, f"{c.EXPLAIN_TASK} failed (see its log)"),
        ({**ALL_DONE, c.EVALUATE_TASK: "failed"}, None, f"{c.EVALUATE_TASK} failed (see its log)"),
        ({**ALL_DONE, c.APPROVAL_TASK: "skipped", c.EVALUATE_TASK: "skipped"}, None,
         "rejected at the approval (a person's answer, or the default one)"),
        ({c.TUNING_TASK: "success"}, None, f"{c.EVALUATE_TASK} is missing"),
    ],
)  # fmt: skip
def test_a_candidate_left_out_is_named_with_the_reason_its_tasks_give(states, verdict, reason):
    assert c.dropped_reason(states, verdict) == reason
