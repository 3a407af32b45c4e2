"""One model server child process, seen from the runtime: start, health, requests, stop.

The server (``model_server.py``) runs under the container environment's Python in its own
process group (the executor's ManagedProcess), so stopping it also stops anything the user's
handlers started. A root runtime runs it sandboxed (:mod:`~local_sagemaker.executor.sandbox`):
as a job user who owns only the server's own folder (its port file and HOME) and reads the model
dir, which it also sees at ``/opt/ml/model``, as in an inference container. Its stdout and
stderr lines go to ``on_output`` (the endpoint's or transform job's log stream) as they appear.
"""

from __future__ import annotations

import http.client
import os
import queue
import secrets
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from local_sagemaker.executor.processes import ManagedProcess
from local_sagemaker.executor.sandbox import CONTAINER_ROOT, Sandbox, python_paths

MODEL_SERVER_SCRIPT = Path(__file__).with_name("model_server.py")
# SageMaker gives a container 4 minutes to answer /ping with 200 (sagemaker-behaviour.md 2.4).
STARTUP_TIMEOUT_S = 240.0
STOP_GRACE_S = 5.0


class ModelServerStartError(RuntimeError):
    """The model server exited or never became healthy; the message carries its last output."""


class ModelServerProcess:
    """A started model server: HTTP access through ``request``, then ``stop``.

    Callers may rely on: ``request`` being safe from many threads at once (each thread borrows
    its own keep-alive connection), ``stop`` being idempotent, and ``identity`` being what
    :func:`~local_sagemaker.executor.processes.kill_leftover_group` needs after a runtime crash.
    """

    def __init__(
        self,
        python: str,
        model_dir: Path,
        environment: Mapping[str, str],
        on_output: Callable[[str], None],
        invocation_timeout_s: float = 60.0,
        on_started: Callable[[dict], None] | None = None,
    ) -> None:
        self.invocation_timeout_s = invocation_timeout_s
        # Several servers (instances) may load the same model dir: each has its own folder.
        self._own_dir = model_dir.parent / f"{model_dir.name}.{secrets.token_hex(4)}"
        self._own_dir.mkdir()
        self._port_file = self._own_dir / "port"
        self._connections: queue.SimpleQueue[http.client.HTTPConnection] = queue.SimpleQueue()
        self.port: int | None = None
        try:
            self._process = ManagedProcess(
                [
                    python,
                    str(MODEL_SERVER_SCRIPT),
                    *("--model-dir", str(model_dir), "--port-file", str(self._port_file)),
                ],
                env={**os.environ, "PYTHONUNBUFFERED": "1", **environment},
                cwd=model_dir,
                on_line=lambda text, _stream: on_output(text),
                sandbox=self._sandbox(python, model_dir, environment),
                on_started=on_started,
            )
        except OSError:
            shutil.rmtree(self._own_dir, ignore_errors=True)
            raise
        self.identity = self._process.identity

    def _sandbox(self, python: str, model_dir: Path, environment: Mapping[str, str]) -> Sandbox:
        code_dir = Path(environment.get("SAGEMAKER_SUBMIT_DIRECTORY", ""))
        return Sandbox(
            writable=self._own_dir,
            readable=(
                model_dir,
                MODEL_SERVER_SCRIPT.parent,
                *python_paths(shutil.which(python) or python),
                *([code_dir] if code_dir.is_absolute() and code_dir.is_dir() else []),
            ),
            mounts=((CONTAINER_ROOT, self._own_dir), (f"{CONTAINER_ROOT}/model", model_dir)),
        )

    def wait_until_healthy(self, timeout_s: float = STARTUP_TIMEOUT_S) -> None:
        """Block until /ping answers 200; raise ModelServerStartError (and stop) otherwise."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            exit_code = self._process.wait(timeout=0)
            if exit_code is not None:
                raise ModelServerStartError(
                    f"The model server exited with status {exit_code} before answering /ping: "
                    f"{self.output_tail()}"
                )
            if self.port is None and self._port_file.exists():
                self.port = int(self._port_file.read_text())
            if self.port is not None and self.request("GET", "/ping")[0] == 200:
                return
            time.sleep(0.05)
        self.stop()
        raise ModelServerStartError(
            f"The model server did not answer /ping with 200 within {timeout_s:.0f} s: "
            f"{self.output_tail()}"
        )

    def output_tail(self) -> str:
        """The last lines the server wrote to stderr (where tracebacks go)."""
        return "\n".join(self._process.stderr_tail) or "(no output)"

    def is_running(self) -> bool:
        return self._process.wait(timeout=0) is None

    def request(
        self, method: str, path: str, body: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """One HTTP exchange with the server: (status, lower-cased headers, body).

        Raises TimeoutError when the server takes longer than ``invocation_timeout_s``, and
        OSError / http.client.HTTPException when it cannot be reached.
        """
        try:
            connection = self._connections.get_nowait()
            reused = True
        except queue.Empty:
            connection, reused = self._connect(), False
        try:
            response = self._exchange(connection, method, path, body, headers)
        except TimeoutError:
            connection.close()
            raise
        except (OSError, http.client.HTTPException):
            connection.close()
            if not reused:
                raise
            # The server closed an idle keep-alive connection: not the model's failure.
            connection = self._connect()
            response = self._exchange(connection, method, path, body, headers)
        self._connections.put(connection)
        return response

    def _connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.invocation_timeout_s)

    @staticmethod
    def _exchange(connection, method, path, body, headers) -> tuple[int, dict[str, str], bytes]:
        connection.request(method, path, body=body, headers=dict(headers or {}))
        response = connection.getresponse()
        payload = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, payload

    def stop(self) -> None:
        """Terminate the whole process group (SIGTERM, then SIGKILL after a grace period)."""
        if self.is_running():
            self._process.stop(STOP_GRACE_S)
        while not self._connections.empty():
            self._connections.get_nowait().close()
        shutil.rmtree(self._own_dir, ignore_errors=True)
