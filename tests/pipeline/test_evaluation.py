"""Evaluation of a batch transform from synthetic transform outputs in S3."""

import base64
import io
import json

import pytest
from PIL import Image
from sagemaker_lifecycle import evaluation

CLASSES = ["001.Affenpinscher", "002.Afghan_hound", "003.Airedale_terrier"]
BUCKET = "eval-bucket"
INPUT = f"s3://{BUCKET}/datasets/snap/valid/"
OUTPUT = f"s3://{BUCKET}/transform/job/"
REPORT = f"s3://{BUCKET}/evaluation/job/"
# (true class, file, ranked predictions)
CASES = [
    (CLASSES[0], "a1.jpg", [CLASSES[0], CLASSES[1], CLASSES[2]]),
    (CLASSES[0], "a2.jpg", [CLASSES[1], CLASSES[0], CLASSES[2]]),
    (CLASSES[1], "b1.png", [CLASSES[1], CLASSES[2], CLASSES[0]]),
    (CLASSES[1], "b2.jpg", [CLASSES[1], CLASSES[0], CLASSES[2]]),
    (CLASSES[2], "c1.jpg", [CLASSES[0], CLASSES[1], CLASSES[2]]),
    (CLASSES[2], "c2.jpg", [CLASSES[2], CLASSES[0], CLASSES[1]]),
]


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


def test_html_report_holds_the_headline_the_classes_and_the_inlined_matrix(transform_in_s3):
    report = evaluation.evaluate_transform(transform_in_s3, INPUT, OUTPUT, CLASSES, REPORT)
    assert report["html_report_uri"] == f"{REPORT}report.html"
    stored = transform_in_s3.get_object(Bucket=BUCKET, Key="evaluation/job/report.html")
    assert stored["ContentType"] == "text/html"
    page = stored["Body"].read().decode()
    assert "<th>accuracy</th><td>0.6667</td>" in page
    assert "<th>top-3 accuracy</th><td>1.0000</td>" in page
    assert all(f"<td>{name}</td>" in page for name in CLASSES)
    inlined = page.split("data:image/png;base64,")[1].split("'")[0]
    picture = transform_in_s3.get_object(Bucket=BUCKET, Key="evaluation/job/confusion_matrix.png")
    assert base64.b64decode(inlined) == picture["Body"].read()


def test_html_report_links_the_explanations_beside_the_confusion_matrix(transform_in_s3):
    evaluation.evaluate_transform(
        transform_in_s3, INPUT, OUTPUT, CLASSES, REPORT, explanations_folder="explanations"
    )
    page = transform_in_s3.get_object(Bucket=BUCKET, Key="evaluation/job/report.html")
    after_matrix = page["Body"].read().decode().split("alt='confusion matrix'")[1]
    assert "<h2>Explanations</h2>" in after_matrix
    assert "href='explanations/report.html'" in after_matrix
    without = evaluation.render_html_report(evaluation.score([], CLASSES, 3), b"png")
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
    transform_in_s3, settings_with, names, monkeypatch, minimum, fails
):
    from sagemaker_lifecycle import tasks

    monkeypatch.setattr(tasks, "_s3_client", lambda: transform_in_s3)
    # The report's prefix is the run's (the registered model version points at it).
    monkeypatch.setattr(tasks, "current_run_names", lambda settings: names)
    settings = settings_with({"aws": {"bucket": BUCKET}, "evaluation": {"min_accuracy": minimum}})
    transform = {"InputPath": INPUT, "OutputPath": OUTPUT, "TransformJobName": "job"}
    run = lambda: tasks.evaluate.function(settings, {"classes": CLASSES}, transform)  # noqa: E731
    if fails:
        with pytest.raises(ValueError, match=rf"accuracy 0.6667 on valid is below evaluation"
                                             rf"\.min_accuracy {minimum}$"):  # fmt: skip
            run()
    else:
        assert run()["accuracy"] == pytest.approx(4 / 6)
