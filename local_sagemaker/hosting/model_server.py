"""The model server that runs inside an endpoint or transform "container" (stdlib only).

It plays the part of the sagemaker-inference toolkit's server in AWS's framework images, so
any handler module written for that toolkit runs here unchanged:

- ``<code dir>`` (``SAGEMAKER_SUBMIT_DIRECTORY`` when it names a local directory, else
  ``<model dir>/code``) goes first on ``sys.path``; the module ``SAGEMAKER_PROGRAM``
  (default ``inference.py``) is imported from it and ``model_fn(model_dir)`` is called once,
  before the server accepts connections.
- Per request: ``transform_fn(model, body, content_type, accept)`` or
  ``input_fn(body, content_type)`` -> ``predict_fn(data, model)`` -> ``output_fn(prediction,
  accept)``; each handler may take a trailing ``context``. Defining ``transform_fn`` together
  with any of the other three is a ValueError at start-up, as in the toolkit.
- JSON and CSV bodies arrive decoded to ``str``; every other type arrives as ``bytes``. A missing
  or ``*/*`` Accept becomes ``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT`` (default application/json).
  A handler returning ``(body, content_type)`` sets the response type.
- An exception with an integer ``status_code`` attribute (the toolkit's
  BaseInferenceToolkitError family) answers with that status; any other exception answers 500.
  Either way the body is ``<message>\\n<traceback>`` and the server keeps serving.

Routes: ``GET /ping`` (200 once the model is loaded), ``POST /invocations`` and
``GET /execution-parameters`` (batch-transform tuning read by the transform runner).

Run: ``python model_server.py --model-dir DIR --port-file FILE [--host 127.0.0.1] [--port 0]``.
The bound port is written to FILE (atomically) once the model is loaded and the socket listens,
so the parent never races for a free port. A failing ``model_fn`` prints its traceback to stderr
and exits with status 1 before the port file appears.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import os
import sys
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

JSON = "application/json"
CSV = "text/csv"
ANY = "*/*"
# The toolkit decodes only these types to str (sagemaker_inference.content_types.UTF8_TYPES).
UTF8_TYPES = (JSON, CSV)
CHAINED_HANDLERS = ("input_fn", "predict_fn", "output_fn")


class UnsupportedFormatError(Exception):
    """The toolkit's 415 error, raised by the default input/output handlers."""

    status_code = HTTPStatus.UNSUPPORTED_MEDIA_TYPE

    def __init__(self, content_type: str | None) -> None:
        super().__init__(f"Content type {content_type} is not supported by this framework.")


class RequestContext:
    """What a handler taking a trailing ``context`` argument receives for one request.

    ``request_headers`` maps lower-cased header names to values; ``custom_attributes`` is the
    ``X-Amzn-SageMaker-Custom-Attributes`` header (or None); ``model_dir`` is the model dir.
    Like the toolkit's (MMS) context it also has ``system_properties`` (``model_dir``, and
    ``gpu_id`` None: handlers pick their device themselves) and ``get_request_header(0, name)``.
    """

    def __init__(self, headers: dict[str, str], model_dir: str) -> None:
        self.request_headers = headers
        self.custom_attributes = headers.get("x-amzn-sagemaker-custom-attributes")
        self.model_dir = model_dir
        self.system_properties = {"model_dir": model_dir, "gpu_id": None}

    def get_request_header(self, batch_index: int, name: str) -> str | None:
        """The toolkit's accessor; this server never batches requests, so ``batch_index`` is 0."""
        return self.request_headers.get(name.lower())


def default_model_fn(model_dir: str) -> Any:
    raise NotImplementedError(
        "The handler module defines no model_fn: it must load the model from "
        f"{model_dir} (the sagemaker-inference toolkit has no framework-free default)."
    )


def default_input_fn(body: Any, content_type: str | None) -> Any:
    """JSON and CSV like the toolkit's decoder; other types are refused with 415."""
    if content_type == JSON:
        return json.loads(body)
    if content_type == CSV:
        return [line.split(",") for line in body.splitlines() if line]
    raise UnsupportedFormatError(content_type)


def default_predict_fn(data: Any, model: Any) -> Any:
    return model(data)


def default_output_fn(prediction: Any, accept: str) -> tuple[str, str]:
    """JSON and CSV like the toolkit's encoder; other types are refused with 415."""
    if accept == JSON:
        return json.dumps(prediction), JSON
    if accept == CSV:
        rows = prediction if prediction and isinstance(prediction[0], list) else [prediction]
        return "\n".join(",".join(str(value) for value in row) for row in rows), CSV
    raise UnsupportedFormatError(accept)


def call_handler(function: Any, args: tuple, context: RequestContext) -> Any:
    """Call a handler, adding ``context`` when it takes one more positional argument."""
    parameters = inspect.signature(function).parameters.values()
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) > len(args):
        return function(*args, context)
    return function(*args)


class HandlerChain:
    """The user's handler module bound to its loaded model."""

    def __init__(self, module: ModuleType, model_dir: str) -> None:
        self.model_dir = model_dir
        self.transform_fn = getattr(module, "transform_fn", None)
        defined = [name for name in CHAINED_HANDLERS if hasattr(module, name)]
        if self.transform_fn is not None and defined:
            raise ValueError(
                "Cannot use transform_fn implementation in conjunction with input_fn, "
                f"predict_fn, and/or output_fn implementation (module defines {defined})"
            )
        self.input_fn = getattr(module, "input_fn", default_input_fn)
        self.predict_fn = getattr(module, "predict_fn", default_predict_fn)
        self.output_fn = getattr(module, "output_fn", default_output_fn)
        model_fn = getattr(module, "model_fn", default_model_fn)
        self.model = model_fn(model_dir)

    def invoke(
        self, body: bytes, content_type: str | None, accept: str, context: RequestContext
    ) -> tuple[bytes, str]:
        """Run one request through the chain; returns (response body, response content type)."""
        data: Any = body.decode("utf-8") if content_type in UTF8_TYPES else body
        if self.transform_fn is not None:
            result = call_handler(
                self.transform_fn, (self.model, data, content_type, accept), context
            )
        else:
            decoded = call_handler(self.input_fn, (data, content_type), context)
            prediction = call_handler(self.predict_fn, (decoded, self.model), context)
            result = call_handler(self.output_fn, (prediction, accept), context)
        response, response_type = result if isinstance(result, tuple) else (result, accept)
        if isinstance(response, str):
            response = response.encode("utf-8")
        if not isinstance(response, (bytes, bytearray)):
            raise TypeError(
                f"The handlers returned {type(response).__name__}; the response body must be "
                "bytes or str (encode it in output_fn)"
            )
        return bytes(response), response_type


def import_handler_module(code_dir: Path, program: str) -> ModuleType:
    """Import SAGEMAKER_PROGRAM from ``code_dir``, with ``code_dir`` first on sys.path."""
    script = code_dir / program
    if not script.is_file():
        raise FileNotFoundError(
            f"Inference script {program} not found in {code_dir} (set SAGEMAKER_PROGRAM or put "
            "it in the model's code/ directory)"
        )
    sys.path.insert(0, str(code_dir))
    spec = importlib.util.spec_from_file_location(script.stem, script)
    module = importlib.util.module_from_spec(spec)
    sys.modules[script.stem] = module
    spec.loader.exec_module(module)
    return module


def resolve_code_dir(model_dir: Path) -> Path:
    """SAGEMAKER_SUBMIT_DIRECTORY when it is a local directory (or file:// URI), else model/code."""
    submit = os.environ.get("SAGEMAKER_SUBMIT_DIRECTORY", "")
    local = submit.removeprefix("file://")
    if local and Path(local).is_dir():
        return Path(local)
    return model_dir / "code"


def execution_parameters() -> dict[str, Any]:
    """``GET /execution-parameters``: the batch settings a transform job set, or defaults."""
    return {
        "MaxConcurrentTransforms": int(os.environ.get("SAGEMAKER_MAX_CONCURRENT_TRANSFORMS", "1")),
        "BatchStrategy": os.environ.get("SAGEMAKER_BATCH_STRATEGY", "MULTI_RECORD"),
        "MaxPayloadInMB": int(os.environ.get("SAGEMAKER_MAX_PAYLOAD_IN_MB", "6")),
    }


def make_request_handler(chain: HandlerChain, default_accept: str) -> type:
    class InvocationHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in separate writes: with Nagle's algorithm on, the body waits
        # for the client's delayed ACK, adding ~40 ms to every keep-alive request.
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            if self.path == "/ping":
                self.reply(HTTPStatus.OK, b"", JSON)
            elif self.path == "/execution-parameters":
                self.reply(HTTPStatus.OK, json.dumps(execution_parameters()).encode(), JSON)
            else:
                self.reply(HTTPStatus.NOT_FOUND, f"No route {self.path}".encode(), "text/plain")

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path != "/invocations":
                self.reply(HTTPStatus.NOT_FOUND, f"No route {self.path}".encode(), "text/plain")
                return
            accept = self.headers.get("Accept")
            if not accept or accept == ANY:
                accept = default_accept
            headers = {name.lower(): value for name, value in self.headers.items()}
            context = RequestContext(headers, chain.model_dir)
            try:
                response, response_type = chain.invoke(
                    body, self.headers.get("Content-Type"), accept, context
                )
            except Exception as error:
                status = getattr(error, "status_code", HTTPStatus.INTERNAL_SERVER_ERROR)
                trace = traceback.format_exc()
                sys.stderr.write(trace)
                self.reply(int(status), f"{error}\n{trace}".encode(), "text/plain")
                return
            self.reply(HTTPStatus.OK, response, response_type)

        def reply(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            # Health checks would flood the endpoint's log stream; log everything else.
            if self.path != "/ping":
                sys.stdout.write(f"{self.address_string()} - {format % args}\n")

    return InvocationHandler


def write_port_file(port_file: Path, port: int) -> None:
    partial = port_file.with_name(port_file.name + ".partial")
    partial.write_text(str(port))
    os.replace(partial, port_file)


def serve(model_dir: Path, port_file: Path, host: str, port: int) -> None:
    program = os.environ.get("SAGEMAKER_PROGRAM", "inference.py")
    module = import_handler_module(resolve_code_dir(model_dir), program)
    chain = HandlerChain(module, str(model_dir))
    default_accept = os.environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", JSON)
    server = ThreadingHTTPServer((host, port), make_request_handler(chain, default_accept))
    server.daemon_threads = True
    bound_port = server.server_address[1]
    print(f"Model server for {model_dir} ({program}) listening on {host}:{bound_port}", flush=True)
    write_port_file(port_file, bound_port)
    server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--port-file", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    # Line-buffer so the endpoint's log stream follows requests as they happen.
    sys.stdout.reconfigure(line_buffering=True)
    sys.stderr.reconfigure(line_buffering=True)
    serve(args.model_dir, args.port_file, args.host, args.port)


if __name__ == "__main__":
    main()
