"""The explanation job (sagemaker_code/explain.py) as a processing job in the local runtime, with
the CreateProcessingJob request the pipeline builds (request_builders.explanation_job_request),
over a model.tar.gz and a validation split in S3; its report is read back from S3. (Pictures of
every size and mode are tested in tests/container/explanations.)"""

import json
import subprocess
import sys
from datetime import datetime

import pytest
from hosting_support import build_classifier_model_dir, container_python
from processing_support import processing_log_messages, wait_for_processing
from runtime_support import BUCKET, PYTORCH_IMAGE, REPO_ROOT

from demo.dataset import class_names, make_dataset
from local_sagemaker.executor.archives import pack_directory

# Airflow puts plugins/ on sys.path; the pipeline's package is imported the same way here.
if str(REPO_ROOT / "plugins") not in sys.path:
    sys.path.insert(0, str(REPO_ROOT / "plugins"))
from sagemaker_lifecycle.naming import run_names
from sagemaker_lifecycle.request_builders import explanation_job_request
from sagemaker_lifecycle.settings import deep_merge, load_settings
from sagemaker_lifecycle.staging import upload_code

pytestmark = pytest.mark.e2e
NUM_CLASSES = 3
MODEL_ARTIFACT = f"s3://{BUCKET}/jobs/train/output/model.tar.gz"
REPORT_URI = f"s3://{BUCKET}/evaluation/transform/report.json"


@pytest.fixture(scope="module")
def finished(runtime, tmp_path_factory):
    """The explanation job of an (untrained) simplecnn over 3 x 3 validation pictures, ended."""
    probe = subprocess.run([container_python(), "-c", "import captum"], capture_output=True)
    assert probe.returncode == 0, (
        f"the container environment {container_python()} lacks Captum: rebuild it from its "
        "lock (make envs)"
    )
    root = tmp_path_factory.mktemp("explanations")
    dataset = make_dataset(
        root / "dataset", NUM_CLASSES, {"train": 1, "valid": 3, "test": 1}, image_size=48
    )
    model_dir = build_classifier_model_dir(root / "model", class_names(NUM_CLASSES))
    s3, sagemaker = runtime.client("s3"), runtime.client("sagemaker")
    s3.upload_file(
        str(pack_directory(model_dir, root / "model.tar.gz")),
        BUCKET,
        MODEL_ARTIFACT.split("/", 3)[3],
    )
    for picture in sorted(p for p in (dataset / "valid").rglob("*") if p.is_file()):
        key = f"datasets/snap/valid/{picture.relative_to(dataset / 'valid').as_posix()}"
        s3.upload_file(str(picture), BUCKET, key)
    _, code_uri = upload_code(s3, BUCKET, "code")
    settings = deep_merge(
        load_settings(),
        {"aws": {"bucket": BUCKET}, "images": {"training": PYTORCH_IMAGE},
         "explanations": {"samples_per_class": 1, "max_misclassified": 4}},
    )  # fmt: skip
    staged = {"code_uri": code_uri, "channels": {"valid": f"s3://{BUCKET}/datasets/snap/valid/"}}
    names = run_names("dogbreed", "manual__explain", datetime(2026, 12, 1))
    request = explanation_job_request(settings, names, staged, MODEL_ARTIFACT, REPORT_URI)
    sagemaker.create_processing_job(**request)
    description = wait_for_processing(sagemaker, names.explanation_job, timeout=240)
    return {"description": description, "s3": s3, "logs": runtime.client("logs")}


def read(s3, key: str) -> bytes:
    return s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()


def test_the_job_completes_and_writes_the_report_beside_the_evaluation(finished):
    description = finished["description"]
    assert description["ProcessingJobStatus"] == "Completed", description.get("FailureReason")
    page = read(finished["s3"], "evaluation/transform/explanations/report.html").decode()
    assert "Faithfulness (deletion test)" in page and "Ratio: <b>" in page
    summary = json.loads(read(finished["s3"], "evaluation/transform/explanations/summary.json"))
    assert summary["deletion"]["images"] == NUM_CLASSES * 3
    assert summary["method"] == "gradcam" and summary["backbone"] == "simplecnn"


def test_every_overlay_the_report_shows_is_a_png_in_s3(finished):
    s3 = finished["s3"]
    summary = json.loads(read(s3, "evaluation/transform/explanations/summary.json"))
    cards = [card for cards in summary["sections"].values() for card in cards]
    assert len(summary["sections"]["A sample per class"]) == NUM_CLASSES
    overlays = {path for card in cards for path in card["overlays"].values()}
    assert overlays
    for path in overlays:
        assert read(s3, f"evaluation/transform/explanations/{path}").startswith(b"\x89PNG")
    # Each card has the model's top-k answers (3 classes: all of them), most probable first.
    for card in cards:
        probabilities = [probability for _, probability in card["top_k"]]
        assert len(probabilities) == NUM_CLASSES and probabilities == sorted(probabilities)[::-1]


def test_the_job_log_ends_with_the_deletion_figure(finished):
    _, messages = processing_log_messages(
        finished["logs"], finished["description"]["ProcessingJobName"]
    )
    result = next(m for m in messages if m.startswith("#explanation-result "))
    figure = json.loads(result.removeprefix("#explanation-result "))["deletion"]
    assert figure["fraction"] == 0.2 and figure["images"] == NUM_CLASSES * 3
