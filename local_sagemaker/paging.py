"""Reading every page of a List* operation of the runtime's own services (NextToken paging)."""


def every_item(list_operation, list_key: str, request: dict | None = None) -> list[dict]:
    """All items ``list_operation(request)`` pages through under ``list_key``, in its order."""
    items, request = [], {**(request or {}), "MaxResults": 100}
    while True:
        page = list_operation(request)
        items += page[list_key]
        if not page.get("NextToken"):
            return items
        request = {**request, "NextToken": page["NextToken"]}
