"""Child processes for jobs and endpoints: each in its own process group (so a stop reaches every
process the script started), stdout and stderr pumped line by line to a callback as they come."""

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable

import psutil

log = logging.getLogger(__name__)
STDERR_TAIL_LINES = 20


class ManagedProcess:
    """A started child process.

    ``on_line(text, stream_name)`` is called from reader threads for each line (without its
    newline) of stdout (``"stdout"``) and stderr (``"stderr"``). ``identity`` (pid + start time)
    is what to persist to find the process group again after a runtime restart.
    """

    def __init__(self, argv, env, cwd, on_line: Callable[[str, str], None]):
        self.argv = list(argv)
        self._process = subprocess.Popen(
            self.argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self.pid = self._process.pid
        self.identity = {"pid": self.pid, "create_time": psutil.Process(self.pid).create_time()}
        self.stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
        self._readers = [
            threading.Thread(
                target=self._pump, args=(pipe, name, on_line), daemon=True, name=f"pump-{name}"
            )
            for pipe, name in ((self._process.stdout, "stdout"), (self._process.stderr, "stderr"))
        ]
        for reader in self._readers:
            reader.start()

    def _pump(self, pipe, name: str, on_line) -> None:
        for raw in iter(pipe.readline, b""):
            text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            if name == "stderr":
                self.stderr_tail.append(text)
            try:
                on_line(text, name)
            except Exception:
                log.exception("log line consumer failed")
        pipe.close()

    def wait(self, timeout: float | None = None) -> int | None:
        """The exit code once the process has exited (its leftover group members killed) and its
        output is drained; None on timeout."""
        try:
            code = self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        # As when a container's main process exits: what it left running in its group ends too
        # (and can no longer hold the output pipes open).
        signal_group(self.pid, signal.SIGKILL)
        for reader in self._readers:
            reader.join()
        return code

    def stop(self, grace_seconds: float) -> int:
        """SIGTERM the process group, SIGKILL it after ``grace_seconds``; returns the exit code."""
        signal_group(self.pid, signal.SIGTERM)
        code = self.wait(grace_seconds)
        if code is None:
            signal_group(self.pid, signal.SIGKILL)
            code = self.wait()
        return code


def signal_group(pgid: int, signum: int) -> None:
    """Send ``signum`` to a process group that may already be gone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def kill_leftover_group(identity: dict) -> bool:
    """SIGKILL the process group of a child recorded by an earlier runtime, if it still runs.

    The recorded start time tells the original leader from a process that reuses its pid; a pid
    is never reused while its process group lives, so members found under a dead leader's pgid
    are ours. Returns True when something was killed.
    """
    pgid = identity["pid"]
    try:
        leader = psutil.Process(pgid)
        if abs(leader.create_time() - identity["create_time"]) >= 0.01:
            return False  # pid reused: the old group ended before the pid could be reused
    except psutil.NoSuchProcess:
        if not _group_members(pgid):
            return False
    signal_group(pgid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _group_members(pgid):
        time.sleep(0.05)
    return True


def _group_members(pgid: int) -> list[psutil.Process]:
    return [
        p
        for p in psutil.process_iter(["status"])
        if _pgid_of(p) == pgid and p.info["status"] != psutil.STATUS_ZOMBIE
    ]


def _pgid_of(process: psutil.Process) -> int | None:
    try:
        return os.getpgid(process.pid)
    except (ProcessLookupError, PermissionError):
        return None
