"""Child processes for jobs and endpoints, stdout and stderr pumped line by line to a callback.

A job's process tree ends with the job, whatever its processes did to leave it. A tree is:

- the child's process group (``start_new_session``), which holds what it started plainly;
- every process whose environment carries the child's tree token (``LOCAL_SAGEMAKER_TREE``),
  which holds grandchildren that called ``setsid`` or double-forked out of the group;
- every process holding the child's stdout or stderr pipe open;
- for a sandboxed child (a root runtime's job, see :mod:`.sandbox`), every process of its job uid
  once the last process of its tree has ended, and after a runtime restart.

When the child exits (or is stopped) the whole tree is killed, so the pipes reach EOF and their
readers end; the readers are joined with a time limit all the same.
"""

import contextlib
import logging
import os
import secrets
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import psutil

from local_sagemaker.executor import sandbox as sandboxes

log = logging.getLogger(__name__)
STDERR_TAIL_LINES = 20
TREE_TOKEN_ENV = "LOCAL_SAGEMAKER_TREE"
# How long output readers may take to drain once the tree is dead.
READER_DRAIN_SECONDS = 5.0
# CloudWatch Logs takes events of up to 256 KiB; a longer line (or none at all) is split there.
MAX_LINE_BYTES = 256 * 1024


class ManagedProcess:
    """A started child process.

    ``on_line(text, stream_name)`` is called from reader threads for each line (without its
    newline) of stdout (``"stdout"``) and stderr (``"stderr"``); a line longer than
    ``MAX_LINE_BYTES`` arrives in pieces. ``identity`` (pid, start time, tree token, pipes) is
    what :func:`kill_tree` needs, and what to persist to find the tree after a runtime restart.
    With a ``sandbox`` and a root runtime the child runs as a job user in its own view of the
    machine (:mod:`.sandbox`); SandboxError says when it cannot. ``on_started(identity)`` runs
    before any output is read, so a caller that records the identity there has it recorded
    before anyone can see the child run.
    """

    def __init__(
        self,
        argv,
        env,
        cwd,
        on_line: Callable[[str, str], None],
        sandbox: sandboxes.Sandbox | None = None,
        on_started: Callable[[dict], None] | None = None,
    ):
        self.argv = list(argv)
        self.tree_token = secrets.token_hex(12)
        self._sandbox = sandbox if sandbox is not None and sandboxes.sandboxing() else None
        job_uid, launched = None, self.argv
        if self._sandbox is not None:
            sandboxes.require_sandbox()
            job_uid = sandboxes.job_users().lease(self._sandbox.writable)
            launched = sandboxes.sandboxed_argv(self._sandbox, job_uid, Path(cwd), self.argv)
            env = sandboxes.job_environment(env)
        try:
            self._process = subprocess.Popen(
                launched,
                cwd=cwd,
                env={**env, TREE_TOKEN_ENV: self.tree_token},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError:
            self._release_job_user()
            raise
        self.pid = self._process.pid
        self.pipe_inodes = [
            os.fstat(pipe.fileno()).st_ino for pipe in (self._process.stdout, self._process.stderr)
        ]
        self.identity = {
            "pid": self.pid,
            "pgid": self.pid,
            "create_time": psutil.Process(self.pid).create_time(),
            "tree_token": self.tree_token,
            "pipe_inodes": self.pipe_inodes,
        }
        if job_uid is not None:
            self.identity["job_uid"] = job_uid
        if on_started is not None:
            try:
                on_started(self.identity)
            except BaseException:  # unrecorded and unread, the child would be an orphan
                kill_tree(self.identity)
                self._release_job_user()
                raise
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
        for raw in iter(lambda: pipe.readline(MAX_LINE_BYTES), b""):
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
        # As when a container's main process exits: what it left running ends too (and can no
        # longer hold the output pipes open).
        kill_tree(self.identity)
        self._release_job_user()
        for reader in self._readers:
            reader.join(READER_DRAIN_SECONDS)
            if reader.is_alive():
                log.warning("output of %s still open after its tree was killed", self.argv[:2])
        return code

    def _release_job_user(self) -> None:
        """Give the job uid back (its last holder kills what still runs as it), once."""
        if self._sandbox is not None:
            sandbox, self._sandbox = self._sandbox, None
            sandboxes.job_users().release(sandbox.writable, lambda uid: kill_tree({"uid": uid}))

    def stop(self, grace_seconds: float) -> int:
        """SIGTERM the whole tree, SIGKILL it after ``grace_seconds``; returns the exit code."""
        signal_tree(self.identity, signal.SIGTERM)
        code = self.wait(grace_seconds)
        if code is None:
            kill_tree(self.identity)
            code = self.wait()
        return code


def each_started(on_started: Callable[[list[dict]], None]) -> Callable[[dict], None]:
    """An ``on_started`` for several children: ``on_started`` gets the identities of all the
    children started so far each time one starts (a job's hosts, an endpoint's instances)."""
    identities: list[dict] = []

    def started_one(identity: dict) -> None:
        identities.append(identity)
        on_started(list(identities))

    return started_one


def tree_members(identity: dict) -> list[psutil.Process]:
    """The live processes of a child's tree (see the module docstring), leader included.

    ``identity`` may leave out ``pgid`` or ``pipe_inodes`` (see :func:`kill_leftover_group`), and
    may name a ``uid`` all of whose processes are members.
    """
    pgid = identity.get("pgid")
    uid = identity.get("uid")
    token = identity.get("tree_token")
    pipes = {f"pipe:[{inode}]" for inode in identity.get("pipe_inodes", [])}
    own_pid = os.getpid()
    members = []
    for process in psutil.process_iter(["status", "uids"]):
        if process.pid == own_pid or process.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        in_group = pgid is not None and _pgid_of(process) == pgid
        as_uid = uid is not None and process.info["uids"] is not None
        as_uid = as_uid and process.info["uids"].real == uid
        if (
            in_group
            or as_uid
            or _carries_token(process.pid, token)
            or _holds_pipe(process.pid, pipes)
        ):
            members.append(process)
    return members


def signal_tree(identity: dict, signum: int) -> list[psutil.Process]:
    """Send ``signum`` to every member of the tree; returns the members signalled."""
    members = tree_members(identity)
    for member in members:
        with contextlib.suppress(psutil.Error):
            member.send_signal(signum)
    return members


def kill_tree(identity: dict, timeout: float = 5.0) -> bool:
    """SIGKILL the tree until no member is left (or ``timeout``); True when any was killed."""
    killed = False
    deadline = time.monotonic() + timeout
    while members := signal_tree(identity, signal.SIGKILL):
        killed = True
        psutil.wait_procs(members, timeout=0.5)
        if time.monotonic() > deadline:
            log.warning("processes %s of a stopped tree outlived SIGKILL", [m.pid for m in members])
            break
    return killed


def kill_leftover_group(identity: dict) -> bool:
    """SIGKILL the tree of a child recorded by an earlier runtime, if any of it still runs.

    Its pipes died with that runtime (their inode numbers may be reused), so the tree is found by
    its token, and by its process group unless the leader's pid now names a newer process: a pid
    is never reused while its group lives. Returns True when something was killed."""
    leftover = {
        "pid": identity["pid"],
        "tree_token": identity.get("tree_token"),
        "uid": identity.get("job_uid"),
    }
    try:
        leader = psutil.Process(identity["pid"])
        if abs(leader.create_time() - identity["create_time"]) < 0.01:
            leftover["pgid"] = identity["pid"]
    except psutil.NoSuchProcess:
        leftover["pgid"] = identity["pid"]  # a group outliving its leader is still ours
    return kill_tree(leftover)


def _carries_token(pid: int, token: str | None) -> bool:
    if not token:
        return False
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return f"{TREE_TOKEN_ENV}={token}".encode() in environ.split(b"\0")


def _holds_pipe(pid: int, pipes: set[str]) -> bool:
    if not pipes:
        return False
    try:
        descriptors = os.scandir(f"/proc/{pid}/fd")
    except OSError:
        return False
    with descriptors:
        for descriptor in descriptors:
            with contextlib.suppress(OSError):
                if os.readlink(descriptor.path) in pipes:
                    return True
    return False


def _pgid_of(process: psutil.Process) -> int | None:
    try:
        return os.getpgid(process.pid)
    except (ProcessLookupError, PermissionError):
        return None
