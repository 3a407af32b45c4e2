"""The snapshot catalog in S3 (moto), and which snapshot a run trains on: backfills by their date
(catalogs with gaps, ties and clock skew), pins by id, every other run from the source."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sagemaker_lifecycle import staging
from sagemaker_lifecycle.settings import load_settings
from sagemaker_lifecycle.snapshots import (
    CatalogEntry,
    SnapshotCatalog,
    SnapshotChoiceError,
    choose_snapshot,
    new_entry,
    newest_as_of,
)

BUCKET = "dog-breed-classifier"
NOV = datetime(2026, 11, 1, tzinfo=UTC)


def entry(snapshot_id: str, as_of: datetime, published_at: datetime | None = None) -> CatalogEntry:
    return CatalogEntry(
        snapshot_id=snapshot_id, source="/data", classes=["001.A"], image_counts={"train": 1},
        manifest_uri=f"s3://{BUCKET}/datasets/{snapshot_id}/manifest.json",
        published_at=(published_at or as_of).isoformat(), as_of=as_of.isoformat(),
        published_by={"dag_id": "dog_breed_classifier", "run_id": f"run-{snapshot_id}"},
    )  # fmt: skip


def chosen(entries, cutoff) -> str:
    return newest_as_of(entries, cutoff, "s3://b/datasets/catalog/").snapshot_id


def test_a_backfill_date_takes_the_newest_snapshot_as_of_its_end_across_gaps():
    catalog = [entry("a", NOV), entry("b", NOV + timedelta(days=30))]  # a month without one
    assert chosen(catalog, NOV + timedelta(days=7)) == "a"
    assert chosen(catalog, NOV + timedelta(days=29, hours=23)) == "a"
    assert chosen(catalog, NOV + timedelta(days=30)) == "b"  # "at or before" includes the end
    assert chosen(catalog, NOV + timedelta(days=400)) == "b"


def test_a_date_before_the_first_snapshot_fails_naming_the_oldest():
    catalog = [entry("b", NOV + timedelta(days=3)), entry("a", NOV)]
    with pytest.raises(SnapshotChoiceError, match=r"published by 2026-10-31.*its oldest is a, "):
        newest_as_of(catalog, NOV - timedelta(days=1), "s3://b/datasets/catalog/")
    with pytest.raises(SnapshotChoiceError, match=r"\(it is empty\).*dataset_snapshot param"):
        newest_as_of([], NOV, "s3://b/datasets/catalog/")


def test_ties_on_as_of_go_to_the_later_publication_then_the_larger_id_in_any_listing_order():
    later = entry("c", NOV, published_at=NOV + timedelta(minutes=5))
    same = [entry("b", NOV), entry("a", NOV)]
    assert chosen([*same, later], NOV) == chosen([later, *reversed(same)], NOV) == "c"
    assert chosen(same, NOV) == chosen(list(reversed(same)), NOV) == "b"


def test_times_in_other_offsets_compare_as_instants():
    tokyo = timezone(timedelta(hours=9))
    # 08:00 in Tokyo on Nov 1 is 23:00 UTC on Oct 31: before the cutoff although it "reads" later.
    catalog = [
        entry("utc", NOV - timedelta(hours=2)),
        entry("tokyo", datetime(2026, 11, 1, 8, tzinfo=tokyo)),
    ]
    assert chosen(catalog, NOV) == "tokyo"


def test_as_of_is_the_publishing_runs_interval_end_whatever_the_workers_clock_says():
    staged = {"snapshot_id": "a", "source": "/d", "classes": ["001.A"], "image_counts": {},
              "manifest_uri": "s3://b/d/a/manifest.json"}  # fmt: skip
    fast_worker = new_entry(staged, {}, NOV, now=NOV + timedelta(minutes=7))
    assert fast_worker.as_of == NOV.isoformat()
    assert fast_worker.published_at == (NOV + timedelta(minutes=7)).isoformat()
    # A worker whose clock runs behind the scheduler's: its own time is the earlier one.
    slow_worker = new_entry(staged, {}, NOV, now=NOV - timedelta(minutes=2))
    assert slow_worker.as_of == (NOV - timedelta(minutes=2)).isoformat()
    # A backfill of that date takes it, as the run of that date did, though published after it.
    assert chosen([entry("old", NOV - timedelta(days=7)), fast_worker], NOV) == "a"


def test_a_time_without_offset_is_refused_naming_the_entry():
    naive = CatalogEntry(**{**entry("a", NOV).__dict__, "as_of": "2026-11-01T00:00:00"})
    with pytest.raises(ValueError, match=r"as_of of a '2026-11-01T00:00:00' has no UTC offset"):
        chosen([naive], NOV)


@pytest.fixture
def catalog(s3):
    s3.create_bucket(Bucket=BUCKET)
    return SnapshotCatalog(s3, BUCKET, "datasets")


def test_the_catalog_keeps_the_first_record_of_a_snapshot_and_never_rewrites_it(catalog, s3):
    # Conditional writes (If-None-Match: *): S3 makes the check and the write one step, so of
    # runs racing to record one snapshot exactly one wins. moto checks, then writes (a race it
    # loses about once in 40 tries), so this proves the sequence, not the race.
    first = entry("0123456789abcdef", NOV)
    assert catalog.record(first)
    assert not catalog.record(entry("0123456789abcdef", NOV + timedelta(days=1)))
    assert catalog.entries() == [first]
    assert catalog.entry("0123456789abcdef") == first
    key = "datasets/catalog/0123456789abcdef.json"
    assert CatalogEntry.from_json(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()) == first


def test_a_pin_to_an_unknown_snapshot_names_the_known_ones(catalog):
    catalog.record(entry("aaaaaaaaaaaaaaaa", NOV))
    with pytest.raises(SnapshotChoiceError, match=r"'bbbbbbbbbbbbbbbb' is not in s3://dog-breed-"
                       r"classifier/datasets/catalog/ \(recorded: aaaaaaaaaaaaaaaa\)"):  # fmt: skip
        choose_snapshot("manual", NOV, "bbbbbbbbbbbbbbbb", catalog)


def test_choice_by_run_type(catalog):
    catalog.record(entry("aaaaaaaaaaaaaaaa", NOV))
    catalog.record(entry("bbbbbbbbbbbbbbbb", NOV + timedelta(days=7)))
    for run_type in ("scheduled", "manual", "asset_triggered"):
        choice = choose_snapshot(run_type, NOV + timedelta(days=8), None, catalog)
        assert choice.entry is None and "stages the dataset source as it is now" in choice.reason
    backfill = choose_snapshot("backfill", NOV + timedelta(days=6), None, catalog)
    assert backfill.entry.snapshot_id == "aaaaaaaaaaaaaaaa"
    assert backfill.reason.startswith("backfill: aaaaaaaaaaaaaaaa is the newest snapshot as of")
    pinned = choose_snapshot("backfill", NOV + timedelta(days=8), "aaaaaaaaaaaaaaaa", catalog)
    assert pinned.entry.snapshot_id == "aaaaaaaaaaaaaaaa" and "pinned" in pinned.reason
    with pytest.raises(SnapshotChoiceError, match="no snapshot in s3://dog-breed-classifier/"):
        choose_snapshot("backfill", NOV - timedelta(days=1), None, catalog)


def test_a_recorded_snapshot_is_staged_without_its_source_and_must_still_be_complete(
    tiny_dataset, s3, tmp_path
):
    settings = load_settings(
        {"dataset": {"source": str(tiny_dataset), "cache_dir": str(tmp_path / "c")}}
    )
    staged = staging.stage(settings, s3).as_dict()
    recorded = new_entry(staged, {"run_id": "r1"}, NOV)
    (tiny_dataset / "train").rename(tmp_path / "gone")  # the source has changed since
    again = staging.use_recorded_snapshot(settings, s3, recorded)
    assert again.channels == staged["channels"] and again.reused_snapshot
    assert again.classes == staged["classes"] and again.image_counts == staged["image_counts"]
    s3.delete_object(Bucket=BUCKET, Key=f"datasets/{staged['snapshot_id']}/manifest.json")
    with pytest.raises(
        SnapshotChoiceError, match=r"in the catalog, but its manifest s3://\S+ is gone"
    ):
        staging.use_recorded_snapshot(settings, s3, recorded)
