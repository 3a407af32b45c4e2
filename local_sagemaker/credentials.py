"""The runtime's one key pair: every request must be signed with it (see :mod:`.signatures`).

A runtime started without a fixed pair uses ``<data_dir>/credentials.json``, generated with
:mod:`secrets` on first start and readable by its owner only (mode 0600), so no two data dirs
share keys. A fixed pair (``serve --access-key-id/--secret-access-key`` or the environment
variables below) is for tests and containers; it is used as given and never written to disk.
"""

import json
import os
import secrets
import string
from dataclasses import dataclass
from pathlib import Path

ACCESS_KEY_ENV = "LOCAL_SAGEMAKER_ACCESS_KEY_ID"
SECRET_KEY_ENV = "LOCAL_SAGEMAKER_SECRET_ACCESS_KEY"
CREDENTIALS_FILE = "credentials.json"
# AWS access key ids are 20 upper-case letters and digits; "LSIA" marks a local runtime's key.
ACCESS_KEY_PREFIX = "LSIA"
ACCESS_KEY_ALPHABET = string.ascii_uppercase + string.digits


@dataclass(frozen=True)
class KeyPair:
    """An AWS access key id and its secret."""

    access_key_id: str
    secret_access_key: str

    def __post_init__(self):
        if not self.access_key_id or not self.secret_access_key:
            raise ValueError("an access key id and a secret access key are both required")

    def credential_process_output(self) -> str:
        """The JSON the AWS CLI and SDKs read from a ``credential_process`` command."""
        return json.dumps({
            "Version": 1,
            "AccessKeyId": self.access_key_id,
            "SecretAccessKey": self.secret_access_key,
        })  # fmt: skip


def generate_key_pair() -> KeyPair:
    suffix = "".join(secrets.choice(ACCESS_KEY_ALPHABET) for _ in range(16))
    return KeyPair(ACCESS_KEY_PREFIX + suffix, secrets.token_urlsafe(30))


def data_dir_key_pair(data_dir: Path) -> KeyPair:
    """The data dir's key pair, generated (mode 0600) the first time it is asked for."""
    path = Path(data_dir) / CREDENTIALS_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        pair = generate_key_pair()
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        # O_EXCL + 0600: the secret is never readable by others, not even for an instant.
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump({"AccessKeyId": pair.access_key_id,
                       "SecretAccessKey": pair.secret_access_key}, handle)  # fmt: skip
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)  # fails if a concurrent first start won the race
        except FileExistsError:
            pass
        finally:
            temporary.unlink()
    stored = json.loads(path.read_text())
    return KeyPair(stored["AccessKeyId"], stored["SecretAccessKey"])


def resolve_key_pair(
    data_dir: Path, access_key_id: str | None = None, secret_access_key: str | None = None
) -> KeyPair:
    """The pair a runtime serves with: the given one, else the environment's, else the data
    dir's. Half a pair is an error, never a silent fallback."""
    access_key_id = access_key_id or os.environ.get(ACCESS_KEY_ENV)
    secret_access_key = secret_access_key or os.environ.get(SECRET_KEY_ENV)
    if access_key_id or secret_access_key:
        if not (access_key_id and secret_access_key):
            raise ValueError(
                "a fixed key pair needs both --access-key-id and --secret-access-key "
                f"(or {ACCESS_KEY_ENV} and {SECRET_KEY_ENV})"
            )
        return KeyPair(access_key_id, secret_access_key)
    return data_dir_key_pair(data_dir)
