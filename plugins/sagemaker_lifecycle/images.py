"""Container image URIs: explicit ones from the settings, the rest derived with sagemaker-core.

`images.training`, `images.inference` and `images.rules` in include/pipeline.yaml override the
derived URIs; left null, they are what the SageMaker Python SDK would pick for the configured
framework version, Python version, region and instance type. sagemaker-core takes seconds to
import, so it is imported only when a URI has to be derived (inside a task, never at DAG parse
time).
"""

from __future__ import annotations

from collections.abc import Mapping

IMAGE_ROLES = ("training", "inference", "rules")


def _derive(role: str, settings: Mapping) -> str:
    """The URI the SDK would use for `role` (sagemaker-core imported here on purpose)."""
    images, region = settings["images"], settings["aws"]["region"]
    if role == "rules":
        from sagemaker.core.debugger import get_rule_container_image_uri

        # The name argument picks a rule-specific image only for the Tensorflow-profiler rules.
        return get_rule_container_image_uri(None, region)
    from sagemaker.core import image_uris

    instance_type = settings["instances"]["training" if role == "training" else "endpoint"]
    return image_uris.retrieve(
        images["framework"],
        region,
        version=str(images["framework_version"]),
        py_version=images["py_version"],
        instance_type=instance_type,
        image_scope=role,
    )


def resolve_image_uris(settings: Mapping) -> dict[str, str]:
    """Role -> image URI for every role in IMAGE_ROLES: the configured URI, else the derived one.

    Raises ValueError naming the framework settings when sagemaker-core knows no such image.
    """
    images = settings["images"]
    resolved = {}
    for role in IMAGE_ROLES:
        try:
            resolved[role] = images.get(role) or _derive(role, settings)
        except ValueError as error:
            raise ValueError(
                f"no {role} image for {images['framework']} {images['framework_version']} "
                f"({images['py_version']}) in {settings['aws']['region']}: {error}; set "
                f"images.{role} to an explicit URI"
            ) from error
    return resolved
