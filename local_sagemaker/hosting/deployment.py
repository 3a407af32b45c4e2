"""Blue/green endpoint updates as UpdateEndpoint's DeploymentConfig asks: shifts, baking, rollback.

The new (green) deployment runs beside the old (blue) one. Traffic moves to it in the shifts of
``BlueGreenUpdatePolicy.TrafficRoutingConfiguration``:
- ``ALL_AT_ONCE``: all of it;
- ``CANARY``: ``CanarySize`` first, then the rest;
- ``LINEAR``: ``LinearStepSize`` more at each shift until all of it.
A size is a percentage of the green fleet's capacity (``CAPACITY_PERCENT``) or a number of its
instances (``INSTANCE_COUNT``). Each shift is followed by a baking period of
``WaitIntervalInSeconds``; once all traffic is on green, blue is kept for
``TerminationWaitInSeconds`` more. Without a DeploymentConfig the update is all at once with no
baking: the runtime's behaviour before it honoured DeploymentConfig.

Alarms. The runtime has no CloudWatch metrics: it evaluates every alarm named in
``AutoRollbackConfiguration.Alarms`` as the alarm AWS's guardrails guide sets up for this, on the
green fleet's own invocations: ``Invocation5XXErrors`` (the container answered 5xx, did not answer
in time, or could not be reached) divided by ``Invocations`` over the current baking period, in
ALARM above ``ALARM_ERROR_RATE``. An alarm in ALARM during baking rolls the update back: all
traffic returns to blue and green is stopped, as SageMaker does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from local_sagemaker.errors import ValidationException
from local_sagemaker.hosting.fleet import Deployment, EndpointFleet

# The alarm's threshold: the share of the green fleet's invocations that may fail with 5xx.
ALARM_ERROR_RATE = 0.01
# How often a baking period looks at the alarm.
ALARM_PERIOD_S = 0.2


@dataclass(frozen=True)
class TrafficPlan:
    """How an update moves traffic to the green fleet."""

    shares: tuple[float, ...]  # green's share of invocations after each shift; the last is 1.0
    bake_seconds: float
    termination_wait_seconds: float
    alarms: tuple[str, ...]


ALL_AT_ONCE_NO_BAKING = TrafficPlan((1.0,), 0.0, 0.0, ())


def _share(size: Mapping | None, green_instances: int, field: str) -> float:
    if not size:
        raise ValidationException(f"{field} is required for this traffic routing type.")
    if size["Type"] == "CAPACITY_PERCENT":
        if not 0 < size["Value"] <= 100:
            raise ValidationException(f"{field}.Value must be a percentage from 1 to 100.")
        return size["Value"] / 100
    return min(1.0, size["Value"] / green_instances)


def traffic_plan(deployment_config: Mapping | None, green_instances: int) -> TrafficPlan:
    """The plan of a DeploymentConfig (None: all at once, no baking); ValidationException names
    a setting the runtime cannot honour (a rolling update, a missing size)."""
    if not deployment_config:
        return ALL_AT_ONCE_NO_BAKING
    policy = deployment_config.get("BlueGreenUpdatePolicy")
    if policy is None:
        raise ValidationException(
            "The local SageMaker runtime honours BlueGreenUpdatePolicy deployments only; "
            "RollingUpdatePolicy is not supported."
        )
    routing = policy["TrafficRoutingConfiguration"]
    kind = routing["Type"]
    if kind == "ALL_AT_ONCE":
        shares = (1.0,)
    elif kind == "CANARY":
        canary = _share(routing.get("CanarySize"), green_instances, "CanarySize")
        shares = (canary, 1.0) if canary < 1.0 else (1.0,)
    else:  # LINEAR
        step = _share(routing.get("LinearStepSize"), green_instances, "LinearStepSize")
        count = int(-(-1.0 // step))  # ceil(1 / step)
        shares = tuple(min(1.0, step * shift) for shift in range(1, count + 1))
    alarms = deployment_config.get("AutoRollbackConfiguration", {}).get("Alarms", [])
    return TrafficPlan(
        shares=shares,
        bake_seconds=float(routing["WaitIntervalInSeconds"]),
        termination_wait_seconds=float(policy.get("TerminationWaitInSeconds", 0)),
        alarms=tuple(alarm["AlarmName"] for alarm in alarms),
    )


def alarm_reason(green: Deployment, since: tuple[int, int], alarms: tuple[str, ...]) -> str | None:
    """Why the alarms are in ALARM for `green`'s invocations after the counts `since`, or None."""
    invocations, errors = (now - before for now, before in zip(green.counts(), since, strict=True))
    if not alarms or not invocations or errors / invocations <= ALARM_ERROR_RATE:
        return None
    return (
        f"Alarm {', '.join(alarms)} went into ALARM during baking: the new fleet answered "
        f"{errors} of {invocations} invocations with 5xx errors (threshold "
        f"{ALARM_ERROR_RATE:.0%}); traffic was rolled back to the previous endpoint config."
    )


def shift_traffic(
    fleet: EndpointFleet,
    endpoint_name: str,
    green: Deployment,
    plan: TrafficPlan,
    still_wanted: Callable[[], bool],
) -> str | None:
    """Move `endpoint_name`'s traffic to `green` along `plan`, baking after each shift.

    Returns None once green takes all traffic (the caller installs it after the termination
    wait), or early when `still_wanted()` turns False (the endpoint was deleted). Returns the
    alarm's reason when it rolled back instead: blue takes all traffic again. The caller stops
    whichever deployment no longer serves."""
    for share in plan.shares:
        fleet.shift(endpoint_name, green, share)
        since = green.counts()
        deadline = time.monotonic() + plan.bake_seconds
        while still_wanted():
            reason = alarm_reason(green, since, plan.alarms)
            if reason:
                fleet.shift(endpoint_name, green, 0.0)
                return reason
            left = deadline - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(ALARM_PERIOD_S, left))
    return None
