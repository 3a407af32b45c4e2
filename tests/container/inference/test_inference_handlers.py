"""The handler chain as the sagemaker-inference toolkit calls it, in process."""

from __future__ import annotations

import base64
import inspect
import io
import json
import re
from pathlib import Path

import inference
import pytest
from classifier.errors import ClientError
from PIL import Image


def picture(color: tuple[int, int, int] = (200, 40, 40), fmt: str = "JPEG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (50, 40), color).save(buffer, format=fmt)
    return buffer.getvalue()


def invoke(model: object, body: bytes | str, content_type: str, accept: str) -> tuple[str, str]:
    """One request through input_fn -> predict_fn -> output_fn, as the toolkit chains them."""
    data = inference.input_fn(body, content_type)
    return inference.output_fn(inference.predict_fn(data, model), accept)


@pytest.fixture(scope="module")
def model(untrained_model_dir: Path) -> object:
    return inference.model_fn(str(untrained_model_dir))


def test_handlers_have_the_arities_the_toolkit_counts() -> None:
    """The toolkit passes a trailing context when a handler takes one more parameter."""
    arity = {
        name: len(inspect.signature(getattr(inference, name)).parameters)
        for name in ("model_fn", "input_fn", "predict_fn", "output_fn")
    }
    assert arity == {"model_fn": 1, "input_fn": 2, "predict_fn": 2, "output_fn": 2}
    assert not hasattr(inference, "transform_fn")  # exclusive with the three above


@pytest.mark.parametrize("content_type", ["image/jpeg", "image/png", "application/x-image"])
def test_a_picture_gets_the_top_classes_most_probable_first(
    model: object, content_type: str
) -> None:
    fmt = "PNG" if content_type == "image/png" else "JPEG"
    body, response_type = invoke(model, picture(fmt=fmt), content_type, "application/json")

    predictions = json.loads(body)["predictions"]
    assert response_type == "application/json"
    assert len(predictions) == 3
    assert sorted(p["label"] for p in predictions) == model.class_names
    probabilities = [p["probability"] for p in predictions]
    assert probabilities == sorted(probabilities, reverse=True)
    assert sum(probabilities) == pytest.approx(1.0, abs=1e-5)


def test_a_json_batch_answers_a_list_in_request_order_with_top_k(model: object) -> None:
    colors = [(250, 10, 10), (10, 250, 10), (10, 10, 250)]
    instances = [base64.b64encode(picture(c)).decode() for c in colors]
    request = json.dumps({"instances": instances, "top_k": 1})

    documents = json.loads(invoke(model, request, "application/json", "application/json")[0])
    single = [
        json.loads(invoke(model, picture(c), "image/jpeg", "application/json")[0]) for c in colors
    ]

    assert [len(d["predictions"]) for d in documents] == [1, 1, 1]
    batched = [d["predictions"][0] for d in documents]
    alone = [s["predictions"][0] for s in single]
    assert [p["label"] for p in batched] == [p["label"] for p in alone]
    # A batch may round differently from single pictures in the last digit (other kernels).
    assert [p["probability"] for p in batched] == pytest.approx(
        [p["probability"] for p in alone], abs=1e-5
    )


def test_csv_has_one_line_per_picture_with_label_probability_pairs(model: object) -> None:
    instances = [base64.b64encode(picture()).decode()] * 2
    request = json.dumps({"instances": instances, "top_k": 2})

    body, response_type = invoke(model, request, "application/json", "text/csv")

    assert response_type == "text/csv"
    lines = body.splitlines()
    assert len(lines) == 2
    pair = r"\d{3}\.[A-Za-z_]+,[01]\.\d{6}"
    assert all(re.fullmatch(f"{pair},{pair}", line) for line in lines)
    label, probability = lines[0].split(",")[:2]
    assert label in model.class_names and 0 < float(probability) <= 1


def test_top_k_defaults_to_the_environment_capped_at_the_class_count(
    model: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLASSIFIER_TOP_K", "1")
    assert len(json.loads(invoke(model, picture(), "image/jpeg", "*/*")[0])["predictions"]) == 1
    monkeypatch.setenv("CLASSIFIER_TOP_K", "50")
    assert len(json.loads(invoke(model, picture(), "image/jpeg", "")[0])["predictions"]) == 3


def test_a_picture_over_the_pixel_cap_is_refused_before_it_is_decoded(model: object) -> None:
    buffer = io.BytesIO()
    Image.new("L", (8000, 7000)).save(buffer, format="PNG")  # 56 Mpx, a few hundred kB
    with pytest.raises(ClientError, match="8000x7000 pixels is more than") as raised:
        invoke(model, buffer.getvalue(), "image/png", "application/json")
    assert raised.value.status_code == 413


@pytest.mark.parametrize(
    ("body", "content_type", "accept", "status", "message"),
    [
        (b"not a picture", "image/jpeg", "application/json", 400, "not a readable picture"),
        (b"GIF", "text/plain", "application/json", 415, "unsupported content type 'text/plain'"),
        (picture(), "image/jpeg", "application/xml", 406, "unsupported Accept"),
        ("{broken", "application/json", "application/json", 400, "not valid JSON"),
        ('{"image": "***"}', "application/json", "application/json", 400, "not valid base64"),
        ('{"instances": [7]}', "application/json", "text/csv", 400, "instances[0] must be"),
        ('{"pictures": []}', "application/json", "text/csv", 400, 'must be {"image"'),
        ('{"image": "", "top_k": 0}', "application/json", "text/csv", 400, "top_k must be"),
    ],
)
def test_bad_requests_raise_client_errors_with_an_http_status(
    model: object, body: bytes | str, content_type: str, accept: str, status: int, message: str
) -> None:
    with pytest.raises(ClientError, match=re.escape(message)) as raised:
        invoke(model, body, content_type, accept)
    assert raised.value.status_code == status
    assert isinstance(raised.value, ValueError)
