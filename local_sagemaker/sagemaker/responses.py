"""SageMaker's JSON 1.1 front: ``X-Amz-Target: SageMaker.<Op>`` -> the backend's dispatch table.

The request is validated against botocore's input shape for the operation before the backend
method sees it, so backend methods may assume required members are present and well-formed.
The Tags of a Create* request are checked before the resource is made and kept by the tags
family (:mod:`local_sagemaker.sagemaker.tags`) under the ARN the response names.
"""

from local_sagemaker.json_protocol import JsonProtocolApi
from local_sagemaker.sagemaker.tags import check_tags


class SageMakerApi(JsonProtocolApi):
    """The SageMaker API over the backend's operation table, with Create*'s Tags (see above)."""

    def __init__(self, backend):
        super().__init__("sagemaker", backend.operations, service_label="SageMaker")
        self.tags = backend.tags

    def call(self, operation: str, method, request: dict) -> dict:
        tags = request.get("Tags")
        if not operation.startswith("Create") or not tags:
            return method(request)
        check_tags(tags)
        response = method(request)
        output_members = self.service_model.operation_model(operation).output_shape.members
        arn_member = next(name for name in output_members if name.endswith("Arn"))
        self.tags.tag_created_resource(response[arn_member], tags)
        return response


def sagemaker_api(backend) -> SageMakerApi:
    """The protocol handler for the SageMaker API served by ``backend``."""
    return SageMakerApi(backend)
