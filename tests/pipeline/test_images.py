"""Image URIs: derived with sagemaker-core as the SDK picks them, explicit ones win."""

import pytest
from sagemaker_lifecycle.images import resolve_image_uris
from sagemaker_lifecycle.settings import load_settings

DLC = "763104351884.dkr.ecr.us-east-1.amazonaws.com"


def test_null_uris_are_derived_for_the_framework_region_and_instance_types(image_uris):
    assert image_uris == {
        "training": f"{DLC}/pytorch-training:2.0-cpu-py310",
        "inference": f"{DLC}/pytorch-inference:2.0-cpu-py310",
        "rules": "503895931360.dkr.ecr.us-east-1.amazonaws.com/sagemaker-debugger-rules:latest",
    }


def test_a_gpu_training_instance_gets_the_gpu_image_in_the_configured_region(image_uris):
    settings = load_settings({
        "aws": {"region": "eu-west-1"},
        "instances": {"training": "ml.g5.xlarge"},
        "images": {"inference": "custom/inference:1", "rules": "custom/rules:1"},
    })  # fmt: skip
    resolved = resolve_image_uris(settings)
    assert resolved["training"].startswith("763104351884.dkr.ecr.eu-west-1.amazonaws.com/")
    assert resolved["training"].endswith("pytorch-training:2.0-gpu-py310")
    assert (resolved["inference"], resolved["rules"]) == ("custom/inference:1", "custom/rules:1")


def test_an_unknown_framework_version_names_the_setting_to_fix(image_uris):
    settings = load_settings({"images": {"framework_version": "0.1", "training": None}})
    with pytest.raises(ValueError, match=r"no training image for pytorch 0\.1 .*images\.training"):
        resolve_image_uris(settings)
