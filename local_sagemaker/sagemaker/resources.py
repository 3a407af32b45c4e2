"""What every SageMaker resource family shares: List* responses (paginated as
:mod:`local_sagemaker.paging` declares), failure reasons, and instance ids."""

import secrets

from local_sagemaker.paging import paginate

FAILURE_REASON_LIMIT = 1024


def _after(value: float, bound) -> bool:
    return bound is None or value > float(bound)


def _before(value: float, bound) -> bool:
    return bound is None or value < float(bound)


def list_response(
    records: list[dict],
    request: dict,
    operation: str,
    summary_keys: tuple[str, ...],
    status_key: str | None = None,
) -> dict:
    """The response of the List* ``operation``: ``{list member: [summaries], "NextToken"?}``.

    ``summary_keys[0]`` is the name member. Understands NameContains (case-insensitive),
    CreationTime/LastModifiedTime Before/After, StatusEquals, SortBy (Name | CreationTime |
    Status), SortOrder (default Descending), MaxResults and NextToken (see :func:`paginate`).
    """
    name_key = summary_keys[0]
    contains = (request.get("NameContains") or "").lower()
    selected = [
        r
        for r in records
        if contains in r[name_key].lower()
        and _after(r["CreationTime"], request.get("CreationTimeAfter"))
        and _before(r["CreationTime"], request.get("CreationTimeBefore"))
        and _after(r.get("LastModifiedTime", 0), request.get("LastModifiedTimeAfter"))
        and _before(r.get("LastModifiedTime", 0), request.get("LastModifiedTimeBefore"))
        and request.get("StatusEquals") in (None, r.get(status_key or ""))
    ]
    sort_key = {"Name": name_key, "Status": status_key}.get(request.get("SortBy"), "CreationTime")
    selected.sort(
        key=lambda r: r[sort_key], reverse=request.get("SortOrder", "Descending") == "Descending"
    )
    summaries = [{key: r[key] for key in summary_keys if key in r} for r in selected]
    return paginate(summaries, request, operation)


def truncate_reason(reason: str, limit: int = FAILURE_REASON_LIMIT) -> str:
    """FailureReason holds at most 1024 characters: keep the start (what failed) and the end
    (the error a traceback ends with)."""
    if len(reason) <= limit:
        return reason
    head = limit // 4
    return reason[:head] + " ... " + reason[-(limit - head - 5) :]


def new_instance_id() -> str:
    """An EC2-style instance id, as in endpoint log stream names (``AllTraffic/i-0abc...``)."""
    return "i-0" + secrets.token_hex(8)
