"""How a root runtime sets job sandboxes up, and how it says no: the job-uid range, the uid
leases (one per job tree, freed with the tree's last process) and a machine without mount
namespaces."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from local_sagemaker.executor.enter_sandbox import closed_folder
from local_sagemaker.executor.processes import kill_tree
from local_sagemaker.executor.sandbox import JobUsers, SandboxError, parse_job_uids

REPO_ROOT = Path(__file__).resolve().parents[2]
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="only a root runtime sandboxes jobs")


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("200000", "must be FIRST-LAST"),
        ("abc-def", "must be FIRST-LAST"),
        ("500-2000", "uids >= 1000"),
        ("300000-299999", "non-empty range"),
        ("65000-65534", "holds user nobody (65534)"),
    ],
)
def test_a_job_uid_range_that_is_malformed_or_taken_is_refused(setting, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_job_uids(setting)


def test_the_default_range_is_free_here():
    assert len(parse_job_uids("200000-200999")) == 1000


@pytest.mark.e2e  # starts processes
@root_only
def test_a_job_tree_shares_one_uid_and_its_last_process_frees_it(tmp_path):
    users = JobUsers(range(200990, 200992))
    first = users.lease(tmp_path / "job-a")
    assert users.lease(tmp_path / "job-a") == first  # a second host of the same job
    second = users.lease(tmp_path / "job-b")
    assert second != first
    with pytest.raises(SandboxError, match="all 2 job uids"):
        users.lease(tmp_path / "job-c")
    leftover = subprocess.Popen(
        ["setpriv", f"--reuid={first}", f"--regid={first}", "--clear-groups", "sleep", "60"]
    )
    try:
        users.release(tmp_path / "job-a", lambda uid: kill_tree({"uid": uid}))
        time.sleep(0.2)
        assert leftover.poll() is None  # the other host still holds the uid
        users.release(tmp_path / "job-a", lambda uid: kill_tree({"uid": uid}))
        assert not psutil.pid_exists(leftover.pid)  # killed and reaped by kill_tree
        assert users.lease(tmp_path / "job-c") == first
    finally:
        if psutil.pid_exists(leftover.pid):
            leftover.kill()


@root_only
def test_two_runtimes_of_one_machine_never_lease_the_same_uid(tmp_path):
    """Each runtime has its own pool; the lease files make a uid one runtime's at a time (two
    runtimes sharing one killed each other's model servers when a job ended)."""
    uids = range(200980, 200982)
    one, other = JobUsers(uids), JobUsers(uids)
    leased = {one.lease(tmp_path / "a"), other.lease(tmp_path / "b")}
    assert leased == set(uids)
    with pytest.raises(SandboxError, match="all 2 job uids"):
        one.lease(tmp_path / "c")
    one.release(tmp_path / "a", lambda uid: None)
    assert other.lease(tmp_path / "c") in uids


@pytest.mark.e2e  # starts processes
@root_only
def test_a_root_runtime_without_mount_namespaces_refuses_jobs_and_says_why():
    # As in a container started without CAP_SYS_ADMIN.
    probe = (
        "from local_sagemaker.executor.sandbox import require_sandbox\n"
        "try:\n    require_sandbox()\nexcept OSError as error:\n    print(error)\n"
    )
    result = subprocess.run(
        ["setpriv", "--bounding-set", "-sys_admin", "--", sys.executable, "-c", probe],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert "cannot here" in result.stdout
    assert "unshare(CLONE_NEWNS), a private mount namespace: Operation not permitted" in (
        result.stdout
    )
    assert "run the runtime as a non-root user" in result.stdout


SYSTEM_PYTHON = Path("/usr/bin/python3")
# A runtime process as an ordinary user would start it: the system Python (the project's venvs
# may lie under /root, closed to other users) with the runtime's packages on its path.
ORDINARY_RUNTIME = """
import os, shutil, sys, tempfile
from pathlib import Path
from local_sagemaker.executor.processes import ManagedProcess
from local_sagemaker.executor.sandbox import job_sandbox
tree = Path(tempfile.mkdtemp())
lines = []
job = ManagedProcess(
    [sys.executable, "-c", "import os; print(os.getuid(), os.path.isdir('/opt/ml/home'))"],
    dict(os.environ), tree, lambda text, _: lines.append(text), job_sandbox(tree, sys.executable),
)
print(job.wait(30), os.getuid(), lines, job.identity.get("job_uid"))
shutil.rmtree(tree)
"""


@pytest.mark.e2e  # starts processes
@root_only
@pytest.mark.skipif(not SYSTEM_PYTHON.exists(), reason="needs the system's /usr/bin/python3")
def test_a_runtime_that_is_not_root_runs_its_jobs_as_itself_without_a_namespace():
    uid = 200997  # an unprivileged user, as a developer's own account would be
    site_packages = Path(psutil.__file__).parent.parent
    if any(closed_folder(path, uid, uid) for path in (REPO_ROOT, site_packages)):
        pytest.skip("the checkout or its packages lie in a folder closed to other users")
    result = subprocess.run(
        ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", str(SYSTEM_PYTHON),
         "-c", ORDINARY_RUNTIME],
        env={**os.environ, "PYTHONPATH": f"{REPO_ROOT}:{site_packages}", "TMPDIR": "/tmp"},
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert result.stdout.split("\n")[0] == f"0 {uid} ['{uid} False'] None"
