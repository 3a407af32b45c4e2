"""CloudWatch Logs' on-disk form survives a kill in the middle of a write."""

from local_sagemaker.logs import LogService


def test_a_torn_last_line_is_dropped_and_appends_continue(tmp_path):
    logs = LogService(tmp_path, "us-east-1", "123456789012")
    logs.append("/group", "stream", "complete line")
    [stream_file] = (tmp_path / "logs").rglob("*.jsonl")
    with open(stream_file, "a") as handle:
        handle.write('{"timestamp": 1, "mess')  # what a kill -9 mid-write leaves

    reopened = LogService(tmp_path, "us-east-1", "123456789012")
    reopened.append("/group", "stream", "after restart")

    again = LogService(tmp_path, "us-east-1", "123456789012")
    events = again.get_log_events({"logGroupName": "/group", "logStreamName": "stream"})["events"]
    assert [e["message"] for e in events] == ["complete line", "after restart"]
