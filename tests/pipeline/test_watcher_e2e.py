"""The watcher DAG through `airflow dags test`, against the local runtime's S3: a changed source
adds exactly one event to the `dog_breed_dataset` asset and queues the pipeline; an unchanged
source adds none."""

from __future__ import annotations

import json
import sqlite3

import pytest
import yaml

pytestmark = pytest.mark.e2e

WATCHER = "dog_breed_dataset_watcher"


@pytest.fixture(scope="module")
def watched(new_airflow_home):
    """An Airflow home whose deployment settings name a generated dataset as the source."""
    from demo.dataset import make_dataset

    runner = new_airflow_home("watcher_home")
    home = runner.home
    dataset = make_dataset(home / "dataset", num_classes=2, image_size=16,
                           images_per_class={"train": 2, "valid": 1, "test": 1})  # fmt: skip
    profile = yaml.safe_load((home / "deployment-profile.yaml").read_text())
    profile["dataset"]["source"] = str(dataset)
    profile["aws"] = {"bucket": "watcher-e2e"}
    (home / "deployment-profile.yaml").write_text(json.dumps(profile))
    for command in (("db", "migrate"), ("dags", "reserialize"),
                    ("dags", "unpause", "dog_breed_classifier")):  # fmt: skip
        result = runner.run(*command, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
    return runner, dataset


def refresh_events(runner) -> tuple[list[dict], list[str]]:
    with sqlite3.connect(runner.home / "airflow.db") as db:
        events = db.execute(
            "SELECT e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id WHERE a.name = ?",
            ("dog_breed_dataset",),
        ).fetchall()
        queued = db.execute("SELECT target_dag_id FROM asset_dag_run_queue").fetchall()
    return [json.loads(extra) for (extra,) in events], [dag_id for (dag_id,) in queued]


def poll(runner) -> str:
    result = runner.run("dags", "test", WATCHER)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    return output


def test_a_changed_source_triggers_the_pipeline_once_and_an_unchanged_one_never(watched):
    runner, dataset = watched
    first = poll(runner)
    assert "never staged" in first
    events, queued = refresh_events(runner)
    assert len(events) == 1 and queued == ["dog_breed_classifier"]
    assert events[0]["source"] == str(dataset)

    assert f"{dataset} is unchanged since" in poll(runner)
    assert len(refresh_events(runner)[0]) == 1

    image = sorted((dataset / "train" / "001.Affenpinscher").iterdir())
    image[0].write_bytes(image[1].read_bytes())
    changed = poll(runner)
    assert f"changed from snapshot {events[0]['snapshot_id']} to " in changed
    events, _ = refresh_events(runner)
    assert len(events) == 2 and events[1]["snapshot_id"] != events[0]["snapshot_id"]
