"""explain.py end to end on a trained model: the report, the overlays and the deletion test."""

from __future__ import annotations

import json
from pathlib import Path

import explain
import pytest


@pytest.fixture(scope="module")
def explained(tmp_path_factory: pytest.TempPathFactory, dataset: Path, model_archive: Path):
    output = tmp_path_factory.mktemp("explanations")
    code = explain.main(["--model", str(model_archive), "--images", str(dataset / "valid"),
                         "--output-dir", str(output), "--max-misclassified", "5"])  # fmt: skip
    assert code == 0
    return output, json.loads((output / "summary.json").read_text())


def test_deletion_test_finds_the_maps_faithful_on_the_demo_model(explained):
    _, summary = explained
    deletion = summary["deletion"]
    print(deletion)
    assert deletion["images"] == 32
    assert deletion["ratio"] is not None and deletion["ratio"] >= 1.5, deletion


def test_the_report_shows_each_section_with_overlays_and_top_k_answers(explained):
    output, summary = explained
    page = (output / "report.html").read_text()
    sections = summary["sections"]
    assert len(sections["A sample per class"]) == 4 * 2  # 4 classes, samples_per_class 2
    wrong = sections["Misclassified"]
    assert len(wrong) <= 5 and all(card["top_k"][0][0] != card["true_label"] for card in wrong)
    for pair in summary["confused_pairs"]:
        cards = sections[f"{pair['true']} taken for {pair['predicted']} ({pair['images']} images)"]
        # One map for the true class and one for the answer.
        assert all(set(card["overlays"]) == {pair["true"], pair["predicted"]} for card in cards)
    for cards in sections.values():
        for card in cards:
            assert len(card["top_k"]) == 4  # --top-k 5, capped at the 4 classes
            for path in card["overlays"].values():
                assert f"src='{path}'" in page
                assert (output / path).read_bytes().startswith(b"\x89PNG")
    assert f"Ratio: <b>{summary['deletion']['ratio']:.2f}</b>" in page


def test_pictures_of_any_size_and_mode_are_explained(tmp_path, model_archive):
    from PIL import Image

    split = tmp_path / "valid"
    pictures = {
        "001.Affenpinscher/grey.jpg": Image.new("L", (31, 57), 90),
        "001.Affenpinscher/palette.png": Image.new("RGB", (77, 77), (200, 30, 30)).convert("P"),
        "002.Afghan_hound/alpha.png": Image.new("RGBA", (300, 120), (20, 90, 200, 128)),
        "003.Airedale_terrier/cmyk.jpg": Image.new("CMYK", (640, 480), (0, 80, 200, 0)),
    }
    for relative, picture in pictures.items():
        (split / relative).parent.mkdir(parents=True, exist_ok=True)
        picture.save(split / relative)
    output = tmp_path / "out"
    assert explain.main(["--model", str(model_archive), "--images", str(split),
                         "--output-dir", str(output)]) == 0  # fmt: skip
    summary = json.loads((output / "summary.json").read_text())
    assert summary["deletion"]["images"] == len(pictures)
    shown = {card["image"] for cards in summary["sections"].values() for card in cards}
    assert shown == set(pictures)
    overlay = Image.open(next((output / "overlays").iterdir()))
    assert overlay.size == (192, 192) and overlay.mode == "RGB"


def test_integrated_gradients_are_the_other_method(tmp_path, dataset, model_archive):
    # One picture per class: integrated gradients cost 32 passes per picture.
    split = tmp_path / "valid"
    for folder in sorted((dataset / "valid").iterdir()):
        (split / folder.name).mkdir(parents=True)
        first = min(folder.iterdir())
        (split / folder.name / first.name).write_bytes(first.read_bytes())
    output = tmp_path / "out"
    assert explain.main(["--model", str(model_archive), "--images", str(split),
                         "--output-dir", str(output), "--method", "integrated_gradients",
                         "--samples-per-class", "1"]) == 0  # fmt: skip
    summary = json.loads((output / "summary.json").read_text())
    assert summary["method"] == "integrated_gradients" and summary["explained_images"] == 4
    assert summary["deletion"]["images"] == 4


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--deletion-fraction", "1.5"], "--deletion-fraction must be between 0 and 1"),
        (["--samples-per-class", "-1"], "--samples-per-class must be 0 or more"),
        (["--method", "shap"], "invalid choice: 'shap'"),
    ],
)
def test_bad_arguments_are_named(arguments, message, capsys):
    with pytest.raises(SystemExit):
        explain.parse_args(arguments)
    assert message in capsys.readouterr().err


def test_a_model_input_without_a_model_is_named(tmp_path, dataset):
    with pytest.raises(
        SystemExit, match=r"expected model\.pt or one model\.tar\.gz, found neither"
    ):
        explain.main(["--model", str(tmp_path), "--images", str(dataset / "valid"),
                      "--output-dir", str(tmp_path / "out")])  # fmt: skip
