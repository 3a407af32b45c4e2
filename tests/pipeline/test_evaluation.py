"""Evaluation of a batch transform from synthetic transform outputs in S3."""

import io
import json
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree

import pytest
from PIL import Image
from sagemaker_lifecycle import evaluation
from sagemaker_lifecycle.job_metrics import TRAINING_NAMESPACE, JobMetrics

CLASSES = ["001.Affenpinscher", "002.Afghan_hound", "003.Airedale_terrier"]
BUCKET = "eval-bucket"
INPUT = f"s3://{BUCKET}/datasets/snap/valid/"
OUTPUT = f"s3://{BUCKET}/transform/job/"
REPORT = f"s3://{BUCKET}/evaluation/job/"
SVG = "{http://www.w3.org/2000/svg}"
# (true class, file, ranked predictions)
CASES = [
    (CLASSES[0], "a1.jpg", [CLASSES[0], CLASSES[1], CLASSES[2]]),
    (CLASSES[0], "a2.jpg", [CLASSES[1], CLASSES[0], CLASSES[2]]),
    (CLASSES[1], "b1.png", [CLASSES[1], CLASSES[2], CLASSES[0]]),
    (CLASSES[1], "b2.jpg", [CLASSES[1], CLASSES[0], CLASSES[2]]),
    (CLASSES[2], "c1.jpg", [CLASSES[0], CLASSES[1], CLASSES[2]]),
    (CLASSES[2], "c2.jpg", [CLASSES[2], CLASSES[0], CLASSES[1]]),
]
CANDIDATE = {"index": 0, "name": "resnet50", "hyperparameters": {"backbone": "resnet50"}}


def prediction_json(ranking):
    return json.dumps(
        {
            "predictions": [
                {"label": label, "probability": 0.5 / (i + 1)} for i, label in enumerate(ranking)
            ]
        }
    ).encode()


@pytest.fixture
def transform_in_s3(s3):
    s3.create_bucket(Bucket=BUCKET)
    for truth, name, ranking in CASES:
        s3.put_object(Bucket=BUCKET, Key=f"datasets/snap/valid/{truth}/{name}", Body=b"image")
        # SageMaker keeps the input's sub-folder under the output prefix.
        s3.put_object(
            Bucket=BUCKET, Key=f"transform/job/{truth}/{name}.out", Body=prediction_json(ranking)
        )
    return s3


def test_report_numbers_match_the_outputs(transform_in_s3):
    report = evaluation.evaluate_transform(transform_in_s3, INPUT, OUTPUT, CLASSES, REPORT)
    assert report["count"] == 6
    assert report["accuracy"] == pytest.approx(4 / 6)
    assert report["top_3_accuracy"] == 1.0
    assert report["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    affen = report["per_class"][CLASSES[0]]
    assert affen["precision"] == pytest.approx(0.5) and affen["recall"] == pytest.approx(0.5)
    hound = report["per_class"][CLASSES[1]]
    assert hound["precision"] == pytest.approx(2 / 3) and hound["recall"] == 1.0
    assert report["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)


def test_report_json_markdown_and_confusion_matrix_are_uploaded(transform_in_s3):
    report = evaluation.evaluate_transform(transform_in_s3, INPUT, OUTPUT, CLASSES, REPORT)
    stored = json.loads(
        transform_in_s3.get_object(Bucket=BUCKET, Key="evaluation/job/report.json")["Body"].read()
    )
    assert stored["accuracy"] == report["accuracy"]
    picture = transform_in_s3.get_object(Bucket=BUCKET, Key="evaluation/job/confusion_matrix.png")[
        "Body"
    ].read()
    assert Image.open(io.BytesIO(picture)).format == "PNG"
    markdown = (
        transform_in_s3.get_object(Bucket=BUCKET, Key="evaluation/job/report.md")["Body"]
        .read()
        .decode()
    )
    assert "accuracy: 0.6667" in markdown and CLASSES[2] in markdown


def test_flat_output_keys_are_matched_by_file_name(s3):
    s3.create_bucket(Bucket=BUCKET)
    for truth, name, ranking in CASES:
        s3.put_object(Bucket=BUCKET, Key=f"datasets/snap/valid/{truth}/{name}", Body=b"image")
        s3.put_object(Bucket=BUCKET, Key=f"transform/job/{name}.out", Body=prediction_json(ranking))
    report = evaluation.evaluate_transform(s3, INPUT, OUTPUT, CLASSES, REPORT)
    assert report["accuracy"] == pytest.approx(4 / 6)


def test_missing_outputs_are_named(transform_in_s3):
    transform_in_s3.delete_object(Bucket=BUCKET, Key=f"transform/job/{CLASSES[2]}/c2.jpg.out")
    with pytest.raises(
        evaluation.EvaluationError, match=r"1 of 6 inputs have no transform output.*c2\.jpg"
    ):
        evaluation.evaluate_transform(transform_in_s3, INPUT, OUTPUT, CLASSES, REPORT)


def test_output_that_is_not_inference_json_is_named(transform_in_s3):
    key = f"transform/job/{CLASSES[0]}/a1.jpg.out"
    transform_in_s3.put_object(Bucket=BUCKET, Key=key, Body=b"001.Affenpinscher,0.9")
    with pytest.raises(evaluation.EvaluationError, match=r"a1\.jpg\.out is not inference"):
        evaluation.evaluate_transform(transform_in_s3, INPUT, OUTPUT, CLASSES, REPORT)


def test_confusion_matrix_picture_scales_to_many_classes():
    classes = [f"{i:03d}.Breed" for i in range(133)]
    matrix = [[int(i == j) for j in range(133)] for i in range(133)]
    picture = Image.open(io.BytesIO(evaluation.render_confusion_matrix(matrix, classes)))
    assert picture.width <= evaluation.MATRIX_PIXELS + 40


def svg_elements(page: str, css_class: str) -> list[ElementTree.Element]:
    """The elements of class `css_class` in the page's inline SVGs (the page itself is HTML)."""
    found = []
    for svg in re.findall(r"<svg.*?</svg>", page):
        found += ElementTree.fromstring(svg).iter()
    return [element for element in found if element.get("class") == css_class]


def test_html_report_holds_the_headline_the_classes_and_the_matrix_as_svg(transform_in_s3):
    report = evaluation.evaluate_transform(transform_in_s3, INPUT, OUTPUT, CLASSES, REPORT)
    assert report["html_report_uri"] == f"{REPORT}report.html"
    stored = transform_in_s3.get_object(Bucket=BUCKET, Key="evaluation/job/report.html")
    assert stored["ContentType"] == "text/html"
    page = stored["Body"].read().decode()
    assert "<th>accuracy</th><td>0.6667</td>" in page
    assert "<th>top-3 accuracy</th><td>1.0000</td>" in page
    assert all(f"<td>{name}</td>" in page for name in CLASSES)
    # A cell per (true, predicted) pair, each holding its count, row by row.
    cells = svg_elements(page, "cell")
    counts = [int(cell.find(f"{SVG}title").text.rsplit(": ", 1)[1]) for cell in cells]
    assert counts == [n for row in report["confusion_matrix"] for n in row] == [
        1, 1, 0, 0, 2, 0, 1, 0, 1]  # fmt: skip
    # Static: no script, nothing fetched.
    assert "<script" not in page and "src=" not in page


def test_html_report_draws_the_training_curves_and_the_tuning_chart(transform_in_s3):
    measured = JobMetrics(
        trials=[
            {"TrainingJobName": f"trial-{n}", "CreationTime": f"0{n}",
             "FinalHyperParameterTuningJobObjectiveMetric": {"Value": value}}
            for n, value in ((1, 0.4), (2, 0.9), (3, 0.6), (4, 0.7))
        ],
        curves={"train_loss": [(1, 1.3), (2, 0.9), (3, 0.6)],
                "valid_loss": [(1, 1.4), (2, 1.1), (3, 0.8)],
                "valid_acc": [(1, 0.3), (2, 0.5), (3, 0.7)]},
    )  # fmt: skip
    tuning = {"TuningJobName": "tune-1", "BestTrainingJobName": "trial-2",
              "ObjectiveMetric": {"MetricName": "valid_acc"}}  # fmt: skip
    evaluation.evaluate_transform(transform_in_s3, INPUT, OUTPUT, CLASSES, REPORT,
                                  measured=measured, tuning=tuning)  # fmt: skip
    page = transform_in_s3.get_object(Bucket=BUCKET, Key="evaluation/job/report.html")
    page = page["Body"].read().decode()
    training, tuned = page.split("<h2>Training</h2>")[1].split("<h2>Tuning</h2>")
    per_series = Counter(point.get("data-series") for point in svg_elements(training, "point"))
    assert per_series == {"train_loss": 3, "valid_loss": 3, "valid_acc": 3}  # a point per epoch
    assert len(svg_elements(tuned, "point")) == 4  # a point per trial
    (best,) = svg_elements(tuned, "best")
    assert best.find(f"{SVG}title").text == "best: 2, 0.9"
    assert "tuning job tune-1" in tuned


def test_html_report_says_what_it_could_not_read_and_leaves_out_the_tuning_of_no_tuning():
    measured = JobMetrics(problems=["Could not read the training curves: AccessDenied"])
    page = evaluation.render_html_report(evaluation.score([], CLASSES, 3), measured=measured)
    assert "Could not read the training curves: AccessDenied" in page
    assert "no data recorded" in page and "<h2>Tuning</h2>" not in page
    # The champion's report (scored for another run's model) draws no jobs at all.
    assert "<h2>Training</h2>" not in evaluation.render_html_report(
        evaluation.score([], CLASSES, 3)
    )


def test_html_report_links_the_explanations_after_the_confusion_matrix(transform_in_s3):
    evaluation.evaluate_transform(
        transform_in_s3, INPUT, OUTPUT, CLASSES, REPORT, explanations_folder="explanations"
    )
    page = transform_in_s3.get_object(Bucket=BUCKET, Key="evaluation/job/report.html")
    after_matrix = page["Body"].read().decode().split("class='confusion-matrix'")[1]
    assert "<h2>Explanations</h2>" in after_matrix
    assert "href='explanations/report.html'" in after_matrix
    without = evaluation.render_html_report(evaluation.score([], CLASSES, 3))
    assert "Explanations" not in without


def test_top_k_is_capped_by_the_classes_and_named_after_k():
    pairs = [(truth, ranking) for truth, _, ranking in CASES]
    assert "top_3_accuracy" in evaluation.score(pairs, CLASSES, top_k=5)
    top_two = evaluation.score(pairs, CLASSES, top_k=2)
    assert top_two["top_2_accuracy"] == pytest.approx(5 / 6)  # c1.jpg ranks its class third
    assert "top_3_accuracy" not in top_two


def test_too_few_predictions_for_top_k_are_named():
    with pytest.raises(evaluation.EvaluationError, match="top-3 accuracy needs 3"):
        evaluation.score([(CLASSES[0], CLASSES[:2])], CLASSES, top_k=5)


@pytest.mark.parametrize(("minimum", "fails"), [(0.6, False), (0.7, True)])
def test_accuracy_below_evaluation_min_accuracy_fails_the_task(
    transform_in_s3, moto_session, settings_with, names, monkeypatch, minimum, fails
):
    from sagemaker_lifecycle import tasks

    monkeypatch.setattr(tasks, "_s3_client", lambda: transform_in_s3)
    monkeypatch.setattr(tasks, "_client", lambda service: moto_session.client(service))
    # The report's prefix is the candidate's (its model version would point at it).
    monkeypatch.setattr(tasks, "candidate_names", lambda settings, candidate: names)
    settings = settings_with({"aws": {"bucket": BUCKET}, "evaluation": {"min_accuracy": minimum}})
    transform = {"InputPath": INPUT, "OutputPath": OUTPUT, "TransformJobName": "job"}
    training = {"TrainingJobName": "dogbreed-train-1"}
    run = lambda: tasks.evaluate.function(  # noqa: E731
        settings, {"classes": CLASSES}, CANDIDATE, transform, None, training
    )
    if fails:
        with pytest.raises(ValueError, match=rf"accuracy 0.6667 of resnet50 on valid is below "
                                             rf"evaluation\.min_accuracy {minimum}$"):  # fmt: skip
            run()
    else:
        summary = run()
        assert summary["accuracy"] == pytest.approx(4 / 6)
        # Which candidate it scored, for the comparison.
        assert (summary["candidate"], summary["map_index"]) == ("resnet50", 0)


def test_the_evaluate_task_draws_the_training_curves_cloudwatch_recorded(
    transform_in_s3, moto_session, settings_with, names, monkeypatch
):
    from sagemaker_lifecycle import tasks

    cloudwatch = moto_session.client("cloudwatch")
    now = datetime.now(UTC)
    for epoch, loss in enumerate((1.2, 0.8, 0.5, 0.4), 1):  # one datapoint per epoch line
        cloudwatch.put_metric_data(Namespace=TRAINING_NAMESPACE, MetricData=[{
            "MetricName": "train_loss", "Value": loss,
            "Timestamp": now - timedelta(seconds=60 - 10 * epoch),
            "Dimensions": [{"Name": "TrainingJobName", "Value": "dogbreed-train-1"}]}])  # fmt: skip
    monkeypatch.setattr(tasks, "_s3_client", lambda: transform_in_s3)
    monkeypatch.setattr(tasks, "_client", lambda service: moto_session.client(service))
    monkeypatch.setattr(tasks, "candidate_names", lambda settings, candidate: names)
    settings = settings_with({"aws": {"bucket": BUCKET}})
    transform = {"InputPath": INPUT, "OutputPath": OUTPUT, "TransformJobName": "job"}
    summary = tasks.evaluate.function(settings, {"classes": CLASSES}, CANDIDATE, transform, None,
                                      {"TrainingJobName": "dogbreed-train-1"})  # fmt: skip
    bucket, _, key = summary["html_report_uri"].removeprefix("s3://").partition("/")
    page = transform_in_s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    points = svg_elements(page.split("<h2>Training</h2>")[1], "point")
    assert [p.find(f"{SVG}title").text for p in points] == [
        "train_loss: 1, 1.2",
        "train_loss: 2, 0.8",
        "train_loss: 3, 0.5",
        "train_loss: 4, 0.4",
    ]
    assert "<h2>Tuning</h2>" not in page  # a run without a tuning job draws no tuning chart
