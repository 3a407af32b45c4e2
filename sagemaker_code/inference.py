"""Inference handlers for SageMaker's PyTorch serving toolkit (endpoints and batch transform).

The toolkit imports this module from ``<model dir>/code`` and calls ``model_fn`` once, then
per request ``input_fn(body, content_type)`` -> ``predict_fn(data, model)`` ->
``output_fn(prediction, accept)``. Request and response formats, and the HTTP statuses of bad
requests, are documented in ``classifier/serving.py``. In short: send a JPEG/PNG (or JSON with
base64 pictures), get ``{"predictions": [{"label": ..., "probability": ...}, ...]}`` or, with
``Accept: text/csv``, one ``label,probability[,label,probability...]`` line per picture.
"""

from __future__ import annotations

from classifier import serving
from classifier.artifact import Classifier, load_model


def model_fn(model_dir: str) -> Classifier:
    """The network, class names and preprocessing saved in ``<model_dir>/model.pt``."""
    return load_model(model_dir)


def input_fn(request_body: bytes | str, content_type: str) -> serving.PictureRequest:
    return serving.parse_request(request_body, content_type)


def predict_fn(data: serving.PictureRequest, model: Classifier) -> serving.Prediction:
    return serving.predict(data, model)


def output_fn(prediction: serving.Prediction, accept: str) -> tuple[str, str]:
    return serving.render(prediction, accept)
