"""How faithful the explanation job's saliency maps are, per architecture, image size and method.

For each image size, one training job (sagemaker_code/train.py, run as the container tests run
it: tests/container/training/sagemaker_job.py) trains the backbone from scratch on the demo's
generated data (4 classes, 24 train and 8 validation pictures each), then sagemaker_code/explain.py
explains every validation picture with each method and runs its deletion test: masking the 20 %
most salient pixels against as many random ones, the ratio of the drops in the predicted class's
probability (above 1: the maps point at what the model uses; the issue's target is 1.5). Printed
side by side, one row per (image size, method), with the validation accuracy the model reached.

Run it in the container environment (it imports the training code):

    .venvs/container/bin/python benchmarks/bench_deletion.py [--backbone mobilenet_v2]
        [--image-sizes 64 128] [--methods gradcam integrated_gradients] [--epochs 12]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "container" / "training")]
from sagemaker_job import CODE_DIR, JobTree, run_training  # noqa: E402

from demo.dataset import make_dataset  # noqa: E402

sys.path.insert(0, str(CODE_DIR))
import explain  # noqa: E402

VALID_ACCURACY = re.compile(r"valid_acc=([0-9.]+)")


def train(work: Path, dataset: Path, backbone: str, image_size: int, epochs: int) -> Path:
    """The folder holding the trained model.tar.gz (as the explanation job's `model` input),
    after printing the job's final validation accuracy and its time."""
    hyperparameters = {"backbone": backbone, "epochs": str(epochs), "batch-size": "8",
                       "image-size": str(image_size), "freeze": "full", "lr": "0.0026",
                       "pretrained-weights": "none"}  # fmt: skip
    channels = {"train": dataset / "train", "valid": dataset / "valid"}
    tree = JobTree(work / "opt", channels, hyperparameters).write()
    started = time.monotonic()
    result = run_training(tree)
    if result.returncode != 0:
        raise SystemExit(f"training at {image_size} px failed:\n{result.stderr[-3000:]}")
    accuracy = VALID_ACCURACY.findall(result.stdout)[-1]
    print(f"{backbone} at {image_size} px: valid_acc {accuracy} after {epochs} epochs "
          f"({time.monotonic() - started:.0f} s)", flush=True)  # fmt: skip
    folder = work / "model-input"
    folder.mkdir()
    with tarfile.open(folder / "model.tar.gz", "w:gz") as tar:
        tar.add(tree.model_dir, arcname=".")
    return folder


def deletion(model: Path, images: Path, output: Path, method: str) -> dict:
    """explain.py's deletion-test figures for `method` over every picture in `images`."""
    arguments = ["--model", str(model), "--images", str(images), "--output-dir", str(output),
                 "--method", method, "--samples-per-class", "1",
                 "--max-misclassified", "8"]  # fmt: skip
    if explain.main(arguments) != 0:
        raise SystemExit(f"explain.py {' '.join(arguments)} failed")
    return json.loads((output / "summary.json").read_text())["deletion"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="mobilenet_v2")
    parser.add_argument("--image-sizes", type=int, nargs="+", default=[64, 96, 128])
    parser.add_argument("--methods", nargs="+", default=["gradcam", "integrated_gradients"])
    parser.add_argument("--epochs", type=int, default=12)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        dataset = make_dataset(work / "dataset",
                               images_per_class={"train": 24, "valid": 8, "test": 1})  # fmt: skip
        for size in args.image_sizes:
            model = train(work / f"job-{size}", dataset, args.backbone, size, args.epochs)
            for method in args.methods:
                figures = deletion(model, dataset / "valid", work / f"out-{size}-{method}", method)
                rows.append((size, method, figures))
    print(f"\n{args.backbone}, {args.epochs} epochs from scratch, deletion of the "
          f"{rows[0][2]['fraction']:.0%} most salient pixels against random ones:")  # fmt: skip
    print(f"{'px':>5}  {'method':<22} {'salient drop':>12} {'random drop':>12} {'ratio':>7}")
    for size, method, figures in rows:
        ratio = f"{figures['ratio']:.2f}" if figures["ratio"] is not None else "-"
        print(f"{size:>5}  {method:<22} {figures['salient_drop']:>12.4f} "
              f"{figures['random_drop']:>12.4f} {ratio:>7}")  # fmt: skip


if __name__ == "__main__":
    main()
