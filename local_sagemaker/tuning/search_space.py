"""Parameter ranges of a tuning request, as Optuna distributions and as hyperparameter strings.

SageMaker sends `ParameterRanges` with min/max values as strings and hands every tuned value to
the training job as a string. This module owns both directions:
`SearchSpace.from_request(parameter_ranges)` validates the ranges (raising `InvalidTuningConfig`
with SageMaker-style messages), `distributions()` is what an Optuna sampler draws from, and
`hyperparameters(params)` / `params_from_hyperparameters(hps)` convert between an Optuna trial's
parameters and the `HyperParameters` map of a training job.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

MAX_TUNABLE_HYPERPARAMETERS = 30
MAX_HYPERPARAMETERS = 100


class InvalidTuningConfig(ValueError):
    """A tuning request SageMaker would reject; the message is the ValidationException text."""


@dataclass(frozen=True)
class IntegerParameter:
    """An `IntegerParameterRange`: Linear or Logarithmic (Auto is treated as Linear)."""

    name: str
    low: int
    high: int
    log: bool

    def distribution(self) -> BaseDistribution:
        return IntDistribution(self.low, self.high, log=self.log)

    def to_hyperparameter(self, value: Any) -> str:
        return str(int(value))

    def from_hyperparameter(self, text: str) -> Any:
        return int(text)

    def contains(self, value: Any) -> bool:
        return self.low <= value <= self.high


@dataclass(frozen=True)
class ContinuousParameter:
    """A `ContinuousParameterRange`.

    ReverseLogarithmic samples `1 - x` log-uniformly, which spreads trials densely near 1
    (SageMaker's intent for ranges like momentum in [0.9, 0.999]); Optuna only knows
    log-uniform, so the distribution is over `1 - x` and the conversions flip it back.
    """

    name: str
    low: float
    high: float
    scaling: str  # "Linear" | "Logarithmic" | "ReverseLogarithmic"

    def distribution(self) -> BaseDistribution:
        if self.scaling == "ReverseLogarithmic":
            return FloatDistribution(1.0 - self.high, 1.0 - self.low, log=True)
        return FloatDistribution(self.low, self.high, log=self.scaling == "Logarithmic")

    def to_hyperparameter(self, value: Any) -> str:
        number = 1.0 - value if self.scaling == "ReverseLogarithmic" else value
        # Sampling can overshoot a bound by one ulp after the 1 - x round trip.
        return repr(min(max(float(number), self.low), self.high))

    def from_hyperparameter(self, text: str) -> Any:
        number = float(text)
        return 1.0 - number if self.scaling == "ReverseLogarithmic" else number

    def contains(self, value: Any) -> bool:
        number = 1.0 - value if self.scaling == "ReverseLogarithmic" else value
        return self.low <= number <= self.high


@dataclass(frozen=True)
class CategoricalParameter:
    """A `CategoricalParameterRange`: values pass through verbatim (JSON-encoded or not)."""

    name: str
    values: tuple[str, ...]

    def distribution(self) -> BaseDistribution:
        return CategoricalDistribution(self.values)

    def to_hyperparameter(self, value: Any) -> str:
        return str(value)

    def from_hyperparameter(self, text: str) -> Any:
        return text

    def contains(self, value: Any) -> bool:
        return value in self.values


TunableParameter = IntegerParameter | ContinuousParameter | CategoricalParameter


def _number(kind: type, text: str, field: str, name: str) -> Any:
    try:
        number = kind(text)
    except (TypeError, ValueError):
        raise InvalidTuningConfig(
            f"The {field} '{text}' of hyperparameter '{name}' is not a valid "
            f"{'integer' if kind is int else 'number'}."
        ) from None
    if kind is float and not math.isfinite(number):
        raise InvalidTuningConfig(f"The {field} '{text}' of hyperparameter '{name}' is not finite.")
    return number


def _bounds(item: dict, kind: type) -> tuple[Any, Any]:
    name = item["Name"]
    low = _number(kind, item["MinValue"], "MinValue", name)
    high = _number(kind, item["MaxValue"], "MaxValue", name)
    if low > high:
        raise InvalidTuningConfig(
            f"The MinValue {item['MinValue']} of hyperparameter '{name}' is greater than "
            f"its MaxValue {item['MaxValue']}."
        )
    return low, high


def _check_scaling(name: str, scaling: str, low: float, high: float, *, continuous: bool) -> None:
    """SageMaker's constraints on ScalingType (behaviour doc 3.1)."""
    problem = None
    if scaling == "Logarithmic" and low <= 0:
        problem = "Logarithmic scaling requires MinValue greater than 0."
    elif scaling == "ReverseLogarithmic" and not continuous:
        problem = "ReverseLogarithmic scaling is only supported for continuous hyperparameters."
    elif scaling == "ReverseLogarithmic" and not (low >= 0 and high < 1):
        problem = "ReverseLogarithmic scaling requires 0 <= MinValue and MaxValue < 1."
    if problem:
        raise InvalidTuningConfig(f"Hyperparameter '{name}': {problem}")


def _integer(item: dict) -> IntegerParameter:
    name, scaling = item["Name"], item.get("ScalingType", "Auto")
    low, high = _bounds(item, int)
    _check_scaling(name, scaling, low, high, continuous=False)
    return IntegerParameter(name, low, high, log=scaling == "Logarithmic")


def _continuous(item: dict) -> ContinuousParameter:
    name, scaling = item["Name"], item.get("ScalingType", "Auto")
    low, high = _bounds(item, float)
    _check_scaling(name, scaling, low, high, continuous=True)
    return ContinuousParameter(name, low, high, "Linear" if scaling == "Auto" else scaling)


def _categorical(item: dict) -> CategoricalParameter:
    name, values = item["Name"], tuple(item["Values"])
    if not values:
        raise InvalidTuningConfig(f"Categorical hyperparameter '{name}' has no Values.")
    if len(set(values)) != len(values):
        raise InvalidTuningConfig(f"Categorical hyperparameter '{name}' has duplicate Values.")
    return CategoricalParameter(name, values)


@dataclass(frozen=True)
class SearchSpace:
    """The tunable hyperparameters of one tuning job, in request order."""

    parameters: tuple[TunableParameter, ...]

    @classmethod
    def from_request(
        cls, parameter_ranges: dict | None, static_hyperparameters: dict[str, str] | None = None
    ) -> SearchSpace:
        """Validate `ParameterRanges` (and its overlap with the static hyperparameters)."""
        ranges = parameter_ranges or {}
        if ranges.get("AutoParameters"):
            raise InvalidTuningConfig(
                "AutoParameters (Autotune) are not supported by the local SageMaker runtime; "
                "give explicit parameter ranges."
            )
        parameters = (
            [_integer(item) for item in ranges.get("IntegerParameterRanges", [])]
            + [_continuous(item) for item in ranges.get("ContinuousParameterRanges", [])]
            + [_categorical(item) for item in ranges.get("CategoricalParameterRanges", [])]
        )
        names = [parameter.name for parameter in parameters]
        if not names:
            raise InvalidTuningConfig("ParameterRanges must define at least one hyperparameter.")
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise InvalidTuningConfig(
                f"Hyperparameters {duplicates} are defined in more than one parameter range."
            )
        if len(names) > MAX_TUNABLE_HYPERPARAMETERS:
            raise InvalidTuningConfig(
                f"{len(names)} tunable hyperparameters exceed the limit of "
                f"{MAX_TUNABLE_HYPERPARAMETERS}."
            )
        static = static_hyperparameters or {}
        overlap = sorted(set(names) & set(static))
        if overlap:
            raise InvalidTuningConfig(
                f"Hyperparameters {overlap} are both static and tunable; "
                "a hyperparameter must be one or the other."
            )
        # The service adds `_tuning_objective_metric`, which counts towards the limit.
        total = len(names) + len(static) + 1
        if total > MAX_HYPERPARAMETERS:
            raise InvalidTuningConfig(
                f"{total} hyperparameters (static, tunable and _tuning_objective_metric) exceed "
                f"the limit of {MAX_HYPERPARAMETERS}."
            )
        return cls(tuple(parameters))

    def distributions(self) -> dict[str, BaseDistribution]:
        return {parameter.name: parameter.distribution() for parameter in self.parameters}

    def hyperparameters(self, params: dict[str, Any]) -> dict[str, str]:
        """The `TunedHyperParameters` strings for an Optuna trial's parameters."""
        return {p.name: p.to_hyperparameter(params[p.name]) for p in self.parameters}

    def params_from_hyperparameters(self, hyperparameters: dict[str, str]) -> dict[str, Any] | None:
        """Optuna parameters for a training job's hyperparameters, or None when one is missing
        or falls outside this space (a warm-start parent tuned over different ranges)."""
        params = {}
        for parameter in self.parameters:
            text = hyperparameters.get(parameter.name)
            if text is None:
                return None
            try:
                value = parameter.from_hyperparameter(text)
            except ValueError:
                return None
            if not parameter.contains(value):
                return None
            params[parameter.name] = value
        return params

    def grid(self) -> dict[str, list[str]]:
        """The Grid strategy's search space; only categorical ranges have one."""
        not_categorical = [
            p.name for p in self.parameters if not isinstance(p, CategoricalParameter)
        ]
        if not_categorical:
            raise InvalidTuningConfig(
                "The Grid strategy supports only categorical parameter ranges; "
                f"{not_categorical} are integer or continuous."
            )
        return {p.name: list(p.values) for p in self.parameters}

    def grid_size(self) -> int:
        return math.prod(len(values) for values in self.grid().values())
