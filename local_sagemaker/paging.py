"""Pagination of the runtime's List* operations, declared once (moto's ``PAGINATION_MODEL``
idea): each operation's response list member with its default page size. NextToken is the decimal
offset this runtime issued (:func:`~local_sagemaker.validation.pagination_offset` refuses any
other token). :func:`every_item` reads every page back, for the runtime's own services.
"""

from local_sagemaker.validation import pagination_offset

# List* operation -> (its response's list member, MaxResults when the request leaves it out).
PAGINATION_MODEL = {
    "ListTrainingJobs": ("TrainingJobSummaries", 10),
    "ListTrainingJobsForHyperParameterTuningJob": ("TrainingJobSummaries", 10),
    "ListProcessingJobs": ("ProcessingJobSummaries", 100),
    "ListTransformJobs": ("TransformJobSummaries", 100),
    "ListHyperParameterTuningJobs": ("HyperParameterTuningJobSummaries", 100),
    "ListModels": ("Models", 100),
    "ListEndpointConfigs": ("EndpointConfigs", 100),
    "ListEndpoints": ("Endpoints", 100),
    "ListModelPackageGroups": ("ModelPackageGroupSummaryList", 100),
    "ListModelPackages": ("ModelPackageSummaryList", 100),
    "ListTags": ("Tags", 50),
    # CloudWatch
    "ListMetrics": ("Metrics", 500),
}


def paginate(items: list, request: dict, operation: str) -> dict:
    """``{list member: one page of items, "NextToken"?: ...}`` of the List* ``operation``;
    NextToken only when more remain."""
    list_key, page_size = PAGINATION_MODEL[operation]
    start = pagination_offset(request.get("NextToken"))
    end = start + request.get("MaxResults", page_size)
    response = {list_key: items[start:end]}
    if end < len(items):
        response["NextToken"] = str(end)
    return response


def every_item(list_operation, list_key: str, request: dict | None = None) -> list[dict]:
    """All items ``list_operation(request)`` pages through under ``list_key``, in its order."""
    items, request = [], {**(request or {}), "MaxResults": 100}
    while True:
        page = list_operation(request)
        items += page[list_key]
        if not page.get("NextToken"):
            return items
        request = {**request, "NextToken": page["NextToken"]}
