"""The candidates' side-by-side comparison, on hand-written 3-class reports whose expected numbers
were worked out by hand (6 validation images, 2 per class)."""

import json
from datetime import UTC, datetime

import pytest
from sagemaker_lifecycle import comparison

A, B, C = "001.Affenpinscher", "002.Afghan_hound", "003.Airedale_terrier"
CLASSES = [A, B, C]
BUCKET = "comparison-bucket"


def report(matrix, accuracy, top_2, f1s, macro_f1, job):
    """An evaluation report as evaluation.evaluate_transform returns it, for top_k = 2."""
    return {
        "count": 6,
        "accuracy": accuracy,
        "top_2_accuracy": top_2,
        "macro_f1": macro_f1,
        "per_class": {cls: {"f1": f1, "support": 2} for cls, f1 in zip(CLASSES, f1s, strict=True)},
        "classes": CLASSES,
        "confusion_matrix": matrix,
        "report_uri": f"s3://{BUCKET}/evaluation/{job}/report.json",
        "html_report_uri": f"s3://{BUCKET}/evaluation/{job}/report.html",
    }


# resnet50: one B image taken for C. F1: A 1, B 2/3 (p 1, r 1/2), C 0.8 (p 2/3, r 1).
RESNET = report([[2, 0, 0], [0, 1, 1], [0, 0, 2]], 5 / 6, 5 / 6, [1.0, 2 / 3, 0.8],
                (1 + 2 / 3 + 0.8) / 3, "transform-0")  # fmt: skip
# mobilenet_v2: an A taken for B, a C for A. F1: A 1/2, B 0.8 (p 2/3, r 1), C 2/3 (p 1, r 1/2).
MOBILENET = report([[1, 1, 0], [0, 2, 0], [1, 0, 1]], 4 / 6, 1.0, [0.5, 0.8, 2 / 3],
                   (0.5 + 0.8 + 2 / 3) / 3, "transform-1")  # fmt: skip
# simplecnn: both As and a C taken for B. F1: A 0, B 4/7 (p 2/5, r 1), C 2/3 (p 1, r 1/2).
SIMPLECNN = report([[0, 2, 0], [0, 2, 0], [0, 1, 1]], 3 / 6, 4 / 6, [0.0, 4 / 7, 2 / 3],
                   (0 + 4 / 7 + 2 / 3) / 3, "transform-2")  # fmt: skip


def entries():
    return [
        comparison.candidate_entry("resnet50", RESNET, 97_800_000, 3.0),
        comparison.candidate_entry("mobilenet_v2", MOBILENET, 9_200_000, 1.2),
        comparison.candidate_entry("simplecnn", SIMPLECNN, None, None),
    ]


def test_an_entry_holds_the_headline_numbers_the_size_and_the_time_per_image():
    entry = comparison.candidate_entry("resnet50", RESNET, 97_800_000, 3.0)
    assert entry["name"] == "resnet50"
    assert entry["accuracy"] == pytest.approx(5 / 6)
    assert entry["top_k_key"] == "top_2_accuracy"
    assert entry["top_2_accuracy"] == pytest.approx(5 / 6)
    assert entry["macro_f1"] == pytest.approx(0.822222, abs=1e-6)
    assert entry["model_bytes"] == 97_800_000
    assert entry["seconds_per_image"] == pytest.approx(0.5)  # 3 s over 6 images
    assert entry["per_class_f1"] == pytest.approx({A: 1.0, B: 0.666667, C: 0.8}, abs=1e-6)
    assert entry["html_report_uri"] == f"s3://{BUCKET}/evaluation/transform-0/report.html"


def test_an_unknown_transform_time_leaves_the_time_per_image_unknown():
    assert (
        comparison.candidate_entry("simplecnn", SIMPLECNN, None, None)["seconds_per_image"] is None
    )


def test_the_transform_time_is_read_from_its_description():
    start = datetime(2026, 12, 2, 10, 0, 0, tzinfo=UTC)
    ended = {"TransformStartTime": start, "TransformEndTime": start.replace(minute=2, second=3)}
    assert comparison.transform_seconds(ended) == 123.0
    assert comparison.transform_seconds({"TransformStartTime": start}) is None


def test_an_entry_of_something_that_is_not_a_report_names_what_it_lacks():
    with pytest.raises(ValueError, match=r"'resnet50'.*lacks confusion_matrix, top_<k>_accuracy"):
        not_a_report = {
            "count": 6,
            "accuracy": 1.0,
            "macro_f1": 1.0,
            "per_class": {},
            "classes": [],
        }
        comparison.candidate_entry("resnet50", not_a_report, None, None)


def test_a_negative_size_is_refused_naming_the_candidate():
    with pytest.raises(ValueError, match="'resnet50': model_bytes is -1"):
        comparison.candidate_entry("resnet50", RESNET, -1, 3.0)


def test_the_best_on_the_metric_wins_and_every_candidate_is_ranked_in_entry_order():
    result = comparison.compare_candidates(entries(), {}, "accuracy")
    assert result["winner"] == "resnet50"
    assert [(row["name"], row["rank"]) for row in result["candidates"]] == [
        ("resnet50", 1), ("mobilenet_v2", 2), ("simplecnn", 3)
    ]  # fmt: skip
    assert "confusion_matrix" not in result["candidates"][0]


def test_the_metric_decides_the_winner():
    result = comparison.compare_candidates(entries(), {}, "top_k_accuracy")
    assert result["winner"] == "mobilenet_v2"  # top-2: 1.0 against 5/6 and 4/6
    assert [row["rank"] for row in result["candidates"]] == [2, 1, 3]
    assert result["candidates"][1]["metric_value"] == 1.0


def test_per_class_f1_sits_side_by_side():
    result = comparison.compare_candidates(entries(), {}, "macro_f1")
    assert list(result["per_class_f1"]) == CLASSES
    assert result["per_class_f1"][A] == {"resnet50": 1.0, "mobilenet_v2": 0.5, "simplecnn": 0.0}
    assert result["per_class_f1"][B] == pytest.approx(
        {"resnet50": 0.666667, "mobilenet_v2": 0.8, "simplecnn": 0.571429}, abs=1e-6
    )


def test_confusions_that_differ_are_listed_most_different_first():
    differences = comparison.compare_candidates(entries(), {}, "accuracy")["confusion_differences"]
    assert [(d["true"], d["predicted"], d["counts"]) for d in differences] == [
        (A, B, {"resnet50": 0, "mobilenet_v2": 1, "simplecnn": 2}),
        (B, C, {"resnet50": 1, "mobilenet_v2": 0, "simplecnn": 0}),
        (C, A, {"resnet50": 0, "mobilenet_v2": 1, "simplecnn": 0}),
        (C, B, {"resnet50": 0, "mobilenet_v2": 0, "simplecnn": 1}),
    ]
    assert [d["spread"] for d in differences] == [2, 1, 1, 1]


def test_the_largest_difference_comes_first_wherever_it_lies_in_the_matrix():
    # vgg16 takes both C images for B (F1: A 1, B 2/3 with p 1/2 and r 1, C 0); resnet50 takes
    # one B for C: C -> B differs by 2, B -> C (earlier in the matrix) by 1.
    vgg = report([[2, 0, 0], [0, 2, 0], [0, 2, 0]], 4 / 6, 4 / 6, [1.0, 2 / 3, 0.0],
                 (1 + 2 / 3) / 3, "transform-3")  # fmt: skip
    pair = [entries()[0], comparison.candidate_entry("vgg16", vgg, None, None)]
    differences = comparison.compare_candidates(pair, {}, "accuracy")["confusion_differences"]
    assert [(d["true"], d["predicted"], d["spread"]) for d in differences] == [(C, B, 2), (B, C, 1)]


def test_confusions_are_capped(monkeypatch):
    monkeypatch.setattr(comparison, "CONFUSIONS_KEPT", 2)
    differences = comparison.compare_candidates(entries(), {}, "accuracy")["confusion_differences"]
    assert [(d["true"], d["predicted"]) for d in differences] == [(A, B), (B, C)]


def test_a_tie_goes_to_the_earlier_candidate():
    first = comparison.candidate_entry("first", RESNET, None, None)
    second = comparison.candidate_entry("second", RESNET, None, None)
    assert comparison.compare_candidates([first, second], {}, "accuracy")["winner"] == "first"
    assert comparison.compare_candidates([second, first], {}, "accuracy")["winner"] == "second"


def test_a_dropped_candidate_is_listed_with_its_reason_and_not_ranked():
    dropped = {"resnet18": "gate: VanishingGradient found an issue (block)"}
    result = comparison.compare_candidates(entries()[1:], dropped, "accuracy")
    assert result["winner"] == "mobilenet_v2"
    assert result["dropped"] == dropped
    assert [row["name"] for row in result["candidates"]] == ["mobilenet_v2", "simplecnn"]
    assert "dropped resnet18: gate: VanishingGradient found an issue (block)" in (
        comparison.format_comparison(result)
    )


def test_no_entry_is_an_error_naming_each_dropped_candidate_and_why():
    dropped = {"resnet50": "training job Failed", "mobilenet_v2": "deployment rejected"}
    with pytest.raises(
        ValueError, match=r"resnet50: training job Failed; mobilenet_v2: deployment"
    ):
        comparison.compare_candidates([], dropped, "accuracy")
    with pytest.raises(ValueError, match="none was scored and none was dropped"):
        comparison.compare_candidates([], {}, "accuracy")


def test_candidates_scored_on_different_classes_are_refused_naming_the_classes():
    other = {**MOBILENET, "classes": [A, B, "004.Akita"]}
    with pytest.raises(ValueError, match=r"only 'resnet50' has \['003.Airedale_terrier'\], only "
                       r"'mobilenet_v2' has \['004.Akita'\]"):  # fmt: skip
        comparison.compare_candidates(
            [entries()[0], comparison.candidate_entry("mobilenet_v2", other, None, None)],
            {}, "accuracy",
        )  # fmt: skip
    reordered = comparison.candidate_entry("mobilenet_v2", {**MOBILENET, "classes": [B, A, C]},
                                           None, None)  # fmt: skip
    with pytest.raises(ValueError, match="same classes in another order"):
        comparison.compare_candidates([entries()[0], reordered], {}, "accuracy")


def test_a_candidate_both_scored_and_dropped_is_refused():
    with pytest.raises(ValueError, match="both scored and dropped: resnet50"):
        comparison.compare_candidates(entries(), {"resnet50": "gate"}, "accuracy")


def test_an_unknown_metric_is_refused_naming_the_known_ones():
    with pytest.raises(ValueError, match=r"'f2'.*accuracy, macro_f1, top_k_accuracy"):
        comparison.compare_candidates(entries(), {}, "f2")


def test_the_log_table_shows_the_numbers_size_and_time_and_stars_the_winner():
    text = comparison.format_comparison(comparison.compare_candidates(entries(), {}, "accuracy"))
    lines = text.splitlines()
    assert lines[0] == "Candidates ranked on accuracy (* the winner: resnet50)"
    assert lines[1].split() == ["rank", "candidate", "accuracy", "top_2_accuracy", "macro_f1",
                                "size", "MB", "ms/image"]  # fmt: skip
    assert lines[2].split() == ["*", "1", "resnet50", "0.8333", "0.8333", "0.8222", "97.8",
                                "500.0"]  # fmt: skip
    assert lines[3].split() == ["2", "mobilenet_v2", "0.6667", "1.0000", "0.6556", "9.2", "200.0"]
    assert lines[4].split() == ["3", "simplecnn", "0.5000", "0.6667", "0.4127", "-", "-"]
    assert f"  {A} -> {B}: resnet50 0, mobilenet_v2 1, simplecnn 2" in lines


def test_the_page_shows_the_table_the_f1s_the_confusions_and_links_each_report():
    page = comparison.render_comparison_html(
        comparison.compare_candidates(entries(), {}, "accuracy"), {"resnet50": "r/report.html"}
    )
    assert "<strong>resnet50</strong>" in page
    assert "<tr><td>1</td><td>resnet50</td><td>0.8333</td>" in page
    assert f"<tr><td>{A}</td><td>1.000</td><td>0.500</td><td>0.000</td></tr>" in page
    assert f"<tr><td>{A}</td><td>{B}</td><td>0</td><td>1</td><td>2</td></tr>" in page
    assert "<a href='r/report.html'>resnet50</a>" in page
    assert f"<a href='s3://{BUCKET}/evaluation/transform-1/report.html'>mobilenet_v2</a>" in page


def test_the_page_escapes_hostile_names_reasons_and_links():
    hostile = "<script>alert(1)</script>"
    classes = [A, B, hostile]
    entry = comparison.candidate_entry(
        "<b>net</b>",
        {**RESNET, "classes": classes,
         "per_class": {cls: {"f1": 0.5} for cls in classes},
         "html_report_uri": "s3://b/x'onmouseover='alert(1).html"},
        None, None,
    )  # fmt: skip
    page = comparison.render_comparison_html(
        comparison.compare_candidates([entry], {"<i>cnn</i>": hostile}, "accuracy")
    )
    assert "<script>" not in page and "<b>net" not in page and "<i>cnn" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;b&gt;net&lt;/b&gt;" in page
    assert "x&#x27;onmouseover=&#x27;alert(1).html" in page


def test_write_comparison_uploads_the_json_and_the_page(s3):
    s3.create_bucket(Bucket=BUCKET)
    result = comparison.compare_candidates(entries(), {"resnet18": "gate"}, "accuracy")
    uris = comparison.write_comparison(s3, f"s3://{BUCKET}/comparison/run-1/", result)
    assert uris == {
        "comparison_uri": f"s3://{BUCKET}/comparison/run-1/comparison.json",
        "html_uri": f"s3://{BUCKET}/comparison/run-1/comparison.html",
    }
    stored = s3.get_object(Bucket=BUCKET, Key="comparison/run-1/comparison.json")
    assert stored["ContentType"] == "application/json"
    assert json.loads(stored["Body"].read()) == result
    page = s3.get_object(Bucket=BUCKET, Key="comparison/run-1/comparison.html")
    assert page["ContentType"] == "text/html"
    # The reports lie in the same bucket: linked relative to the page.
    assert "href='../../evaluation/transform-0/report.html'" in page["Body"].read().decode()
