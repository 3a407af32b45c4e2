"""Metric scraping: every log line is matched against each MetricDefinition's regex, as SageMaker
scans a training container's stdout and stderr (behaviour doc 3.5)."""

import re
import threading
import time


def compile_metric_definitions(definitions: list[dict]) -> list[tuple[str, re.Pattern]]:
    """(name, compiled regex) per definition; raises re.error for a regex Python cannot compile."""
    return [(d["Name"], re.compile(d["Regex"])) for d in definitions]


def matched_number(pattern: re.Pattern, line: str) -> float | None:
    """The first capture group (or the whole match) of ``pattern`` in ``line`` as a float."""
    match = pattern.search(line)
    if match is None:
        return None
    text = match.group(1) if pattern.groups else match.group(0)
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


class MetricScraper:
    """Turns log lines into metric points ``{"Value", "Timestamp", "Epoch"}``.

    ``Epoch`` is the 1-based count of values seen so far for that metric: with the project's
    one-line-per-epoch metrics it is the epoch number. ``Timestamp`` is epoch seconds.
    Thread-safe: lines may come from several pipes and hosts at once.
    """

    def __init__(self, definitions: list[dict], previous: dict[str, list] | None = None):
        self._patterns = compile_metric_definitions(definitions)
        self._lock = threading.Lock()
        self._counts = {name: len((previous or {}).get(name, [])) for name, _ in self._patterns}

    def scrape(self, line: str) -> list[tuple[str, dict]]:
        """The (metric name, point) pairs this line yields, in definition order."""
        found = []
        for name, pattern in self._patterns:
            value = matched_number(pattern, line)
            if value is None:
                continue
            with self._lock:
                self._counts[name] += 1
                found.append(
                    (name, {"Value": value, "Timestamp": time.time(), "Epoch": self._counts[name]})
                )
        return found
