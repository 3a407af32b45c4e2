"""Model package groups and model packages: SageMaker's Model Registry.

Records (``store`` kinds ``model-package-groups`` and ``model-packages``) hold what Describe
returns. A group's record also keeps the last version it gave out (``LastVersion``): versions are
numbered 1, 2, 3 ... per group and a deleted version's number is never reused, as on AWS.

- A *versioned* package is created with ``ModelPackageGroupName``: its ModelPackageName is the
  group's name, its ARN ``model-package/<group>/<version>``, its ModelApprovalStatus
  ``PendingManualApproval`` unless the request gives one. An *unversioned* package is created with
  ``ModelPackageName`` (ARN ``model-package/<name>``) and has no approval status.
- Nothing is built or validated in the background: a package is ``Completed`` at once.
- ListModelPackages lists unversioned packages by default (AWS's documented default), a group's
  versions when ``ModelPackageGroupName`` is given without a ``ModelPackageType``; both List*
  sort ascending by default, as AWS documents.
- UpdateModelPackage changes versioned packages only: ModelApprovalStatus (any of the three
  values, Approved and Rejected back and forth included), ApprovalDescription,
  CustomerMetadataProperties merged in, CustomerMetadataPropertiesToRemove
  taken out (a package keeps at most 50 entries).
- CreateModel serves a versioned package only once it is Approved (see :meth:`ModelPackages.
  container_for_model`); that is what keeps an unapproved version off endpoints.
"""

import threading
import time

from local_sagemaker.errors import ConflictException, ValidationException
from local_sagemaker.sagemaker.resources import list_response

GROUPS, PACKAGES = "model-package-groups", "model-packages"
APPROVED, PENDING = "Approved", "PendingManualApproval"
MAX_CUSTOMER_METADATA = 50
GROUP_SUMMARY_KEYS = (
    "ModelPackageGroupName",
    "ModelPackageGroupArn",
    "ModelPackageGroupDescription",
    "CreationTime",
    "ModelPackageGroupStatus",
)
PACKAGE_SUMMARY_KEYS = (
    "ModelPackageName",
    "ModelPackageGroupName",
    "ModelPackageVersion",
    "ModelPackageArn",
    "ModelPackageDescription",
    "CreationTime",
    "ModelPackageStatus",
    "ModelApprovalStatus",
)
# CreateModelPackage members kept as given (the rest of the request is not served locally).
KEPT_MEMBERS = (
    "ModelPackageDescription",
    "InferenceSpecification",
    "MetadataProperties",
    "ModelMetrics",
    "CustomerMetadataProperties",
    "Domain",
    "Task",
    "SamplePayloadUrl",
    "SourceUri",
)


def _name_of(arn_or_name: str) -> str:
    """The resource part of an ARN (``group`` or ``group/3``), or the name itself."""
    if not arn_or_name.startswith("arn:"):
        return arn_or_name
    return arn_or_name.split(":", 5)[5].split("/", 1)[1]


def _store_name(package_name: str, version: int | None) -> str:
    """``<group>.<version>`` for versions, the name for unversioned packages (names hold no
    dots, so the two cannot collide)."""
    return package_name if version is None else f"{package_name}.{version}"


class ModelPackages:
    """The model registry family of the SageMaker backend (see the module docstring)."""

    def __init__(self, services):
        self.config = services.config
        self.store = services.store
        self._lock = threading.Lock()  # version numbers are handed out one at a time

    def recover(self) -> None:
        """Packages are plain records: nothing runs, nothing to recover."""

    def shutdown(self) -> None:
        """Nothing runs, nothing to end."""

    # -- groups --------------------------------------------------------------------------------

    def create_model_package_group(self, request: dict) -> dict:
        name = request["ModelPackageGroupName"]
        arn = self.config.arn("model-package-group", name)
        with self._lock:
            if self._find_group(name) is not None:
                raise ValidationException(f"Model Package Group already exists: {arn}")
            group = {
                "ModelPackageGroupName": name,
                "ModelPackageGroupArn": arn,
                "CreationTime": time.time(),
                "ModelPackageGroupStatus": "Completed",
                "LastVersion": 0,
            }
            if request.get("ModelPackageGroupDescription"):
                group["ModelPackageGroupDescription"] = request["ModelPackageGroupDescription"]
            self.store.put(GROUPS, name.lower(), group)
        return {"ModelPackageGroupArn": arn}

    def describe_model_package_group(self, request: dict) -> dict:
        group = self._require_group(request["ModelPackageGroupName"])
        group.pop("LastVersion")
        return group

    def list_model_package_groups(self, request: dict) -> dict:
        request = {"SortOrder": "Ascending", **request}
        return list_response(
            self.store.list(GROUPS), request, "ListModelPackageGroups", GROUP_SUMMARY_KEYS
        )

    def delete_model_package_group(self, request: dict) -> dict:
        group = self._require_group(request["ModelPackageGroupName"])
        if self._versions_of(group["ModelPackageGroupName"]):
            raise ConflictException(
                f"Model Package Group {group['ModelPackageGroupArn']} still has model package "
                "versions: delete them before the group."
            )
        self.store.delete(GROUPS, group["ModelPackageGroupName"].lower())
        return {}

    def _find_group(self, arn_or_name: str) -> dict | None:
        return self.store.get(GROUPS, _name_of(arn_or_name).lower())

    def _require_group(self, arn_or_name: str) -> dict:
        group = self._find_group(arn_or_name)
        if group is None:
            arn = self.config.arn("model-package-group", _name_of(arn_or_name))
            raise ValidationException(f"ModelPackageGroup {arn} does not exist.")
        return group

    # -- packages ------------------------------------------------------------------------------

    def create_model_package(self, request: dict) -> dict:
        group_name, name = request.get("ModelPackageGroupName"), request.get("ModelPackageName")
        if bool(group_name) == bool(name):
            raise ValidationException(
                "Give exactly one of ModelPackageGroupName (a versioned model package) and "
                "ModelPackageName (an unversioned one)."
            )
        fields = {key: request[key] for key in KEPT_MEMBERS if key in request}
        self._check_metadata_size(fields.get("CustomerMetadataProperties", {}))
        now = time.time()
        fields.update({"CreationTime": now, "LastModifiedTime": now,
                       "ModelPackageStatus": "Completed",
                       "ModelPackageStatusDetails": {"ValidationStatuses": []}})  # fmt: skip
        if name:
            return self._create_unversioned(name, request, fields)
        with self._lock:
            group = self._require_group(group_name)
            version = group["LastVersion"] + 1
            self.store.update(GROUPS, group["ModelPackageGroupName"].lower(),
                              {"LastVersion": version})  # fmt: skip
            group_name = group["ModelPackageGroupName"]
            arn = f"{self.config.arn('model-package', group_name)}/{version}"
            fields.update({
                "ModelPackageName": group_name,
                "ModelPackageGroupName": group_name,
                "ModelPackageVersion": version,
                "ModelPackageArn": arn,
                "ModelApprovalStatus": request.get("ModelApprovalStatus", PENDING),
            })  # fmt: skip
            self.store.put(PACKAGES, _store_name(group_name.lower(), version), fields)
        return {"ModelPackageArn": arn}

    def _create_unversioned(self, name: str, request: dict, fields: dict) -> dict:
        if "ModelApprovalStatus" in request:
            raise ValidationException(
                "ModelApprovalStatus applies to versioned model packages only (created with "
                "ModelPackageGroupName)."
            )
        arn = self.config.arn("model-package", name)
        with self._lock:
            if self.store.get(PACKAGES, _store_name(name.lower(), None)) is not None:
                raise ValidationException(f"ModelPackage already exists: {arn}")
            fields.update({"ModelPackageName": name, "ModelPackageArn": arn})
            self.store.put(PACKAGES, _store_name(name.lower(), None), fields)
        return {"ModelPackageArn": arn}

    def describe_model_package(self, request: dict) -> dict:
        return self.require_package(request["ModelPackageName"])

    def list_model_packages(self, request: dict) -> dict:
        group_name = request.get("ModelPackageGroupName")
        default_type = "Versioned" if group_name else "Unversioned"
        package_type = request.get("ModelPackageType", default_type)
        packages = [
            package
            for package in self.store.list(PACKAGES)
            if package_type == "Both"
            or (package_type == "Versioned") == ("ModelPackageVersion" in package)
        ]
        if group_name:
            wanted = _name_of(group_name).lower()
            packages = [p for p in packages if p.get("ModelPackageGroupName", "").lower() == wanted]
        if request.get("ModelApprovalStatus"):
            wanted_status = request["ModelApprovalStatus"]
            packages = [p for p in packages if p.get("ModelApprovalStatus") == wanted_status]
        request = {"SortOrder": "Ascending", **request}
        return list_response(packages, request, "ListModelPackages", PACKAGE_SUMMARY_KEYS)

    def update_model_package(self, request: dict) -> dict:
        arn = request["ModelPackageArn"]
        with self._lock:
            package = self.require_package(arn)
            if "ModelPackageVersion" not in package:
                raise ValidationException(
                    f"UpdateModelPackage changes versioned model packages only; {arn} is "
                    "unversioned."
                )
            changes = {"LastModifiedTime": time.time()}
            for member in ("ModelApprovalStatus", "ApprovalDescription"):
                if member in request:
                    changes[member] = request[member]
            metadata = {**package.get("CustomerMetadataProperties", {}),
                        **request.get("CustomerMetadataProperties", {})}  # fmt: skip
            for key in request.get("CustomerMetadataPropertiesToRemove", []):
                metadata.pop(key, None)
            self._check_metadata_size(metadata)
            changes["CustomerMetadataProperties"] = metadata
            package.update(changes)
            self.store.put(PACKAGES, self._record_name(package), package)
        return {"ModelPackageArn": package["ModelPackageArn"]}

    def delete_model_package(self, request: dict) -> dict:
        package = self.require_package(request["ModelPackageName"])
        self.store.delete(PACKAGES, self._record_name(package))
        return {}

    def require_package(self, arn_or_name: str) -> dict:
        """The package an ARN (versioned or not) or an unversioned name names; ValidationException
        naming it when there is none."""
        resource = _name_of(arn_or_name)
        name, _, version = resource.partition("/")
        package = None
        if version.isdigit():
            package = self.store.get(PACKAGES, _store_name(name.lower(), int(version)))
        elif not version:
            package = self.store.get(PACKAGES, _store_name(name.lower(), None))
        if package is None:
            arn = f"{self.config.arn('model-package', name)}{'/' + version if version else ''}"
            raise ValidationException(f"ModelPackage {arn} does not exist.")
        return package

    def container_for_model(self, container: dict) -> dict:
        """A CreateModel container that names ``ModelPackageName``, completed with the package's
        inference container (Image, ModelDataUrl, Environment under the request's own); a
        versioned package must be Approved, as on AWS."""
        package = self.require_package(container["ModelPackageName"])
        status = package.get("ModelApprovalStatus")
        if status is not None and status != APPROVED:
            raise ValidationException(
                f"Model package {package['ModelPackageArn']} is {status}: only an Approved "
                "model package version can be deployed."
            )
        containers = package.get("InferenceSpecification", {}).get("Containers", [])
        if len(containers) != 1:
            raise ValidationException(
                f"Model package {package['ModelPackageArn']} has {len(containers)} inference "
                "containers; the local SageMaker runtime serves single-container models."
            )
        package_container = containers[0]
        environment = {**package_container.get("Environment", {}),
                       **container.get("Environment", {})}  # fmt: skip
        served = {key: package_container[key] for key in ("Image", "ModelDataUrl")
                  if key in package_container}  # fmt: skip
        return {**served, **container, "Environment": environment}

    def _versions_of(self, group_name: str) -> list[dict]:
        wanted = group_name.lower()
        return [
            p
            for p in self.store.list(PACKAGES)
            if p.get("ModelPackageGroupName", "").lower() == wanted
        ]

    @staticmethod
    def _record_name(package: dict) -> str:
        return _store_name(package["ModelPackageName"].lower(), package.get("ModelPackageVersion"))

    @staticmethod
    def _check_metadata_size(metadata: dict) -> None:
        if len(metadata) > MAX_CUSTOMER_METADATA:
            raise ValidationException(
                f"CustomerMetadataProperties would hold {len(metadata)} entries; a model package "
                f"holds at most {MAX_CUSTOMER_METADATA}."
            )
