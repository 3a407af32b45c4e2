"""The first program of a sandboxed job process: it builds the job's view of the machine, drops
root and becomes the job (``exec``), so the job keeps this process's pid, group and pipes.

Run by the root runtime (see :mod:`local_sagemaker.executor.sandbox`) as
``python -I -S enter_sandbox.py SPEC_JSON -- ARGV...``; standard library only, because it runs
before any environment is set up. SPEC is::

    {"uid": int, "gid": int, "cwd": str, "home": str,
     "writable": str,               a tree given to the job: owned by it, visible at its path
     "readable": [str, ...],        visible at their paths, read-only where they had to be rebound
     "mounts": [[target, source]]}  bind mounts, e.g. ["/opt/ml", "<the job's /opt/ml tree>"]

Steps, all in a private mount namespace (nothing here is visible to the rest of the machine):

1. Every folder the job user could not enter on the way to a writable or readable path (the
   runtime's 0700 data dir, /root holding a pyenv interpreter, pytest's 0700 temp root) is
   covered with an empty tmpfs, and the paths the job needs are bound back into it. What else
   those folders held (credentials, other jobs' trees, the S3 store) is not there for the job.
2. The mounts are made (``/opt/ml`` is the job's own tree, as in a SageMaker container).
3. The writable tree is given to the job user; the process changes to ``cwd``, drops every
   group, sets ``no_new_privs`` (no setuid program can give root back) and becomes the job user.

A step that fails prints ``local-sagemaker sandbox: ...`` to stderr and exits with 125, the
status ``docker run`` uses when the engine, not the container, failed.
"""

import ctypes
import json
import os
import stat
import sys
from pathlib import Path

SANDBOX_FAILED = 125
CLONE_NEWNS = 0x00020000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT = 1, 2, 4, 32
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18
PR_SET_NO_NEW_PRIVS = 38

libc = ctypes.CDLL(None, use_errno=True)


class SandboxSetupError(Exception):
    pass


def _check(result: int, what: str) -> None:
    if result != 0:
        error = ctypes.get_errno()
        raise SandboxSetupError(f"{what}: {os.strerror(error)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str = ""):
    encoded = [None if part is None else part.encode() for part in (source, target, fstype, data)]
    _check(libc.mount(encoded[0], encoded[1], encoded[2], flags, encoded[3]), f"mount {target}")


def _can_enter(path: Path, uid: int, gid: int) -> bool:
    info = path.stat()
    if info.st_uid == uid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid == gid:
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)


def closed_folder(path: Path, uid: int, gid: int) -> Path | None:
    """The outermost folder on the way to ``path`` that the job user may not enter, if any."""
    for folder in reversed(path.parents):
        if not _can_enter(folder, uid, gid):
            return folder
    return None


class _Source:
    """A path the job needs, held open so it can be bound back once its folder is covered."""

    def __init__(self, path: Path):
        self.link = os.readlink(path) if path.is_symlink() else None
        self.is_dir = path.is_dir()
        self.fd = os.open(path, os.O_PATH | os.O_NOFOLLOW)


def _rebind(source: _Source, target: Path, read_only: bool) -> None:
    """Put ``source`` (opened before its folder was covered) back at ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.link is not None:
        target.symlink_to(source.link)
        return
    if source.is_dir:
        target.mkdir(exist_ok=True)
    else:
        target.touch(exist_ok=True)
    _mount(f"/proc/self/fd/{source.fd}", str(target), None, MS_BIND | MS_REC)
    if read_only:
        _mount(None, str(target), None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID)


def build_view(spec: dict) -> None:
    """Steps 1 and 2 of the module docstring."""
    uid, gid = spec["uid"], spec["gid"]
    needed = [(Path(spec["writable"]), False)] + [(Path(p), True) for p in spec["readable"]]
    needed = [(path, read_only) for path, read_only in needed if os.path.lexists(path)]
    _check(libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS), a private mount namespace")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    opened = {path: _Source(path) for path, _ in needed}
    mount_sources = [(target, _Source(Path(source))) for target, source in spec["mounts"]]
    covered = set()
    for path, _ in needed:
        folder = closed_folder(path, uid, gid)
        if folder is not None:
            covered.add(folder)
    covered = sorted(f for f in covered if not any(c in f.parents for c in covered))
    for folder in covered:
        _mount("tmpfs", str(folder), "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=1m")
    for path, read_only in sorted(needed, key=lambda item: len(item[0].parts)):
        if any(folder in path.parents for folder in covered):
            _rebind(opened[path], path, read_only)
    for target, source in sorted(mount_sources, key=lambda item: len(Path(item[0]).parts)):
        # Creating /opt/ml once on the machine is the one change outside the namespace.
        Path(target).mkdir(mode=0o755, parents=True, exist_ok=True)
        _mount(f"/proc/self/fd/{source.fd}", target, None, MS_BIND | MS_REC)
    for source in [*opened.values(), *(source for _, source in mount_sources)]:
        os.close(source.fd)


def give_tree(root: Path, uid: int, gid: int) -> None:
    """Make the job user own ``root`` and everything in it (symlinks themselves, not targets)."""
    os.lchown(root, uid, gid)
    os.chmod(root, 0o700)
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            os.lchown(os.path.join(folder, name), uid, gid)


def become_job_user(spec: dict) -> None:
    """Step 3 of the module docstring."""
    home = Path(spec["home"])
    home.mkdir(parents=True, exist_ok=True)
    give_tree(Path(spec["writable"]), spec["uid"], spec["gid"])
    os.chdir(spec["cwd"])
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
    os.setgroups([])
    os.setresgid(spec["gid"], spec["gid"], spec["gid"])
    os.setresuid(spec["uid"], spec["uid"], spec["uid"])
    os.environ.update(HOME=str(home), USER=f"job-{spec['uid']}", LOGNAME=f"job-{spec['uid']}")


def main(arguments: list[str]) -> int:
    spec = json.loads(arguments[0])
    argv = arguments[2:]
    try:
        build_view(spec)
        become_job_user(spec)
    except (SandboxSetupError, OSError) as error:
        print(f"local-sagemaker sandbox: could not set up the job: {error}", file=sys.stderr)
        return SANDBOX_FAILED
    if not argv:  # the runtime's probe: the sandbox works
        return 0
    try:
        os.execvp(argv[0], argv)
    except OSError as error:
        print(
            f"local-sagemaker sandbox: the job user (uid {spec['uid']}) cannot run {argv[0]}: "
            f"{error}",
            file=sys.stderr,
        )
        return 126 if isinstance(error, PermissionError) else 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
