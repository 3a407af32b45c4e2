"""Request validation against botocore's service model, with SageMaker's exact error texts.

botocore checks only ``required``, ``min`` and types on the client side; lengths, patterns, enums
and ranges are the server's job (behaviour doc 4.1), so the runtime walks the operation's input
shape itself. Messages follow AWS's format (behaviour doc 4.2)::

    1 validation error detected: Value 'bad_name' at 'trainingJobName' failed to satisfy
    constraint: Member must satisfy regular expression pattern: ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}

Member paths are lower camel case, list items are ``<list>.<n>.member`` (1-based), and map
entries are reported at the map with ``Map value must satisfy constraint: [...]``.
"""

import functools
import re

from botocore.model import Shape

from local_sagemaker.errors import ValidationException

NUMERIC_TYPES = {"integer", "long", "double", "float"}
PYTHON_TYPES = {
    "string": (str,),
    "integer": (int,),
    "long": (int,),
    "double": (int, float),
    "float": (int, float),
    "boolean": (bool,),
    "structure": (dict,),
    "map": (dict,),
    "list": (list,),
    # JSON 1.1 sends timestamps as epoch seconds; botocore never sends an ISO string.
    "timestamp": (int, float),
    "blob": (str, bytes),
}


def _member_path(parent: str, member: str) -> str:
    name = member[:1].lower() + member[1:]
    return f"{parent}.{name}" if parent else name


@functools.lru_cache(maxsize=4096)
def _compiled(pattern: str):
    """The pattern as a Python regex, or None when it uses Java-only syntax we cannot check."""
    try:
        return re.compile(pattern)
    except re.error:
        return None


def _failure(value, path: str, constraint: str) -> str:
    shown = "null" if value is None else f"'{value}'"
    return f"Value {shown} at '{path}' failed to satisfy constraint: {constraint}"


def _scalar_constraints(shape: Shape, value) -> list[str]:
    """The constraint texts that ``value`` (of the right Python type) violates."""
    meta = shape.metadata
    broken = []
    if shape.type_name in ("string", "list", "map"):
        if "min" in meta and len(value) < meta["min"]:
            broken.append(f"Member must have length greater than or equal to {meta['min']}")
        if "max" in meta and len(value) > meta["max"]:
            broken.append(f"Member must have length less than or equal to {meta['max']}")
    if shape.type_name == "string":
        pattern = meta.get("pattern")
        compiled = _compiled(pattern) if pattern else None
        if compiled is not None and compiled.fullmatch(value) is None:
            # AWS prints the pattern anchored, as in the service model of the day (doc 4.2).
            anchored = pattern if pattern.startswith("^") else f"^{pattern}"
            broken.append(f"Member must satisfy regular expression pattern: {anchored}")
        if shape.enum and value not in shape.enum:
            broken.append(f"Member must satisfy enum value set: [{', '.join(shape.enum)}]")
    if shape.type_name in NUMERIC_TYPES:
        if "min" in meta and value < meta["min"]:
            broken.append(f"Member must have value greater than or equal to {meta['min']}")
        if "max" in meta and value > meta["max"]:
            broken.append(f"Member must have value less than or equal to {meta['max']}")
    return broken


def _check(shape: Shape, value, path: str, errors: list[str]) -> None:
    expected = PYTHON_TYPES.get(shape.type_name, (object,))
    # bool is an int in Python; AWS does not accept true for a number.
    if not isinstance(value, expected) or (
        isinstance(value, bool) and shape.type_name in NUMERIC_TYPES
    ):
        errors.append(_failure(value, path, f"Member must be of type {shape.type_name}"))
        return
    errors.extend(_failure(value, path, c) for c in _scalar_constraints(shape, value))
    if shape.type_name == "structure":
        for name in shape.required_members:
            if value.get(name) is None:
                errors.append(_failure(None, _member_path(path, name), "Member must not be null"))
        for name, member_value in value.items():
            if name in shape.members and member_value is not None:
                _check(shape.members[name], member_value, _member_path(path, name), errors)
    elif shape.type_name == "list":
        for index, item in enumerate(value, start=1):
            _check(shape.member, item, f"{path}.{index}.member", errors)
    elif shape.type_name == "map":
        _check_map_entries(shape, value, path, errors)


def _check_map_entries(shape: Shape, value: dict, path: str, errors: list[str]) -> None:
    for role, inner_shape, items in (
        ("key", shape.key, value.keys()),
        ("value", shape.value, value.values()),
    ):
        for item in items:
            inner: list[str] = []
            _check(inner_shape, item, path, inner)
            if inner:
                constraints = [text.split("constraint: ", 1)[1] for text in inner]
                errors.append(
                    _failure(
                        value,
                        path,
                        f"Map {role} must satisfy constraint: [{', '.join(constraints)}]",
                    )
                )
                break


def validation_errors(input_shape: Shape | None, request: dict) -> list[str]:
    """Every violation of ``input_shape`` in ``request``, in document order (empty when valid)."""
    errors: list[str] = []
    if input_shape is not None:
        _check(input_shape, request, "", errors)
    return errors


def validate_request(input_shape: Shape | None, request: dict) -> None:
    """Raise ValidationException with AWS's text when ``request`` violates ``input_shape``."""
    errors = validation_errors(input_shape, request)
    if errors:
        count = len(errors)
        noun = "error" if count == 1 else "errors"
        raise ValidationException(f"{count} validation {noun} detected: {'; '.join(errors)}")


def pagination_offset(token: str | None) -> int:
    """The list offset a NextToken of this runtime stands for (0 without one).

    Tokens are the decimal offsets the List* operations issue; anything else (garbage, a
    negative number) is refused as AWS refuses a token it did not issue."""
    if token is None or token == "":
        return 0
    if not token.isdigit() or not token.isascii():
        raise ValidationException(f"Invalid pagination token {token!r}.")
    return int(token)
