"""CloudWatch metrics of training jobs: what SageMaker publishes in ``/aws/sagemaker/TrainingJobs``.

SageMaker publishes every value its MetricDefinitions scrape from a training job's log as metric
``<definition name>`` in that namespace, with dimension ``TrainingJobName = <job>`` (what the SDK's
``TrainingJobAnalytics`` asks for) and per instance ``Host = <job>/algo-<n>``; the runtime answers
both (its jobs' metrics are scraped from every host's log into one series, given as ``algo-1``).
The runtime keeps
the same values with their timestamps (the training family's ``training_metric_series``), so
``GetMetricStatistics``, ``GetMetricData`` and ``ListMetrics`` are answered from them, over the
JSON protocol (what botocore sends) and the Query protocol (older clients). Multi-model
endpoints' metrics (``LoadedModelCount``, ``ModelCacheHit``, ``ModelLoadingTime``, ...) are in
``AWS/SageMaker`` with dimensions ``EndpointName`` and ``VariantName``, as SageMaker publishes
them; GetMetricStatistics and GetMetricData answer them (ListMetrics lists training metrics
only). Any other namespace holds no metrics here, as an AWS account's namespace without data
holds none.

Statistics follow CloudWatch: values are grouped by ``Period`` (aligned to the epoch), each group
gives ``SampleCount``, ``Average``, ``Sum``, ``Minimum`` and ``Maximum``, unit ``None``.
"""

import datetime
import math
import statistics

from local_sagemaker.errors import AwsError
from local_sagemaker.paging import every_item, paginate

NAMESPACE = "/aws/sagemaker/TrainingJobs"
ENDPOINT_NAMESPACE = "AWS/SageMaker"
HOST_DIMENSION = "Host"
JOB_DIMENSION = "TrainingJobName"
STATISTICS = {
    "SampleCount": len,
    "Average": statistics.fmean,
    "Sum": math.fsum,
    "Minimum": min,
    "Maximum": max,
}
# CloudWatch's caps: datapoints per GetMetricStatistics answer, metrics per ListMetrics page.
MAX_DATAPOINTS = 1440
HIGH_RESOLUTION_PERIODS = (1, 5, 10, 30)
BY_NAME = {"SortBy": "Name", "SortOrder": "Ascending"}


class InvalidParameterValue(AwsError):
    code = "InvalidParameterValue"
    status = 400


class InvalidParameterCombination(AwsError):
    code = "InvalidParameterCombination"
    status = 400


def _utc(epoch_seconds: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(epoch_seconds, datetime.UTC)


def _check_period(period: int) -> None:
    if period not in HIGH_RESOLUTION_PERIODS and period % 60:
        raise InvalidParameterValue(
            f"The parameter Period must be 1, 5, 10, 30 or a multiple of 60; got {period}."
        )


def datapoints(points: list[dict], start: float, end: float, period: int, wanted) -> list[dict]:
    """CloudWatch datapoints of ``wanted`` statistics over ``points`` in ``[start, end)``."""
    buckets: dict[int, list[float]] = {}
    for point in points:
        if start <= point["Timestamp"] < end:
            bucket = int(point["Timestamp"] // period * period)
            buckets.setdefault(bucket, []).append(point["Value"])
    return [
        {"Timestamp": _utc(bucket), "Unit": "None"}
        | {name: STATISTICS[name](values) for name in wanted}
        for bucket, values in sorted(buckets.items())
    ]


class MetricsService:
    """CloudWatch's metric operations over the training family ``training`` (its public API:
    ``list_training_jobs`` and ``training_metric_series``) and the hosting family ``hosting``
    (``endpoint_metric_points``)."""

    def __init__(self, training, hosting=None):
        self.training = training
        self.hosting = hosting

    def _series(self, namespace: str, metric_name: str, dimensions: list[dict]) -> list[dict]:
        """The points of one metric, or none (an unknown job or metric has no data)."""
        if namespace == ENDPOINT_NAMESPACE and self.hosting is not None:
            named = {dimension["Name"]: dimension["Value"] for dimension in dimensions}
            if set(named) != {"EndpointName", "VariantName"}:
                return []
            points = self.hosting.endpoint_metric_points(
                named["EndpointName"], named["VariantName"]
            )
            return points.get(metric_name, [])
        if namespace != NAMESPACE or len(dimensions) != 1:
            return []
        (dimension,) = dimensions
        job_name, host = dimension["Value"], "algo-1"
        if dimension["Name"] == HOST_DIMENSION:
            job_name, _, host = job_name.rpartition("/")
        if dimension["Name"] not in (HOST_DIMENSION, JOB_DIMENSION) or host != "algo-1":
            return []
        try:
            return self.training.training_metric_series(job_name).get(metric_name, [])
        except AwsError:
            return []

    def get_metric_statistics(self, request: dict) -> dict:
        wanted = request.get("Statistics", [])
        if not wanted and not request.get("ExtendedStatistics"):
            raise InvalidParameterCombination(
                "Must specify either Statistics or ExtendedStatistics."
            )
        if request.get("ExtendedStatistics"):
            raise InvalidParameterValue(
                "ExtendedStatistics (percentiles) are not computed by the local SageMaker "
                "runtime; ask for Statistics (SampleCount, Average, Sum, Minimum, Maximum)."
            )
        start, end, period = request["StartTime"], request["EndTime"], request["Period"]
        _check_period(period)
        if end <= start:
            raise InvalidParameterValue("The parameter StartTime must be less than EndTime.")
        requested = math.ceil((end - start) / period)
        if requested > MAX_DATAPOINTS:
            raise InvalidParameterCombination(
                f"You have requested up to {requested} datapoints, which exceeds the limit of "
                f"{MAX_DATAPOINTS}. You may reduce the datapoints requested by increasing Period, "
                "or decreasing the time range."
            )
        points = self._series(
            request["Namespace"], request["MetricName"], request.get("Dimensions", [])
        )
        return {
            "Label": request["MetricName"],
            "Datapoints": datapoints(points, start, end, period, wanted),
        }

    def get_metric_data(self, request: dict) -> dict:
        start, end = request["StartTime"], request["EndTime"]
        results = []
        for query in request["MetricDataQueries"]:
            stat = query.get("MetricStat")
            if stat is None:
                raise InvalidParameterValue(
                    f"MetricDataQueries {query['Id']}: metric math (Expression) is not evaluated "
                    "by the local SageMaker runtime; give a MetricStat."
                )
            if stat["Stat"] not in STATISTICS:
                raise InvalidParameterValue(
                    f"MetricDataQueries {query['Id']}: Stat {stat['Stat']!r} is not one of "
                    f"{', '.join(STATISTICS)}."
                )
            _check_period(stat["Period"])
            metric = stat["Metric"]
            points = self._series(
                metric.get("Namespace", ""), metric.get("MetricName", ""),
                metric.get("Dimensions", []),
            )  # fmt: skip
            found = datapoints(points, start, end, stat["Period"], [stat["Stat"]])
            if request.get("ScanBy", "TimestampDescending") == "TimestampDescending":
                found.reverse()
            results.append({
                "Id": query["Id"],
                "Label": query.get("Label", metric.get("MetricName", "")),
                "Timestamps": [point["Timestamp"] for point in found],
                "Values": [point[stat["Stat"]] for point in found],
                "StatusCode": "Complete",
            })  # fmt: skip
        return {"MetricDataResults": results, "Messages": []}

    def list_metrics(self, request: dict) -> dict:
        namespace = request.get("Namespace", NAMESPACE)
        metrics = [] if namespace != NAMESPACE else self._all_metrics()
        metric_name = request.get("MetricName")
        wanted = request.get("Dimensions", [])
        selected = [
            metric
            for metric in metrics
            if metric_name in (None, metric["MetricName"])
            and all(_dimension_matches(metric["Dimensions"], filter_) for filter_ in wanted)
        ]
        return paginate(selected, request, "ListMetrics")

    def _all_metrics(self) -> list[dict]:
        metrics = []
        jobs = every_item(self.training.list_training_jobs, "TrainingJobSummaries", BY_NAME)
        for job_name in (job["TrainingJobName"] for job in jobs):
            for metric_name, points in sorted(
                self.training.training_metric_series(job_name).items()
            ):
                if points:
                    metrics += [
                        {"Namespace": NAMESPACE, "MetricName": metric_name,
                         "Dimensions": [{"Name": name, "Value": value}]}
                        for name, value in ((JOB_DIMENSION, job_name),
                                            (HOST_DIMENSION, f"{job_name}/algo-1"))
                    ]  # fmt: skip
        return metrics


def metrics_operations(metrics: MetricsService) -> dict:
    """The CloudWatch metric operations the runtime serves: operation -> method."""
    return {
        "GetMetricStatistics": metrics.get_metric_statistics,
        "GetMetricData": metrics.get_metric_data,
        "ListMetrics": metrics.list_metrics,
    }


def _dimension_matches(dimensions: list[dict], filter_: dict) -> bool:
    """A ListMetrics DimensionFilter: the name, and the value when the filter gives one."""
    return any(
        d["Name"] == filter_["Name"] and filter_.get("Value") in (None, d["Value"])
        for d in dimensions
    )
