"""Typed rule parameters parsed from SageMaker's string-only ``RuleParameters`` map.

SageMaker sends every rule parameter as a string (``{"threshold": "20.0"}``). Each rule declares
its parameters as :class:`Parameter` specs; :func:`parse_parameters` turns the raw map into typed
values, applies defaults and rejects unknown names or out-of-range values with a
:class:`RuleParameterError` that names the rule, the parameter, the requirement and the value.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

# Keys SageMaker (or the SDK) puts into RuleParameters that are not the rule's own parameters.
RESERVED_KEYS = frozenset({"rule_to_invoke", "base_trial"})


class RuleParameterError(ValueError):
    """A rule parameter is unknown, unparsable or outside its allowed range."""


@dataclass(frozen=True)
class Parameter:
    """One rule parameter: its name, how to parse the wire string, default and constraint.

    ``check`` returns True for an acceptable parsed value; ``requirement`` is the human
    phrase used in the error ("must be > 0").
    """

    name: str
    parse: Callable[[str], Any]
    default: Any
    check: Callable[[Any], bool] | None = None
    requirement: str = ""


def as_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("not a finite number")
    return value


def as_int(text: str) -> int:
    """An integer; "10.0" is accepted because AWS documents some step counts as Float."""
    value = float(text)
    if not value.is_integer():
        raise ValueError("not a whole number")
    return int(value)


def as_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"true", "1", "yes"}:
        return True
    if lowered in {"false", "0", "no"}:
        return False
    raise ValueError("not a boolean (true/false)")


def as_list(text: str) -> list[str]:
    """A list of strings, sent either as ``"a,b"`` or as a Python/JSON list ``"['a', 'b']"``."""
    stripped = text.strip()
    if not stripped or stripped == "None":
        return []
    if stripped.startswith("["):
        parsed = ast.literal_eval(stripped)
        if not isinstance(parsed, list) or not all(isinstance(item, str) for item in parsed):
            raise ValueError("not a list of strings")
        return parsed
    return [item.strip() for item in stripped.split(",") if item.strip()]


def as_mode(text: str) -> str | None:
    """An smdebug mode name (TRAIN, EVAL, PREDICT, GLOBAL); empty or "None" means "not given"."""
    stripped = text.strip().upper()
    if stripped in {"", "NONE"}:
        return None
    if stripped not in {"TRAIN", "EVAL", "PREDICT", "GLOBAL"}:
        raise ValueError("not one of TRAIN, EVAL, PREDICT, GLOBAL")
    return stripped


def positive(value: float) -> bool:
    return value > 0


def non_negative(value: float) -> bool:
    return value >= 0


def percentage(value: float) -> bool:
    return 0 <= value <= 100


def percent(name: str, default: float) -> Parameter:
    """A percentage in [0, 100]."""
    return Parameter(name, as_float, default, percentage, "must be in [0, 100]")


def count(name: str, default: int, minimum: int = 1) -> Parameter:
    """A whole number of steps or data points, at least ``minimum``."""
    return Parameter(
        name, as_int, default, lambda v: v >= minimum, f"must be an integer >= {minimum}"
    )


def number(name: str, default: float, strictly_positive: bool = False) -> Parameter:
    """A real number > 0 (``strictly_positive``) or >= 0."""
    if strictly_positive:
        return Parameter(name, as_float, default, positive, "must be > 0")
    return Parameter(name, as_float, default, non_negative, "must be >= 0")


def parse_parameters(
    rule_name: str, specs: Iterable[Parameter], raw: dict[str, str]
) -> dict[str, Any]:
    """Typed values for every spec (defaults filled in); raises RuleParameterError on bad input."""
    specs_by_name = {spec.name: spec for spec in specs}
    unknown = sorted(set(raw) - set(specs_by_name) - RESERVED_KEYS)
    if unknown:
        accepted = ", ".join(sorted(specs_by_name)) or "none"
        raise RuleParameterError(
            f"Rule {rule_name} does not accept parameter(s) {', '.join(unknown)}; "
            f"accepted parameters: {accepted}"
        )
    values = {}
    for name, spec in specs_by_name.items():
        if name not in raw:
            values[name] = spec.default
            continue
        text = str(raw[name])
        try:
            value = spec.parse(text)
        except (ValueError, SyntaxError) as error:
            raise RuleParameterError(
                f"Rule {rule_name}: parameter {name}={text!r} is invalid: {error}"
            ) from error
        if spec.check is not None and not spec.check(value):
            raise RuleParameterError(
                f"Rule {rule_name}: parameter {name}={text!r} {spec.requirement}"
            )
        values[name] = value
    return values
