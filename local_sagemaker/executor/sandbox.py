"""Jobs of a root runtime run as a container engine runs containers: as their own unprivileged
user, each in a private mount namespace where ``/opt/ml`` is its own tree.

When the runtime's effective uid is 0, every process given a :class:`Sandbox` (training hosts,
processing jobs, transform and endpoint model servers) starts through ``enter_sandbox.py``:

- It runs as a uid/gid pair of its own, leased from ``LOCAL_SAGEMAKER_JOB_UIDS`` (``FIRST-LAST``,
  default ``200000-200999``; uid and gid are the same number). No passwd entry is created, as
  with ``docker run --user``: the range must not hold any user or group of the machine (checked
  at start-up), so no one else owns a job's files. A job's processes share one uid (the hosts of
  a training job work in one tree), and two running jobs never do, so one job cannot signal,
  trace or read ``/proc/<pid>/root`` of another. Once the job's last process has ended, every
  process left with its uid is killed and the uid goes back to the pool. A lease is also an
  exclusive ``flock`` on ``/run/local-sagemaker/job-uids/<uid>.lock``, so two runtimes of one
  machine (two data dirs, or parallel test workers) never lease the same uid, and a runtime
  killed with -9 frees its leases with its file descriptors.
- It owns its tree (``writable``) and nothing else: the runtime's data dir (0700 when the
  runtime is root) and any other closed folder on the way to what the job needs are covered
  with empty folders in its namespace, so credentials, the S3 store and other jobs' trees are
  not there for it. Interpreters and scripts (``readable``) are bound back read-only; an
  interpreter under ``/root/.pyenv`` works without copying it or opening ``/root``.
- Its environment lacks the runtime's key pair (``LOCAL_SAGEMAKER_ACCESS_KEY_ID`` and
  ``LOCAL_SAGEMAKER_SECRET_ACCESS_KEY``, when the runtime was given them that way).
- ``/opt/ml`` is its SageMaker tree, so code that uses the documented literal paths works; the
  ``SM_*`` variables still name the tree's real paths, which the job sees too.

When the runtime is not root, the sandbox is ignored and jobs run as the runtime's user, as
before: an unprivileged user cannot make mount namespaces without a user namespace, so there is
no ``/opt/ml`` for the job (training code has the ``SM_*`` paths; processing paths are rewritten).
A root runtime that cannot make the namespace (a container without CAP_SYS_ADMIN) refuses to
start jobs with a :class:`SandboxError` that says so, rather than running them as root.
"""

import fcntl
import functools
import grp
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from local_sagemaker.credentials import ACCESS_KEY_ENV, SECRET_KEY_ENV
from local_sagemaker.executor import enter_sandbox

JOB_UIDS_ENV = "LOCAL_SAGEMAKER_JOB_UIDS"
DEFAULT_JOB_UIDS = "200000-200999"
# Root-owned (0700): the machine-wide lease files of job uids (see the module docstring).
LEASE_DIR = Path("/run/local-sagemaker/job-uids")
CONTAINER_ROOT = "/opt/ml"
ENTER_SCRIPT = Path(enter_sandbox.__file__)
PROBE_TIMEOUT_SECONDS = 30


class SandboxError(OSError):
    """A job cannot be started sandboxed; the message says why and what to change."""


@dataclass(frozen=True)
class Sandbox:
    """What one job's processes see and may change (see the module docstring).

    ``mounts`` pairs a container path with the host folder bound there, e.g.
    ``(("/opt/ml", tree),)``. The job's HOME is ``<writable>/home``.
    """

    writable: Path
    readable: tuple[Path, ...] = ()
    mounts: tuple[tuple[str, Path], ...] = ()


def python_paths(python: str) -> tuple[Path, ...]:
    """What a job needs to run ``python``: its venv (if it is one) and its installation."""
    executable = Path(python).absolute()
    paths = {executable.parent.parent, Path(os.path.realpath(executable)).parent.parent}
    config = executable.parent.parent / "pyvenv.cfg"
    if config.is_file():
        for line in config.read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "home":
                paths.add(Path(value.strip()).parent)
    return tuple(sorted(paths))


def job_sandbox(tree: Path, python: str, opt_ml: Path | None = None) -> Sandbox:
    """The sandbox of a job that owns ``tree``, runs ``python`` and sees ``opt_ml`` (default:
    ``tree``) as /opt/ml."""
    return Sandbox(
        writable=Path(tree),
        readable=python_paths(python),
        mounts=((CONTAINER_ROOT, Path(opt_ml or tree)),),
    )


def job_environment(env: dict[str, str]) -> dict[str, str]:
    """``env`` without the runtime's own key pair, which a job must not hold."""
    return {k: v for k, v in env.items() if k not in (ACCESS_KEY_ENV, SECRET_KEY_ENV)}


def sandboxing() -> bool:
    """Whether jobs are sandboxed: only a root runtime has anything to drop."""
    return os.geteuid() == 0


def protect_data_dir(data_dir: Path) -> None:
    """Close a root runtime's data dir to everyone else (as /var/lib/docker is)."""
    if sandboxing():
        Path(data_dir).mkdir(parents=True, exist_ok=True)
        os.chmod(data_dir, 0o700)


# -- job users ---------------------------------------------------------------------------------


def parse_job_uids(text: str) -> range:
    """``FIRST-LAST`` as a range, refused when it is malformed or holds a user or group."""
    first, _, last = text.partition("-")
    if not (first.strip().isdigit() and last.strip().isdigit()):
        raise ValueError(f"{JOB_UIDS_ENV} must be FIRST-LAST (two uids), not {text!r}")
    uids = range(int(first), int(last) + 1)
    if not uids or uids.start < 1000:
        raise ValueError(f"{JOB_UIDS_ENV} {text!r} must be a non-empty range of uids >= 1000")
    taken = [f"user {u.pw_name} ({u.pw_uid})" for u in pwd.getpwall() if u.pw_uid in uids]
    taken += [f"group {g.gr_name} ({g.gr_gid})" for g in grp.getgrall() if g.gr_gid in uids]
    if taken:
        raise ValueError(
            f"{JOB_UIDS_ENV} {text!r} holds {', '.join(taken[:3])}: jobs would share their files; "
            "choose a range no user or group of this machine has"
        )
    return uids


class JobUsers:
    """The pool of job uids. A lease is keyed by the job's tree: processes in one tree share a
    uid, and the uid is freed (its leftover processes killed) when the last of them ends."""

    def __init__(self, uids: range):
        self.uids = uids
        self._lock = threading.Lock()
        self._leases: dict[str, list[int]] = {}  # tree -> [uid, holders, lease file fd]

    def lease(self, tree: Path) -> int:
        with self._lock:
            key = str(tree)
            if key in self._leases:
                self._leases[key][1] += 1
                return self._leases[key][0]
            in_use = {uid for uid, *_ in self._leases.values()} | _uids_with_processes()
            for uid in (u for u in self.uids if u not in in_use):
                lock_fd = _claim_machine_wide(uid)
                if lock_fd is not None:
                    self._leases[key] = [uid, 1, lock_fd]
                    return uid
            raise SandboxError(
                f"all {len(self.uids)} job uids of {JOB_UIDS_ENV} are in use; widen the range"
            )

    def release(self, tree: Path, end_processes: Callable[[int], None]) -> None:
        """Drop one holder of ``tree``'s uid; the last one calls ``end_processes(uid)`` (kill
        what still runs as it) before the uid can be leased again."""
        key = str(tree)
        with self._lock:
            lease = self._leases.get(key)
            if lease is None:
                return
            lease[1] -= 1
            if lease[1] > 0:
                return
        end_processes(lease[0])
        with self._lock:
            if self._leases.get(key) is lease and lease[1] == 0:
                del self._leases[key]
                os.close(lease[2])  # the machine-wide claim ends last, after the kill


def _claim_machine_wide(uid: int) -> int | None:
    """An open descriptor holding ``uid``'s lease file locked, or None when another runtime
    holds it."""
    LEASE_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(LEASE_DIR / f"{uid}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _uids_with_processes() -> set[int]:
    uids = set()
    for process in psutil.process_iter(["uids"]):
        if process.info["uids"] is not None:
            uids.add(process.info["uids"].real)
    return uids


@functools.cache
def job_users() -> JobUsers:
    """The runtime's one pool (a uid is a machine-wide resource, so there is one per process)."""
    try:
        return JobUsers(parse_job_uids(os.environ.get(JOB_UIDS_ENV, DEFAULT_JOB_UIDS)))
    except ValueError as error:
        raise SandboxError(str(error)) from error


# -- launching ---------------------------------------------------------------------------------


def sandboxed_argv(sandbox: Sandbox, uid: int, cwd: Path, argv: list[str]) -> list[str]:
    """``argv`` wrapped so it runs as ``uid`` in the sandbox's own view of the machine."""
    spec = {
        "uid": uid,
        "gid": uid,
        "cwd": str(cwd),
        "home": str(Path(sandbox.writable) / "home"),
        "writable": str(sandbox.writable),
        "readable": [str(path) for path in sandbox.readable],
        "mounts": [[target, str(source)] for target, source in sandbox.mounts],
    }
    return [sys.executable, "-I", "-S", str(ENTER_SCRIPT), json.dumps(spec), "--", *argv]


_probe_lock = threading.Lock()


@functools.cache
def _probe() -> str | None:
    """Why a sandbox cannot be made here, or None when it can (tried once per runtime)."""
    scratch = Path(tempfile.mkdtemp(prefix="local-sagemaker-probe-"))
    sandbox = Sandbox(writable=scratch, mounts=((CONTAINER_ROOT, scratch),))
    # No argv: the helper builds the view, drops root and exits 0 instead of running a job.
    argv = sandboxed_argv(sandbox, max(job_users().uids), scratch, [])
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=PROBE_TIMEOUT_SECONDS)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if result.returncode == 0:
        return None
    return result.stderr.strip() or f"the sandbox probe exited with {result.returncode}"


def require_sandbox() -> None:
    """Raise SandboxError when a root runtime cannot sandbox jobs on this machine."""
    with _probe_lock:  # the first jobs may start at once: one probe, and they wait for it
        problem = _probe()
    if problem is not None:
        raise SandboxError(
            f"the runtime runs as root, so it runs jobs as an unprivileged user in a private "
            f"mount namespace, and it cannot here ({problem}). Give it CAP_SYS_ADMIN, or run "
            "the runtime as a non-root user (jobs then run as that user)."
        )
