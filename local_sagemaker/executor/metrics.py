"""Metric scraping: every log line is matched against each MetricDefinition's regex, as SageMaker
scans a training container's stdout and stderr (behaviour doc 3.5).

A regex comes from the request, so it must not be able to freeze the runtime:

- a regex that nests unbounded repeats (``(a+)+``, ``(\\w+\\s?)*``: exponential backtracking) is
  refused at CreateTrainingJob with a ValidationException;
- matching uses the ``regex`` engine with a time budget per line (and without holding the GIL),
  so any other slow pattern only loses that line's metric;
- only the first ``MAX_METRIC_LINE_CHARS`` characters of a line are scanned.
"""

import logging
import re
import threading
import time
from re import _constants as sre_constants  # the stdlib parser's node names
from re import _parser as sre_parser

import regex

log = logging.getLogger(__name__)
MATCH_BUDGET_SECONDS = 0.1
MAX_METRIC_LINE_CHARS = 4096
REPEATS = {sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT, sre_constants.POSSESSIVE_REPEAT}


def _nests_unbounded_repeats(nodes, inside_unbounded: bool = False) -> bool:
    """Whether a parsed regex has an unbounded repeat inside another unbounded repeat."""
    for op, argument in nodes:
        if op in REPEATS:
            _, maximum, body = argument
            unbounded = maximum == sre_constants.MAXREPEAT
            if (unbounded and inside_unbounded) or _nests_unbounded_repeats(
                body, inside_unbounded or unbounded
            ):
                return True
            continue
        if op == sre_constants.SUBPATTERN:
            children = [argument[-1]]
        elif op == sre_constants.BRANCH:
            children = argument[1]
        elif op in (sre_constants.ASSERT, sre_constants.ASSERT_NOT):
            children = [argument[1]]
        else:
            children = []
        if any(_nests_unbounded_repeats(child, inside_unbounded) for child in children):
            return True
    return False


def compile_metric_definitions(definitions: list[dict]) -> list[tuple[str, regex.Pattern]]:
    """(name, compiled regex) per definition; raises ValueError naming a regex that does not
    compile or that nests unbounded repeats."""
    compiled = []
    for definition in definitions:
        pattern = definition["Regex"]
        try:
            parsed = sre_parser.parse(pattern)
        except re.error as error:
            raise ValueError(f"{pattern!r} does not compile: {error}") from None
        if _nests_unbounded_repeats(parsed):
            raise ValueError(
                f"{pattern!r} nests an unbounded repeat inside another (as in (a+)+), which "
                "can take exponential time on one log line; write it without the nesting"
            )
        compiled.append((definition["Name"], regex.compile(pattern, regex.VERSION0)))
    return compiled


def matched_number(pattern: regex.Pattern, line: str) -> float | None:
    """The first capture group (or the whole match) of ``pattern`` in ``line`` as a float;
    None when there is none or the match ran out of its time budget."""
    try:
        match = pattern.search(
            line[:MAX_METRIC_LINE_CHARS], timeout=MATCH_BUDGET_SECONDS, concurrent=True
        )
    except TimeoutError:
        log.warning("metric regex %r gave up on a line after %s s", pattern.pattern,
                    MATCH_BUDGET_SECONDS)  # fmt: skip
        return None
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
