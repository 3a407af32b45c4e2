"""Image URIs: derived with sagemaker-core as the SDK picks them, explicit ones win."""

import pytest
from sagemaker_lifecycle.images import resolve_image_uris
from sagemaker_lifecycle.settings import SettingsError, in_region, load_settings

DLC = "763104351884.dkr.ecr.us-east-1.amazonaws.com"


def test_null_uris_are_derived_for_the_framework_region_and_instance_types(image_uris):
    assert image_uris == {
        "training": f"{DLC}/pytorch-training:2.0-cpu-py310",
        "inference": f"{DLC}/pytorch-inference:2.0-cpu-py310",
        "rules": "503895931360.dkr.ecr.us-east-1.amazonaws.com/sagemaker-debugger-rules:latest",
    }


def test_a_gpu_training_instance_gets_the_gpu_image_in_the_configured_region(image_uris):
    settings = in_region(load_settings({
        "instances": {"training": "ml.g5.xlarge"},
        "images": {"inference": "custom/inference:1", "rules": "custom/rules:1"},
    }), "eu-west-1")  # fmt: skip
    resolved = resolve_image_uris(settings)
    assert resolved["training"].startswith("763104351884.dkr.ecr.eu-west-1.amazonaws.com/")
    assert resolved["training"].endswith("pytorch-training:2.0-gpu-py310")
    assert (resolved["inference"], resolved["rules"]) == ("custom/inference:1", "custom/rules:1")


def test_an_unknown_framework_version_names_the_setting_to_fix(image_uris):
    settings = in_region(
        load_settings({"images": {"framework_version": "0.1", "training": None}}), "us-east-1"
    )
    with pytest.raises(ValueError, match=r"no training image for pytorch 0\.1 .*images\.training"):
        resolve_image_uris(settings)


def test_the_region_is_the_connections_and_a_different_one_is_refused():
    assert in_region(load_settings(), "eu-west-1")["aws"]["region"] == "eu-west-1"
    agreeing = load_settings({"aws": {"region": "eu-west-1"}})
    assert in_region(agreeing, "eu-west-1")["aws"]["region"] == "eu-west-1"
    with pytest.raises(SettingsError, match=r"aws.region is 'us-east-1', but the AWS connection "
                       r"runs the jobs in 'eu-west-1'.*sagemaker_region"):  # fmt: skip
        in_region(load_settings({"aws": {"region": "us-east-1"}}), "eu-west-1")
    with pytest.raises(SettingsError, match="names no region: set region_name"):
        in_region(load_settings(), None)
