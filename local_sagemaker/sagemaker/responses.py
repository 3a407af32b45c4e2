"""SageMaker's JSON 1.1 front: ``X-Amz-Target: SageMaker.<Op>`` -> the backend's dispatch table.

The request is validated against botocore's input shape for the operation before the backend
method sees it, so backend methods may assume required members are present and well-formed.
"""

from local_sagemaker.json_protocol import JsonProtocolApi


def sagemaker_api(backend) -> JsonProtocolApi:
    """The protocol handler for the SageMaker API served by ``backend``."""
    return JsonProtocolApi("sagemaker", backend.operations, service_label="SageMaker")
