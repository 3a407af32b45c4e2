"""What the inference handlers add to the network's own forward pass, per picture.

Measures, on the same model, threads and pictures:

1. bare forward: ``network(batch of 1)`` on an already decoded, normalised tensor;
2. handler chain: ``input_fn(jpeg bytes) -> predict_fn -> output_fn(JSON)`` for one picture,
   which adds decoding, resizing, normalisation, softmax/top-k and serialisation;
3. JSON batch: one ``{"instances": [...]}`` request of ``--batch`` pictures, per picture.

Prints CPU and wall milliseconds per picture and the ratio handler / bare forward, and writes
them to ``benchmarks/results/inference.json``. Run with the container environment::

    .venvs/container/bin/python benchmarks/bench_inference.py [--backbone resnet18] [--size 224]
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO_ROOT / "sagemaker_code"), str(REPO_ROOT)]

import inference  # noqa: E402
from classifier.artifact import save_model  # noqa: E402
from classifier.images import load_image, normalize  # noqa: E402
from classifier.models import build_model  # noqa: E402

from demo.dataset import render_image  # noqa: E402

RESULTS = REPO_ROOT / "benchmarks" / "results" / "inference.json"
CLASSES = [f"{i:03d}.Breed_{i}" for i in range(1, 134)]  # the real dataset's class count


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--size", type=int, default=224, help="model input side in pixels")
    parser.add_argument("--photo-size", type=int, default=400, help="request picture side")
    parser.add_argument("--requests", type=int, default=10)
    parser.add_argument("--batch", type=int, default=8, help="pictures per JSON request")
    parser.add_argument("--threads", type=int, default=2)
    return parser.parse_args()


def per_picture_ms(run: Callable[[], object], repeats: int, pictures_per_run: int) -> dict:
    """Milliseconds of CPU (this process) and wall time per picture, after one warm-up run."""
    run()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        run()
    scale = 1000 / (repeats * pictures_per_run)
    return {
        "cpu_ms": round((time.process_time() - cpu) * scale, 2),
        "wall_ms": round((time.perf_counter() - wall) * scale, 2),
    }


def jpeg(side: int, seed: int) -> bytes:
    buffer = io.BytesIO()
    render_image(seed % 4, side, random.Random(seed)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as model_dir:
        network = build_model(args.backbone, len(CLASSES))
        save_model(Path(model_dir), network, backbone=args.backbone, class_names=CLASSES,
                   image_size=args.size)  # fmt: skip
        model = inference.model_fn(model_dir)

    photo = jpeg(args.photo_size, 0)
    ready = normalize(load_image(photo, args.size).unsqueeze(0))
    batch_body = json.dumps(
        {
            "instances": [
                base64.b64encode(jpeg(args.photo_size, i)).decode() for i in range(args.batch)
            ]
        }
    )

    def bare() -> None:
        with torch.inference_mode():
            model.network(ready)

    def handlers(body: bytes | str, content_type: str) -> Callable[[], object]:
        return lambda: inference.output_fn(
            inference.predict_fn(inference.input_fn(body, content_type), model), "application/json"
        )

    bare_ms = per_picture_ms(bare, args.requests, 1)
    chain_ms = per_picture_ms(handlers(photo, "image/jpeg"), args.requests, 1)
    batch_ms = per_picture_ms(handlers(batch_body, "application/json"), 2, args.batch)
    report = {
        "backbone": args.backbone, "size": args.size, "photo_size": args.photo_size,
        "threads": args.threads, "classes": len(CLASSES),
        "bare_forward_b1": bare_ms, "handler_chain_b1": chain_ms,
        f"json_batch_{args.batch}_per_picture": batch_ms,
        "handler_over_bare_cpu": round(chain_ms["cpu_ms"] / bare_ms["cpu_ms"], 3),
        "handler_over_bare_wall": round(chain_ms["wall_ms"] / bare_ms["wall_ms"], 3),
    }  # fmt: skip
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    print(
        f"handler chain / bare forward per picture: {report['handler_over_bare_cpu']} by CPU "
        f"time, {report['handler_over_bare_wall']} by wall time"
    )


if __name__ == "__main__":
    main()
