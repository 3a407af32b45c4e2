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
