"""Errors shaped as AWS sends them.

Raise an :class:`AwsError` subclass anywhere behind the protocol layer; the server turns it into the
service's wire error (JSON 1.1 ``{"__type": code, "message": text}`` with the HTTP status below).
"""


class AwsError(Exception):
    """An error the client sees as ``code`` with ``message`` and HTTP ``status``."""

    code = "InternalFailure"
    status = 500

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def to_json(self) -> dict:
        """The JSON 1.1 error body (botocore reads ``__type`` and ``message``/``Message``)."""
        return {"__type": self.code, "message": self.message, "Message": self.message}


class ValidationException(AwsError):
    """Bad input, and also SageMaker's answer for a missing training job (see behaviour doc 4.3)."""

    code = "ValidationException"
    status = 400


class ResourceNotFound(AwsError):
    code = "ResourceNotFound"
    status = 400


class ResourceInUse(AwsError):
    code = "ResourceInUse"
    status = 400


class ResourceLimitExceeded(AwsError):
    """A quota is reached (here: the runtime's caps on instances and concurrent jobs)."""

    code = "ResourceLimitExceeded"
    status = 400


class UnknownOperationException(AwsError):
    code = "UnknownOperationException"
    status = 400


class InvalidParameterException(AwsError):
    """CloudWatch Logs' error for a bad parameter (such as a stale pagination token)."""

    code = "InvalidParameterException"
    status = 400


class ResourceNotFoundException(AwsError):
    """CloudWatch Logs' not-found error (SageMaker's is :class:`ResourceNotFound`)."""

    code = "ResourceNotFoundException"
    status = 400


class ResourceAlreadyExistsException(AwsError):
    """CloudWatch Logs' duplicate error."""

    code = "ResourceAlreadyExistsException"
    status = 400


class InternalFailure(AwsError):
    code = "InternalFailure"
    status = 500


def training_job_not_found() -> ValidationException:
    """What DescribeTrainingJob/StopTrainingJob answer for an unknown name (behaviour doc 4.3)."""
    return ValidationException("Requested resource not found.")


class SerializationException(AwsError):
    """The request body is not the JSON the protocol expects."""

    code = "SerializationException"
    status = 400


class ConflictException(AwsError):
    """SageMaker's answer when a resource's state forbids the change (a model package group that
    still holds versions cannot be deleted)."""

    code = "ConflictException"
    status = 400
