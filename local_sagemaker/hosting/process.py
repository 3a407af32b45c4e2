"""One model server child process, seen from the runtime: start, health, requests, stop.

The server (``model_server.py``) runs under the container environment's Python in its own
process group, so stopping it also stops anything the user's handlers started. Its stdout and
stderr lines go to ``on_output`` (the endpoint's or transform job's log stream) as they appear.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import queue
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path

MODEL_SERVER_SCRIPT = Path(__file__).with_name("model_server.py")
# SageMaker gives a container 4 minutes to answer /ping with 200 (sagemaker-behaviour.md 2.4).
STARTUP_TIMEOUT_S = 240.0
STOP_GRACE_S = 5.0
FAILURE_TAIL_LINES = 20


class ModelServerStartError(RuntimeError):
    """The model server exited or never became healthy; the message carries its last output."""


class ModelServerProcess:
    """A started model server: ``url``-less HTTP access through ``request``, then ``stop``.

    Callers may rely on: ``request`` being safe from many threads at once (each thread borrows
    its own keep-alive connection), ``stop`` being idempotent, and ``pid`` naming the process
    group leader (for cleaning up after a runtime crash).
    """

    def __init__(
        self,
        python: str,
        model_dir: Path,
        environment: Mapping[str, str],
        on_output: Callable[[str], None],
        invocation_timeout_s: float = 60.0,
    ) -> None:
        self.model_dir = model_dir
        self.invocation_timeout_s = invocation_timeout_s
        self._port_file = model_dir.parent / f"{model_dir.name}.port"
        self._port_file.unlink(missing_ok=True)
        self._tail: deque[str] = deque(maxlen=FAILURE_TAIL_LINES)
        self._on_output = on_output
        self._connections: queue.SimpleQueue[http.client.HTTPConnection] = queue.SimpleQueue()
        self.port: int | None = None
        self._process = subprocess.Popen(
            [
                python,
                str(MODEL_SERVER_SCRIPT),
                *("--model-dir", str(model_dir), "--port-file", str(self._port_file)),
            ],
            env={**os.environ, "PYTHONUNBUFFERED": "1", **environment},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pid = self._process.pid
        self._pump = threading.Thread(target=self._pump_output, daemon=True)
        self._pump.start()

    def _pump_output(self) -> None:
        for raw in self._process.stdout:
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            self._tail.append(line)
            self._on_output(line)

    def wait_until_healthy(self, timeout_s: float = STARTUP_TIMEOUT_S) -> None:
        """Block until /ping answers 200; raise ModelServerStartError (and stop) otherwise."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._pump.join(timeout=2)
                raise ModelServerStartError(
                    f"The model server exited with status {self._process.returncode} before "
                    f"answering /ping: {self.output_tail()}"
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
        return "\n".join(self._tail) or "(no output)"

    def is_running(self) -> bool:
        return self._process.poll() is None

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
        if self._process.poll() is None:
            signal_process_group(self.pid, signal.SIGTERM)
            try:
                self._process.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                signal_process_group(self.pid, signal.SIGKILL)
                self._process.wait()
        while not self._connections.empty():
            self._connections.get_nowait().close()
        self._port_file.unlink(missing_ok=True)


def signal_process_group(pgid: int, signum: int) -> None:
    """Signal a process group, ignoring one that is already gone."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)


def kill_leftover_model_server(pid: int) -> bool:
    """Kill the process group of a model server left by a runtime that died; True if killed.

    The pid is checked to still be a model server (its command line names model_server.py), so a
    recycled pid that now belongs to something else is left alone.
    """
    try:
        command_line = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    if MODEL_SERVER_SCRIPT.name.encode() not in command_line:
        return False
    signal_process_group(pid, signal.SIGKILL)
    return True
