"""What the inference handlers read and write.

Requests (``Content-Type``):

- ``image/jpeg``, ``image/png``, ``application/x-image`` or any other ``image/*``: one picture;
- ``application/json``: ``{"image": "<base64>"}`` for one picture or
  ``{"instances": ["<base64>", ...]}`` for several; an optional ``"top_k": <int>`` overrides
  the number of classes returned.

Responses (``Accept``; missing or ``*/*`` means JSON):

- ``application/json``: for one picture
  ``{"predictions": [{"label": "001.Affenpinscher", "probability": 0.93}, ...]}``, the
  ``top_k`` most probable classes, most probable first; for an ``instances`` request a JSON
  list of such objects, in request order.
- ``text/csv``: one line per picture, in request order:
  ``label_1,probability_1,label_2,probability_2,...`` for the ``top_k`` classes, most
  probable first, so the first two columns are always the top-1 prediction. No header.
  Probabilities have 6 decimals; labels are quoted only if they contain a comma or a quote.

``top_k`` defaults to the ``CLASSIFIER_TOP_K`` environment variable, else 3, and is capped at
the number of classes. Bad requests raise ``ClientError``: 400 for an unreadable body,
415 for an unsupported content type, 406 for an unsupported Accept.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
import os
from dataclasses import dataclass

import torch

from classifier.artifact import Classifier
from classifier.errors import ClientError
from classifier.images import PictureTooLarge, load_image, normalize

JSON = "application/json"
CSV = "text/csv"
IMAGE_TYPES_WITHOUT_IMAGE_PREFIX = ("application/x-image", "application/octet-stream")
DEFAULT_TOP_K = 3
# Pictures per forward pass: bounds memory for large JSON batches.
MAX_FORWARD_BATCH = 64


@dataclass(frozen=True)
class PictureRequest:
    """Decoded request: encoded pictures, whether the caller sent a batch, and top_k."""

    pictures: list[bytes]
    is_batch: bool
    top_k: int | None = None


@dataclass(frozen=True)
class Prediction:
    """Per picture: the top classes as (label, probability), most probable first."""

    rankings: list[list[tuple[str, float]]]
    is_batch: bool


def media_type(header: str | None) -> str:
    """``'image/jpeg; q=1'`` -> ``'image/jpeg'`` (lower case, parameters dropped)."""
    return (header or "").split(";", 1)[0].strip().lower()


def parse_request(body: bytes | str, content_type: str | None) -> PictureRequest:
    """Turn a request body into ``PictureRequest``; ``ClientError`` when it cannot be read.

    As in the toolkit, picture bodies arrive as bytes and JSON bodies as str (or bytes).
    """
    kind = media_type(content_type)
    if kind.startswith("image/") or kind in IMAGE_TYPES_WITHOUT_IMAGE_PREFIX:
        return PictureRequest([bytes(body)], is_batch=False)
    if kind == JSON:
        return _parse_json(body)
    raise ClientError(
        f"unsupported content type {content_type!r}: send image/jpeg, image/png, "
        f"application/x-image or {JSON}",
        status_code=415,
    )


def _parse_json(body: bytes | str) -> PictureRequest:
    try:
        document = json.loads(body)
    except ValueError as error:
        raise ClientError(f"request body is not valid JSON: {error}") from error
    if not isinstance(document, dict) or not ({"image", "instances"} & document.keys()):
        raise ClientError(
            'a JSON request must be {"image": "<base64>"} or {"instances": ["<base64>", ...]}'
        )
    top_k = document.get("top_k")
    if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
        raise ClientError(f"top_k must be a positive integer, got {top_k!r}")
    if "image" in document:
        return PictureRequest([_from_base64(document["image"], "image")], False, top_k)
    instances = document["instances"]
    if not isinstance(instances, list) or not instances:
        raise ClientError('"instances" must be a non-empty list of base64 strings')
    pictures = [_from_base64(item, f"instances[{i}]") for i, item in enumerate(instances)]
    return PictureRequest(pictures, True, top_k)


def _from_base64(value: object, where: str) -> bytes:
    if not isinstance(value, str):
        raise ClientError(f"{where} must be a base64 string, got {type(value).__name__}")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as error:
        raise ClientError(f"{where} is not valid base64: {error}") from error


def predict(request: PictureRequest, classifier: Classifier) -> Prediction:
    """Classify every picture of the request; ``ClientError`` names an unreadable one."""
    pictures = torch.stack(
        [
            _decode(data, classifier.image_size, i, request)
            for i, data in enumerate(request.pictures)
        ]
    )
    top_k = min(request.top_k or default_top_k(), len(classifier.class_names))
    rankings = []
    with torch.inference_mode():
        for chunk in pictures.split(MAX_FORWARD_BATCH):
            batch = normalize(chunk.to(classifier.device), classifier.mean, classifier.std)
            probabilities = torch.softmax(classifier.network(batch).float(), dim=1)
            values, indices = probabilities.topk(top_k, dim=1)
            rankings += [
                [(classifier.class_names[i], p) for i, p in zip(row_i, row_p, strict=True)]
                for row_i, row_p in zip(indices.tolist(), values.tolist(), strict=True)
            ]
    return Prediction(rankings, request.is_batch)


def _decode(data: bytes, size: int, index: int, request: PictureRequest) -> torch.Tensor:
    where = f"instances[{index}]" if request.is_batch else "the request body"
    try:
        return load_image(data, size)
    except PictureTooLarge as error:
        raise ClientError(f"{where} is too large: {error}", status_code=413) from error
    except OSError as error:
        raise ClientError(f"{where} is not a readable picture: {error}") from error


def default_top_k() -> int:
    return int(os.environ.get("CLASSIFIER_TOP_K", DEFAULT_TOP_K))


def render(prediction: Prediction, accept: str | None) -> tuple[str, str]:
    """(body, content type) for ``accept``; ``ClientError`` 406 for other types."""
    kind = media_type(accept)
    if kind in ("", "*/*", JSON):
        return _to_json(prediction), JSON
    if kind == CSV:
        return _to_csv(prediction), CSV
    raise ClientError(f"unsupported Accept {accept!r}: ask for {JSON} or {CSV}", status_code=406)


def _to_json(prediction: Prediction) -> str:
    documents = [
        {"predictions": [{"label": label, "probability": round(p, 6)} for label, p in ranking]}
        for ranking in prediction.rankings
    ]
    return json.dumps(documents if prediction.is_batch else documents[0])


def _to_csv(prediction: Prediction) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for ranking in prediction.rankings:
        writer.writerow([cell for label, p in ranking for cell in (label, f"{p:.6f}")])
    return out.getvalue()
