"""dog_breed_classifier: an image classifier's whole SageMaker life cycle.

    settings >> stage
             >> per candidate architecture (include/pipeline.yaml `candidates`, one map index
                each, side by side): tune >> train (Debugger hooks + rules) >> gate on the rules
                >> approval (asks a person only when an `approve` rule found issues)
                >> its own model >> batch transform of the validation split >> evaluate
                >> explain (saliency maps, a processing job)
             >> compare the candidates (blocked, rejected or failed ones are left out, with why);
                the best by registry.metric is the run's model
             >> register its version (Model Registry, PendingManualApproval)
             >> model (deployment.mode multi_model: every compared candidate behind one
                multi-model container, TargetModel <name>.tar.gz; single_model: the winner)
             >> endpoint: the challenger joins as a second variant with weight 0, beside the
                champion that keeps all the traffic (blue/green, deferred); the project's first
                model is tried alone on a trial endpoint of the run's own instead
             >> smoke test of the challenger's variant (TargetVariant; rolls back)
             >> score the champion on this snapshot (only when it never was)
             >> decide the promotion (Approved, or a reason; a person when registry.when_worse: ask)
             >> Approved: its variant takes the traffic (UpdateEndpointWeightsAndCapacities), then
                the endpoint keeps it alone (a first model: the endpoint is created for it);
                otherwise: the champion alone, the challenger unseen; a trial endpoint goes
             >> record on the version that the endpoint serves it
             >> clean up;  any failure after the comparison, or no candidate left >> stop the
                run's jobs, take the challenger off the endpoint, delete its unused models and
                configs

Each phase is a TaskGroup (stage, candidate with train, gate and evaluate inside, compare,
deploy, promote, clean_up), so the grid reads as this flow and a task's id is `<phase>.<task>`,
e.g. `candidate.train.train_best_model` (map index = the candidate's place in the list).

Runs weekly (Monday 00:00 UTC) and whenever the dataset asset `dog_breed_dataset` is updated (by
whoever refreshes the data); announces each NEW dataset snapshot on the asset alias
`dog_breed_dataset_snapshot_published`. Defaults live in include/pipeline.yaml; a run overrides
them with the params below (`overrides` takes any nested setting). The same DAG runs against AWS
or, with the `aws_default` connection's endpoint_url pointing at it, against the local runtime
(`python -m local_sagemaker serve`).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import (
    AssetOrTimeSchedule,
    CronTriggerTimetable,
    Param,
    TaskGroup,
    dag,
    task_group,
)
from sagemaker_lifecycle.approval import RuleApprovalOperator
from sagemaker_lifecycle.assets import DATASET_REFRESHED
from sagemaker_lifecycle.operators import (
    EndpointOperator,
    ExplanationJobOperator,
    ModelOperator,
    PromotionOperator,
    RuleProcessingJobsOperator,
    TrainingJobOperator,
    TransformJobOperator,
    TuningJobOperator,
)
from sagemaker_lifecycle.operators.registry import (
    PromotionApprovalOperator,
    RegisterModelVersionOperator,
)
from sagemaker_lifecycle.sensors import RuleGateSensor
from sagemaker_lifecycle.settings import load_defaults
from sagemaker_lifecycle.tasks import (
    AWS_CONN_ID,
    clean_up_endpoint,
    clean_up_failed_run,
    compare_candidates,
    decide_promotion,
    evaluate,
    evaluate_champion,
    plan_candidates,
    plan_champion_scoring,
    plan_deployment,
    plan_evaluation,
    plan_explanations,
    plan_promotion,
    plan_registration,
    plan_rule_jobs,
    plan_training,
    plan_tuning,
    record_serving,
    resolve_settings,
    smoke_test_endpoint,
    stage_dataset,
)
from sagemaker_lifecycle.ui.links import EvaluationReportLink

DEFAULTS = load_defaults()
# Rendered natively (render_template_as_native_obj), so these arrive as numbers and dicts.
POLL_INTERVAL = "{{ ti.xcom_pull(task_ids='resolve_settings')['polling']['interval_seconds'] }}"
WAIT_LIMIT = "{{ ti.xcom_pull(task_ids='resolve_settings')['polling']['timeout_seconds'] }}"
RULES = "{{ ti.xcom_pull(task_ids='resolve_settings')['rules'] }}"
APPROVAL = "{{ ti.xcom_pull(task_ids='resolve_settings')['rules']['approval'] }}"
PROMOTION_APPROVAL = "{{ ti.xcom_pull(task_ids='resolve_settings')['registry']['approval'] }}"
# The gate of each candidate (map index) reads its own training job.
TRAINING_JOB = (
    "{{ ti.xcom_pull(task_ids='candidate.train.train_best_model', map_indexes=ti.map_index)"
    "['TrainingJobName'] }}"
)
WAITS = {"check_interval": POLL_INTERVAL, "max_ingestion_time": WAIT_LIMIT}


@dag(
    dag_id="dog_breed_classifier",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 0 * * 1", timezone="UTC"), assets=[DATASET_REFRESHED]
    ),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,  # runs share one endpoint
    render_template_as_native_obj=True,
    default_args={"retries": 1, "retry_delay": timedelta(minutes=1), "aws_conn_id": AWS_CONN_ID},
    tags=["sagemaker", "image-classification"],
    params={
        "dataset_source": Param(
            DEFAULTS["dataset"]["source"],
            type="string",
            description="URL of a zip, local folder or zip: train/ valid/ test/ <NNN.Class>/",
        ),
        "dataset_snapshot": Param(
            DEFAULTS["dataset"]["snapshot"],
            type=["null", "string"],
            pattern="^[0-9a-f]{16}$",
            description="Train on this snapshot id of the catalog (datasets/catalog/) instead of "
            "staging the source; backfills pick the one of their date by themselves",
        ),
        "bucket": Param(
            None,
            type=["null", "string"],
            description="Default: Variable sagemaker_bucket, else include/pipeline.yaml",
        ),
        "max_tuning_jobs": Param(
            DEFAULTS["tuning"]["max_jobs"],
            type="integer",
            minimum=1,
            description="Trials of each candidate's tuning job",
        ),
        "max_parallel_jobs": Param(
            DEFAULTS["tuning"]["max_parallel_jobs"], type="integer", minimum=1
        ),
        "rules_engine": Param(DEFAULTS["rules"]["engine"], enum=["sagemaker", "processing"]),
        "poll_interval_seconds": Param(
            DEFAULTS["polling"]["interval_seconds"], type="number", exclusiveMinimum=0
        ),
        "delete_endpoint": Param(DEFAULTS["deployment"]["delete_endpoint"], type="boolean"),
        "overrides": Param(
            {}, type="object", description="Any nested setting of include/pipeline.yaml"
        ),
    },
    doc_md=__doc__,
)
def dog_breed_classifier():
    settings = resolve_settings()

    with TaskGroup("stage", tooltip="Verify the dataset and publish it as a snapshot in S3"):
        dataset = stage_dataset(settings)

    @task_group(group_id="candidate")
    def candidate(candidate: dict):
        """One candidate architecture: tuned, trained, gated, evaluated and explained."""
        with TaskGroup("train", tooltip="Tune the hyperparameters, train the best configuration"):
            tuning = TuningJobOperator(
                task_id="tune_hyperparameters",
                config=plan_tuning(settings, dataset, candidate),
                **WAITS,
            )
            training = TrainingJobOperator(
                task_id="train_best_model",
                config=plan_training(settings, dataset, candidate, tuning.output),
                **WAITS,
            )

        with TaskGroup("gate", tooltip="Decide on the rules' outcomes; ask a person if told to"):
            rule_jobs = RuleProcessingJobsOperator(
                task_id="start_rule_jobs", config=plan_rule_jobs(settings, dataset, training.output)
            )
            gate = RuleGateSensor(
                task_id="gate_on_rules",
                training_job_name=TRAINING_JOB,
                rule_jobs=rule_jobs.output,
                rules=RULES,
                poll_interval=POLL_INTERVAL,
                max_wait=WAIT_LIMIT,
                # A BLOCK fails at once (AirflowFailException); a crash, or a deferral lost to
                # Airflow 3.3.2's stale-event race (triggers.DEFERRAL_SETTLE_SECONDS), is
                # retried. Seen lost twice in a row on a loaded machine, where the retry's
                # verdict is ready at once.
                retries=3,
            )
            approval = RuleApprovalOperator(
                task_id="approve_deployment",
                verdict=gate.output,
                approval=APPROVAL,
                tuning=tuning.output,
                training=training.output,
                retries=0,
            )

        with TaskGroup("evaluate", tooltip="Batch transform the validation split, score, explain"):
            planned = plan_evaluation(settings, dataset, candidate, training.output)
            model = ModelOperator(task_id="create_model", config=planned["model"])
            transform = TransformJobOperator(
                task_id="batch_transform", config=planned["transform"], **WAITS
            )
            report = evaluate(
                settings, dataset, candidate, transform.output, tuning.output, training.output
            )
            report.operator.operator_extra_links = (EvaluationReportLink(),)
            ExplanationJobOperator(
                task_id="explain_predictions",
                config=plan_explanations(settings, dataset, candidate, training.output, report),
                **WAITS,
            )
        approval >> planned
        model >> transform

    candidates = candidate.expand(candidate=plan_candidates(settings))

    with TaskGroup("compare", tooltip="The candidates side by side; the best is the run's model"):
        compared = compare_candidates(settings)
    candidates >> compared

    with TaskGroup(
        "deploy", tooltip="Register the version, add it to the endpoint at weight 0, smoke-test it"
    ):
        registered = RegisterModelVersionOperator(
            task_id="register_model",
            registration=plan_registration(settings, dataset, compared["winner"]),
        )
        deployment = plan_deployment(settings, compared["winner"], compared["archives"])
        model = ModelOperator(task_id="create_model", config=deployment["model"])
        endpoint = EndpointOperator(
            task_id="deploy_endpoint", config=deployment["endpoint"], **WAITS
        )
        smoke_test = smoke_test_endpoint(settings, dataset, endpoint.output, deployment["served"])

    with TaskGroup(
        "promote",
        tooltip="Challenger against champion on this snapshot; the winner takes the traffic",
    ):
        report = compared["report"]
        champion = plan_champion_scoring(settings, dataset, registered.output, report)
        champion_transform = TransformJobOperator(
            task_id="score_champion", config=champion["transform"], **WAITS
        )
        champion_report = evaluate_champion(
            settings, dataset, champion["ModelPackageArn"], champion_transform.output
        )
        decision = decide_promotion(settings, dataset, registered.output, report)
        promotion_approval = PromotionApprovalOperator(
            task_id="ask_about_promotion",
            decision=decision,
            approval=PROMOTION_APPROVAL,
            retries=0,
        )
        actions = plan_promotion(settings, registered.output, endpoint.output)
        promotion = PromotionOperator(
            task_id="promote_or_withdraw",
            config=actions["endpoint"],
            traffic=actions["traffic"],
            retired=actions["retired"],
            **WAITS,
        )
        record_serving(settings, registered.output, promotion.output)

    registered >> deployment
    smoke_test >> champion
    champion_report >> decision >> promotion_approval >> actions
    model >> endpoint
    with TaskGroup("clean_up", tooltip="Teardown; after a failure, stop and delete what is left"):
        clean_up_endpoint(settings, promotion.output)
        # Any of these failing (or upstream_failed) triggers it; a successful run skips it. A
        # candidate's own failure does not: the comparison leaves it out and goes on with the
        # others (and fails, triggering this, when none is left).
        [
            compared,
            registered,
            model,
            endpoint,
            smoke_test,
            champion_transform,
            decision,
            promotion_approval,
            actions,
            promotion,
        ] >> (clean_up_failed_run(settings))


dog_breed_classifier()
