"""CloudWatch Logs: log groups, streams and events, served as ``Logs_20140328.<Op>`` and written to
by the runtime's job executors through :meth:`LogService.append`.

Events are kept in memory and appended, one JSON line each, to
``<data_dir>/logs/<group>/<stream>.jsonl`` (names percent-encoded), flushed per line so a killed
runtime loses nothing a reader has already seen. Pagination tokens are ``f/<index>`` and
``b/<index>`` positions in the stream, and, as in AWS, GetLogEvents returns the token it was given
when there is nothing new: the provider's ``print_log`` relies on that to know it is caught up.
"""

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote

from local_sagemaker.errors import (
    InvalidParameterException,
    ResourceAlreadyExistsException,
    ResourceNotFoundException,
)
from local_sagemaker.store import write_file_atomically

DEFAULT_EVENT_LIMIT = 10000
DEFAULT_DESCRIBE_LIMIT = 50


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class LogStream:
    name: str
    creation_time: int
    events: list[dict] = field(default_factory=list)

    @property
    def stored_bytes(self) -> int:
        return sum(len(event["message"]) for event in self.events)

    def describe(self, group_arn: str) -> dict:
        described = {
            "logStreamName": self.name,
            "creationTime": self.creation_time,
            "arn": f"{group_arn}:log-stream:{self.name}",
            "storedBytes": self.stored_bytes,
        }
        if self.events:
            described.update(
                firstEventTimestamp=self.events[0]["timestamp"],
                lastEventTimestamp=self.events[-1]["timestamp"],
                lastIngestionTime=self.events[-1]["ingestionTime"],
                uploadSequenceToken=str(len(self.events)),
            )
        return described


@dataclass
class LogGroup:
    name: str
    creation_time: int
    directory: Path
    streams: dict[str, LogStream] = field(default_factory=dict)


def _complete_lines(path: Path) -> list[str]:
    """The file's complete lines; a torn last line (a kill mid-write) is cut off the file so
    later appends start on a fresh line."""
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    if len(complete) != len(data):
        with open(path, "r+b") as handle:
            handle.truncate(len(complete))
    return complete.decode().splitlines()


def group_directory_name(group_name: str) -> str:
    """The folder name of a log group: its name percent-encoded, so no name (not ``.`` or ``..``,
    which CloudWatch accepts) can name a folder outside the logs folder."""
    encoded = quote(group_name, safe="")
    return "%2E" * len(encoded) if set(encoded) == {"."} else encoded


def _parse_token(token: str | None, direction: str) -> int | None:
    if token is None:
        return None
    prefix, _, index = token.partition("/")
    if prefix != direction or not index.isdigit():
        raise InvalidParameterException(f"The specified nextToken is invalid: {token}")
    return int(index)


def _select_window(events: list[dict], request: dict) -> tuple[list[dict], int, int]:
    """GetLogEvents' page of ``events``: (page, index of its first event, index after its last)."""
    limit = request.get("limit", DEFAULT_EVENT_LIMIT)
    token = request.get("nextToken")
    if token is not None and token.startswith("b/"):
        end = min(_parse_token(token, "b"), len(events))
        start = max(0, end - limit)
    elif token is not None:
        start = min(_parse_token(token, "f"), len(events))
        end = min(len(events), start + limit)
    elif request.get("startFromHead", False):
        start, end = 0, min(len(events), limit)
    else:
        end = len(events)
        start = max(0, end - limit)
    return events[start:end], start, end


class LogService:
    """The CloudWatch Logs backend (one per runtime, available to backends as ``self.logs``)."""

    def __init__(self, data_dir: Path, region: str, account: str):
        self.root = Path(data_dir) / "logs"
        self.region = region
        self.account = account
        self._lock = threading.RLock()
        self._groups: dict[str, LogGroup] = {}
        self._load()

    # -- persistence ---------------------------------------------------------------------------

    def _load(self) -> None:
        if not self.root.is_dir():
            return
        for group_dir in sorted(p for p in self.root.iterdir() if p.is_dir()):
            if not (group_dir / "group.json").exists():
                continue  # killed between mkdir and the atomic group.json write
            meta = json.loads((group_dir / "group.json").read_text())
            group = LogGroup(unquote(group_dir.name), meta["creationTime"], group_dir)
            for stream_file in sorted(group_dir.glob("*.jsonl")):
                lines = _complete_lines(stream_file)
                if lines:
                    name = unquote(stream_file.stem)
                    events = [json.loads(line) for line in lines[1:]]
                    group.streams[name] = LogStream(
                        name, json.loads(lines[0])["creationTime"], events
                    )
            self._groups[group.name] = group

    def _append_line(self, group: LogGroup, stream_name: str, entry: dict) -> None:
        with open(group.directory / f"{quote(stream_name, safe='')}.jsonl", "a") as handle:
            handle.write(json.dumps(entry) + "\n")

    # -- runtime-side API ----------------------------------------------------------------------

    def ensure_stream(self, group_name: str, stream_name: str) -> None:
        """Create the group and stream if they do not exist yet."""
        with self._lock:
            if group_name not in self._groups:
                self.create_log_group({"logGroupName": group_name})
            if stream_name not in self._groups[group_name].streams:
                self.create_log_stream({"logGroupName": group_name, "logStreamName": stream_name})

    def append(self, group_name: str, stream_name: str, message: str, timestamp_ms=None) -> None:
        """Add one event (a log line without its newline), creating group and stream as needed."""
        with self._lock:
            self.ensure_stream(group_name, stream_name)
            group = self._groups[group_name]
            ingested = now_ms()
            event = {
                "timestamp": ingested if timestamp_ms is None else timestamp_ms,
                "message": message,
                "ingestionTime": ingested,
            }
            group.streams[stream_name].events.append(event)
            self._append_line(group, stream_name, event)

    # -- API operations ------------------------------------------------------------------------

    def _group(self, name: str) -> LogGroup:
        group = self._groups.get(name)
        if group is None:
            raise ResourceNotFoundException("The specified log group does not exist.")
        return group

    def _stream(self, group_name: str, stream_name: str) -> LogStream:
        stream = self._group(group_name).streams.get(stream_name)
        if stream is None:
            raise ResourceNotFoundException("The specified log stream does not exist.")
        return stream

    def _group_arn(self, name: str) -> str:
        return f"arn:aws:logs:{self.region}:{self.account}:log-group:{name}"

    def create_log_group(self, request: dict) -> dict:
        name = request["logGroupName"]
        with self._lock:
            if name in self._groups:
                raise ResourceAlreadyExistsException("The specified log group already exists")
            directory = self.root / group_directory_name(name)
            directory.mkdir(parents=True, exist_ok=True)
            created = now_ms()
            write_file_atomically(
                directory / "group.json", json.dumps({"creationTime": created}).encode()
            )
            self._groups[name] = LogGroup(name, created, directory)
        return {}

    def create_log_stream(self, request: dict) -> dict:
        with self._lock:
            group = self._group(request["logGroupName"])
            name = request["logStreamName"]
            if name in group.streams:
                raise ResourceAlreadyExistsException("The specified log stream already exists")
            stream = LogStream(name, now_ms())
            group.streams[name] = stream
            self._append_line(group, name, {"creationTime": stream.creation_time})
        return {}

    def describe_log_groups(self, request: dict) -> dict:
        prefix = request.get("logGroupNamePrefix", "")
        with self._lock:
            groups = [
                {
                    "logGroupName": group.name,
                    "creationTime": group.creation_time,
                    "arn": f"{self._group_arn(group.name)}:*",
                    "logGroupArn": self._group_arn(group.name),
                    "storedBytes": sum(s.stored_bytes for s in group.streams.values()),
                }
                for name, group in sorted(self._groups.items())
                if name.startswith(prefix)
            ]
        return self._page(groups, request, "logGroups")

    def describe_log_streams(self, request: dict) -> dict:
        with self._lock:
            group = self._group(request["logGroupName"])
            prefix = request.get("logStreamNamePrefix", "")
            streams = [s for name, s in group.streams.items() if name.startswith(prefix)]
            if request.get("orderBy", "LogStreamName") == "LastEventTime":
                streams.sort(key=lambda s: s.events[-1]["timestamp"] if s.events else 0)
            else:
                streams.sort(key=lambda s: s.name)
            if request.get("descending", False):
                streams.reverse()
            described = [s.describe(self._group_arn(group.name)) for s in streams]
        return self._page(described, request, "logStreams")

    @staticmethod
    def _page(items: list[dict], request: dict, key: str, default_limit=DEFAULT_DESCRIBE_LIMIT):
        """``items[nextToken : nextToken + limit]`` under ``key``, with the next token if any."""
        if not str(request.get("nextToken") or 0).isdigit():
            raise InvalidParameterException(
                f"The specified nextToken is invalid: {request['nextToken']}"
            )
        start = int(request.get("nextToken") or 0)
        end = start + request.get("limit", default_limit)
        response = {key: items[start:end]}
        if end < len(items):
            response["nextToken"] = str(end)
        return response

    def get_log_events(self, request: dict) -> dict:
        with self._lock:
            stream = self._stream(request["logGroupName"], request["logStreamName"])
            events = [
                {k: e[k] for k in ("timestamp", "message", "ingestionTime")}
                for e in stream.events
                if request.get("startTime", 0) <= e["timestamp"]
                and ("endTime" not in request or e["timestamp"] < request["endTime"])
            ]
        page, start, end = _select_window(events, request)
        return {"events": page, "nextForwardToken": f"f/{end}", "nextBackwardToken": f"b/{start}"}

    def filter_log_events(self, request: dict) -> dict:
        """Events of the group's streams, by time; ``filterPattern`` matches as plain substrings
        (every space-separated term must appear), which covers CloudWatch's unquoted terms."""
        terms = request.get("filterPattern", "").replace('"', "").split()
        names = set(request.get("logStreamNames", []))
        prefix = request.get("logStreamNamePrefix", "")
        with self._lock:
            group = self._group(request["logGroupName"])
            matched = [
                {
                    "logStreamName": stream.name,
                    "timestamp": e["timestamp"],
                    "message": e["message"],
                    "ingestionTime": e["ingestionTime"],
                    "eventId": f"{stream.name}/{index}",
                }
                for stream in group.streams.values()
                if (not names or stream.name in names) and stream.name.startswith(prefix)
                for index, e in enumerate(stream.events)
                if request.get("startTime", 0) <= e["timestamp"]
                and ("endTime" not in request or e["timestamp"] <= request["endTime"])
                and all(term in e["message"] for term in terms)
            ]
        matched.sort(key=lambda e: (e["timestamp"], e["logStreamName"]))
        response = self._page(matched, request, "events", DEFAULT_EVENT_LIMIT)
        response["searchedLogStreams"] = []
        return response

    def put_log_events(self, request: dict) -> dict:
        with self._lock:
            self._stream(request["logGroupName"], request["logStreamName"])
            for event in sorted(request["logEvents"], key=lambda e: e["timestamp"]):
                self.append(
                    request["logGroupName"],
                    request["logStreamName"],
                    event["message"],
                    event["timestamp"],
                )
        return {"nextSequenceToken": "0"}
