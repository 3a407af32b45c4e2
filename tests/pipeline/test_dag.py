"""The DAG file: imports cleanly, wires the life cycle in order, exposes the documented params."""

from itertools import pairwise
from pathlib import Path

import pytest

DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags"


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(DAGS_FOLDER))
    assert bag.import_errors == {}
    return bag.dags["dog_breed_classifier"]


def upstream_closure(dag, task_id):
    seen, todo = set(), [task_id]
    while todo:
        for upstream in dag.get_task(todo.pop()).upstream_task_ids:
            if upstream not in seen:
                seen.add(upstream)
                todo.append(upstream)
    return seen


def test_life_cycle_runs_in_order(dag):
    order = ["stage.stage_dataset", "candidate.train.tune_hyperparameters",
             "candidate.train.train_best_model", "candidate.gate.gate_on_rules",
             "candidate.gate.approve_deployment", "candidate.evaluate.create_model",
             "candidate.evaluate.batch_transform", "candidate.evaluate.evaluate",
             "candidate.evaluate.explain_predictions", "compare.compare_candidates",
             "deploy.create_model", "deploy.deploy_endpoint", "deploy.smoke_test_endpoint",
             "clean_up.clean_up_endpoint"]  # fmt: skip
    for earlier, later in pairwise(order):
        assert earlier in upstream_closure(dag, later), f"{earlier} must run before {later}"


def test_every_candidate_s_tasks_are_mapped_over_the_candidates(dag):
    mapped = {task.task_id for task in dag.tasks if task.get_closest_mapped_task_group()}
    in_group = {task.task_id for task in dag.tasks if task.task_id.startswith("candidate.")}
    assert mapped == in_group
    assert {"candidate.train.tune_hyperparameters", "candidate.gate.gate_on_rules",
            "candidate.evaluate.evaluate"} <= in_group  # fmt: skip
    assert "plan_candidates" in upstream_closure(dag, "candidate.train.tune_hyperparameters")


def test_the_comparison_waits_for_every_candidate_whatever_its_end(dag):
    compare = dag.get_task("compare.compare_candidates")
    assert compare.trigger_rule == "all_done"
    # The last task of each candidate: a candidate is compared once it explained its answers.
    assert "candidate.evaluate.explain_predictions" in compare.upstream_task_ids
    candidate_tasks = {t.task_id for t in dag.tasks if t.task_id.startswith("candidate.")}
    assert candidate_tasks <= upstream_closure(dag, "compare.compare_candidates")


def test_every_model_is_registered_then_promoted_after_its_evaluation(dag):
    order = ["compare.compare_candidates", "deploy.register_model", "deploy.create_model",
             "deploy.smoke_test_endpoint", "promote.plan_champion_scoring",
             "promote.score_champion", "promote.evaluate_champion", "promote.decide_promotion",
             "promote.ask_about_promotion"]  # fmt: skip
    for earlier, later in pairwise(order):
        assert earlier in upstream_closure(dag, later), f"{earlier} must run before {later}"


def test_nothing_deploys_unless_a_gate_and_its_approval_passed(dag):
    for task_id in (
        "candidate.evaluate.create_model",
        "candidate.evaluate.batch_transform",
        "deploy.plan_deployment",
        "deploy.create_model",
        "deploy.deploy_endpoint",
    ):
        assert {"candidate.gate.gate_on_rules", "candidate.gate.approve_deployment"} <= (
            upstream_closure(dag, task_id)
        )
    # A Reject skips the candidate from its approval on (approval.RuleApprovalOperator).
    assert dag.get_task("candidate.gate.approve_deployment").downstream_task_ids == {
        "candidate.evaluate.plan_evaluation"
    }
    assert "deploy.plan_deployment" in dag.get_task("deploy.register_model").downstream_task_ids


def test_only_the_person_s_approval_is_not_retried(dag):
    # A retry would ask again. The gate is retried (a deferral lost to apache/airflow#67287, a
    # crash); its BLOCK is not, since it raises AirflowFailException (test_gate.py).
    assert dag.get_task("candidate.gate.approve_deployment").retries == 0
    assert dag.get_task("candidate.gate.gate_on_rules").retries == 3
    assert dag.get_task("candidate.train.train_best_model").retries == 1


def test_params_default_to_the_pipeline_yaml(dag):
    # The values include/pipeline.yaml and the README document, written out: a DAG that read
    # another file or key, or a changed default, fails here.
    assert {name: dag.params[name] for name in dag.params} == {
        "dataset_source": "https://s3-us-west-1.amazonaws.com/udacity-aind/dog-project/dogImages.zip",
        "dataset_snapshot": None,
        "bucket": None,  # unset: the Variable sagemaker_bucket, else aws.bucket, applies
        "max_tuning_jobs": 4,
        "max_parallel_jobs": 2,
        "rules_engine": "sagemaker",
        "poll_interval_seconds": 30,
        "delete_endpoint": False,
        "overrides": {},
    }


def test_runs_weekly_or_when_the_dataset_asset_is_updated(dag):
    from airflow.sdk import Asset, AssetOrTimeSchedule, CronTriggerTimetable

    timetable = dag.timetable
    assert isinstance(timetable, AssetOrTimeSchedule)
    assert isinstance(timetable.timetable, CronTriggerTimetable)
    assert timetable.timetable.expression == "0 0 * * 1"
    assert timetable.asset_condition.objects == (Asset(name="dog_breed_dataset"),)


def test_stage_dataset_announces_snapshots_through_an_alias_the_dag_does_not_run_on(dag):
    from sagemaker_lifecycle.assets import DATASET_REFRESHED, SNAPSHOT_PUBLISHED

    assert dag.get_task("stage.stage_dataset").outlets == [SNAPSHOT_PUBLISHED]
    # Scheduled on what it announces, every new snapshot would start one more run.
    assert SNAPSHOT_PUBLISHED.name != DATASET_REFRESHED.name
    assert all(not task.outlets for task in dag.tasks if task.task_id != "stage.stage_dataset")


def test_a_failure_after_the_comparison_triggers_the_clean_up_and_a_candidate_s_does_not(dag):
    clean_up = dag.get_task("clean_up.clean_up_failed_run")
    assert clean_up.trigger_rule == "one_failed"
    for task_id in ("compare.compare_candidates", "deploy.register_model", "deploy.create_model",
                    "deploy.deploy_endpoint", "deploy.smoke_test_endpoint",
                    "promote.score_champion", "promote.promote_or_withdraw"):  # fmt: skip
        assert task_id in clean_up.upstream_task_ids
    # A blocked candidate must not tear down what the others are still training: its failure
    # reaches the clean-up only through the comparison, which fails when no candidate is left.
    assert not [t for t in clean_up.upstream_task_ids if t.startswith("candidate.")]


def test_the_explanations_run_after_the_evaluation_beside_which_they_are_written(dag):
    planned = upstream_closure(dag, "candidate.evaluate.explain_predictions")
    assert {"candidate.train.train_best_model", "candidate.evaluate.evaluate",
            "candidate.evaluate.plan_explanations"} <= planned  # fmt: skip
    assert dag.get_task("candidate.evaluate.plan_explanations").upstream_task_ids >= {
        "candidate.evaluate.evaluate",
        "candidate.train.train_best_model",
    }


def test_a_run_can_pin_a_snapshot_by_id(dag):
    from sagemaker_lifecycle.tasks import PARAM_SETTINGS

    assert dag.params["dataset_snapshot"] is None
    assert PARAM_SETTINGS["dataset_snapshot"] == "dataset.snapshot"
    schema = dag.params.get_param("dataset_snapshot").schema
    assert schema["pattern"] == "^[0-9a-f]{16}$" and "null" in schema["type"]


def test_the_rollback_dag_deploys_a_chosen_version_and_records_it():
    from airflow.dag_processing.dagbag import DagBag

    rollback = DagBag(str(DAGS_FOLDER)).dags["dog_breed_rollback"]
    order = ["resolve_settings", "plan_rollback", "deploy_endpoint", "record_serving"]
    for earlier, later in pairwise(order):
        assert earlier in upstream_closure(rollback, later), f"{earlier} must run before {later}"
    assert rollback.params.get_param("model_package_version").schema["minimum"] == 1


def test_the_grid_groups_the_tasks_into_the_readme_s_phases(dag):
    groups = {task.task_id.partition(".")[0] for task in dag.tasks if "." in task.task_id}
    assert groups == {"stage", "candidate", "compare", "deploy", "promote", "clean_up"}
    phases = {task.task_id.split(".")[1] for task in dag.tasks
              if task.task_id.startswith("candidate.")}  # fmt: skip
    assert phases == {"train", "gate", "evaluate"}
    assert sorted(task.task_id for task in dag.tasks if "." not in task.task_id) == [
        "plan_candidates",
        "resolve_settings",
    ]


def test_the_version_records_when_the_endpoint_starts_serving_it(dag):
    assert {"deploy.smoke_test_endpoint", "deploy.register_model"} <= upstream_closure(
        dag, "promote.record_serving"
    )
