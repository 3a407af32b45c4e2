"""Explain the trained classifier's answers on the validation split: the explanation job.

It runs as a SageMaker Processing job in the PyTorch training image, after the evaluation::

    python3 explain.py --model /opt/ml/processing/input/model \\
        --images /opt/ml/processing/input/valid \\
        --output-dir /opt/ml/processing/output/explanations \\
        [--method gradcam] [--samples-per-class 2] [--max-misclassified 20] [--confused-pairs 3]

Inputs: ``--model`` holds the training job's ``model.tar.gz`` (or its unpacked ``model.pt``);
``--images`` the validation split's ``<NNN.Class>/*.jpg`` folders. Output in ``--output-dir``:

- ``report.html``: the deletion-test figure, then a card per explained image (its saliency
  overlays and the model's top-k answers): a sample per class, the misclassified images, the
  most confused class pairs (``classifier/explanations.py`` says how each is chosen);
- ``overlays/*.png``: the saliency overlays the page shows;
- ``summary.json``: the same, machine-readable.

The last line it prints is ``#explanation-result {"deletion": {..., "ratio": ...}, ...}``.

Captum is in the project's container environments. A stock AWS PyTorch image lacks it: with
``--install-captum`` the job pip-installs it first when it is missing, which needs internet access
from the job; without, it stops and says so (or use an image that has it: ``images.training``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PROCESSING = Path("/opt/ml/processing")
RESULT_LINE_PREFIX = "#explanation-result "
# The Captum releases the project runs: 0.8 on torch 2.0-2.2, 0.9 from torch 2.3.
CAPTUM_REQUIREMENT = "captum>=0.8,<0.10"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=PROCESSING / "input" / "model")
    parser.add_argument("--images", type=Path, default=PROCESSING / "input" / "valid")
    parser.add_argument("--output-dir", type=Path, default=PROCESSING / "output" / "explanations")
    parser.add_argument("--method", default="gradcam", choices=("gradcam", "integrated_gradients"))
    parser.add_argument("--samples-per-class", type=int, default=2)
    parser.add_argument("--max-misclassified", type=int, default=20)
    parser.add_argument("--confused-pairs", type=int, default=3)
    parser.add_argument("--images-per-pair", type=int, default=2)
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--deletion-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--install-captum", action="store_true", help="pip-install Captum when it is missing"
    )
    args = parser.parse_args(argv)
    for name in ("samples_per_class", "max_misclassified", "confused_pairs", "images_per_pair"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must be 0 or more")
    if args.top_k < 1:
        parser.error("--top-k must be 1 or more")
    if not 0 < args.deletion_fraction < 1:
        parser.error("--deletion-fraction must be between 0 and 1")
    return args


def ensure_captum(install: bool) -> None:
    """Captum importable, installed into this Python first when missing and ``install`` is set
    (a stock AWS PyTorch image lacks it); SystemExit saying what to do otherwise."""
    if importlib.util.find_spec("captum") is not None:
        return
    if not install:
        raise SystemExit(
            f"Captum is not installed in {sys.executable}: use an image that has it "
            f"({CAPTUM_REQUIREMENT}), or pass --install-captum (explanations.install_captum), "
            "which needs internet access from the job"
        )
    print(f"Captum is missing from this image: pip install {CAPTUM_REQUIREMENT}", flush=True)
    subprocess.run([sys.executable, "-m", "pip", "install", CAPTUM_REQUIREMENT], check=True)


def model_directory(model: Path, scratch: Path) -> Path:
    """The folder holding ``model.pt``: ``model`` itself, or ``model.tar.gz`` in it unpacked."""
    if (model / "model.pt").is_file():
        return model
    archives = sorted(model.rglob("model.tar.gz")) if model.is_dir() else [model]
    if len(archives) != 1 or not archives[0].is_file():
        raise SystemExit(f"--model {model}: expected model.pt or one model.tar.gz, found "
                         f"{[str(a) for a in archives] or 'neither'}")  # fmt: skip
    with tarfile.open(archives[0]) as archive:
        for member in archive.getmembers():
            if (
                not (member.isfile() or member.isdir())
                or Path(member.name).is_absolute()
                or (".." in Path(member.name).parts)
            ):
                raise SystemExit(f"{archives[0]}: unsafe member {member.name!r}")
        archive.extractall(scratch)
    return scratch


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ensure_captum(args.install_captum)
    from classifier.artifact import load_model
    from classifier.data import list_files, load_split
    from classifier.explanations import explain_split

    with tempfile.TemporaryDirectory() as scratch:
        classifier = load_model(model_directory(args.model, Path(scratch)))
    print(f"Explaining {classifier.backbone} ({len(classifier.class_names)} classes) with "
          f"{args.method} on {args.images}", flush=True)  # fmt: skip

    # 1. The validation pictures, prepared exactly as the model saw pictures in training.
    files, _ = list_files(args.images, "valid", classifier.class_names)
    images = load_split(args.images, "valid", classifier.class_names, classifier.image_size, 4)

    # 2. Predict them all, choose what to explain, draw the maps and test their faithfulness.
    summary = explain_split(
        classifier,
        images,
        [str(path.relative_to(args.images)) for path in files],
        args.output_dir,
        method=args.method,
        samples_per_class=args.samples_per_class,
        max_misclassified=args.max_misclassified,
        confused_pairs=args.confused_pairs,
        images_per_pair=args.images_per_pair,
        top_k=args.top_k,
        deletion_fraction=args.deletion_fraction,
        seed=args.seed,
    )

    # 3. Say where the report is and how faithful the maps are.
    deletion = summary["deletion"]
    print(f"Deletion test ({deletion['images']} images): masking the most salient "
          f"{deletion['fraction']:.0%} lowers the predicted probability by "
          f"{deletion['salient_drop']:.4f}, random pixels by {deletion['random_drop']:.4f}: "
          f"ratio {deletion['ratio']}", flush=True)  # fmt: skip
    print(f"Report: {args.output_dir / 'report.html'}", flush=True)
    print(RESULT_LINE_PREFIX + json.dumps({key: summary[key] for key in (
        "deletion", "accuracy", "explained_images", "method")}), flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
