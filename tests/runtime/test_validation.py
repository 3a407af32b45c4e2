"""Request validation against botocore's service model, with AWS's error texts (doc 4.2)."""

import botocore.session
import pytest

from local_sagemaker.errors import ValidationException
from local_sagemaker.validation import validate_request, validation_errors

SAGEMAKER = botocore.session.get_session().get_service_model("sagemaker")
CREATE_TRAINING = SAGEMAKER.operation_model("CreateTrainingJob").input_shape
CREATE_ENDPOINT_CONFIG = SAGEMAKER.operation_model("CreateEndpointConfig").input_shape
PATTERN = "^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"


def valid_training_request(**overrides) -> dict:
    request = {
        "TrainingJobName": "ok-name",
        "AlgorithmSpecification": {"TrainingImage": "image", "TrainingInputMode": "File"},
        "RoleArn": "arn:aws:iam::123456789012:role/LocalSageMakerRole",
        "OutputDataConfig": {"S3OutputPath": "s3://bucket/output"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 60},
    }
    request.update(overrides)
    return request


def test_a_valid_request_passes():
    validate_request(CREATE_TRAINING, valid_training_request())


def test_pattern_and_length_failures_are_counted_and_joined():
    name = "x" * 63 + "_"
    with pytest.raises(ValidationException) as raised:
        validate_request(CREATE_TRAINING, valid_training_request(TrainingJobName=name))
    assert raised.value.message == (
        f"2 validation errors detected: Value '{name}' at 'trainingJobName' failed to satisfy "
        "constraint: Member must have length less than or equal to 63; "
        f"Value '{name}' at 'trainingJobName' failed to satisfy constraint: Member must satisfy "
        f"regular expression pattern: {PATTERN}"
    )


def test_missing_required_member_is_null():
    request = valid_training_request()
    del request["RoleArn"]
    assert validation_errors(CREATE_TRAINING, request) == [
        "Value null at 'roleArn' failed to satisfy constraint: Member must not be null"
    ]


def test_enum_and_range_failures_name_the_nested_path():
    request = valid_training_request(
        AlgorithmSpecification={"TrainingImage": "image", "TrainingInputMode": "Stream"},
        StoppingCondition={"MaxRuntimeInSeconds": 0},
    )
    errors = validation_errors(CREATE_TRAINING, request)
    assert errors[0].startswith(
        "Value 'Stream' at 'algorithmSpecification.trainingInputMode' failed to satisfy "
        "constraint: Member must satisfy enum value set: ["
    )
    assert errors[1] == (
        "Value '0' at 'stoppingCondition.maxRuntimeInSeconds' failed to satisfy constraint: "
        "Member must have value greater than or equal to 1"
    )


def test_list_items_use_the_member_path():
    request = {
        "EndpointConfigName": "config",
        "ProductionVariants": [
            {"VariantName": "AllTraffic", "ModelName": "bad.model", "InitialInstanceCount": 1}
        ],
    }
    errors = validation_errors(CREATE_ENDPOINT_CONFIG, request)
    assert errors == [
        "Value 'bad.model' at 'productionVariants.1.member.modelName' failed to satisfy "
        "constraint: Member must satisfy regular expression pattern: "
        "^[a-zA-Z0-9]([\\-a-zA-Z0-9]*[a-zA-Z0-9])?"
    ]


def test_map_values_are_reported_at_the_map():
    request = valid_training_request(HyperParameters={"lr": "x" * 2501})
    [error] = validation_errors(CREATE_TRAINING, request)
    assert error.endswith(
        "at 'hyperParameters' failed to satisfy constraint: Map value must satisfy constraint: "
        "[Member must have length less than or equal to 2500]"
    )


def test_wrong_json_type_is_reported():
    request = valid_training_request(
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": "1", "VolumeSizeInGB": 5}
    )
    assert validation_errors(CREATE_TRAINING, request) == [
        "Value '1' at 'resourceConfig.instanceCount' failed to satisfy constraint: "
        "Member must be of type integer"
    ]
