"""Who the runtime's key pair is: STS ``GetCallerIdentity``, and IAM as it answers that caller.

The runtime has one credential, its key pair (contract 4), and no IAM. Its caller is therefore
presented as one IAM user of the runtime's account, ``user/local-sagemaker``, whose permissions
are exactly what the runtime serves (SageMaker, SageMaker Runtime, S3, CloudWatch Logs and
metrics). IAM itself is not among them, so every IAM action is answered as real IAM answers a
caller whose policies allow no IAM action: ``AccessDenied`` naming the caller and the action.
That is the truth about the runtime (role ARNs given to jobs are recorded, never assumed or
evaluated), and it is the answer the SDKs' role checks accept (the v3 SDK's
``SimulatePrincipalPolicy`` check goes on after AccessDenied). Answering ``NoSuchEntity`` would
claim the role is missing; answering an evaluation would claim a policy was evaluated.
"""

import hashlib
from dataclasses import dataclass

import botocore.session

from local_sagemaker.errors import AwsError

CALLER_NAME = "local-sagemaker"


class AccessDenied(AwsError):
    """IAM's (Query protocol) refusal of an action the caller is not allowed."""

    code = "AccessDenied"
    status = 403


@dataclass(frozen=True)
class Caller:
    """The identity behind the runtime's key pair."""

    account: str
    access_key_id: str

    @property
    def arn(self) -> str:
        return f"arn:aws:iam::{self.account}:user/{CALLER_NAME}"

    @property
    def user_id(self) -> str:
        """A stable IAM user id (``AIDA`` + 17 characters), as IAM gives every user one."""
        digest = hashlib.sha256(f"{self.account}/{self.access_key_id}".encode()).hexdigest()
        return "AIDA" + digest[:17].upper()


class StsService:
    """STS for the runtime's caller (``GetCallerIdentity`` needs no permission on AWS either)."""

    def __init__(self, caller: Caller):
        self.caller = caller

    def get_caller_identity(self, request: dict) -> dict:
        return {
            "UserId": self.caller.user_id,
            "Account": self.caller.account,
            "Arn": self.caller.arn,
        }


def sts_operations(sts: StsService) -> dict:
    """The STS operations the runtime serves: operation -> method."""
    return {"GetCallerIdentity": sts.get_caller_identity}


def iam_operations(caller: Caller) -> dict:
    """Every IAM operation, each raising IAM's AccessDenied for ``caller`` (see the module
    docstring: the runtime serves no IAM)."""

    def denial(operation: str):
        def deny(request: dict) -> dict:
            resource = request.get("PolicySourceArn") or request.get("RoleName") or "*"
            raise AccessDenied(
                f"User: {caller.arn} is not authorized to perform: iam:{operation} on resource: "
                f"{resource} because no identity-based policy allows the iam:{operation} action "
                "(the local SageMaker runtime serves no IAM)"
            )

        return deny

    iam = botocore.session.get_session().get_service_model("iam")
    return {operation: denial(operation) for operation in iam.operation_names}
