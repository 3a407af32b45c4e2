"""A small synthetic image dataset in the Udacity dog-breed layout.

    <root>/{train,valid,test}/<NNN.Class_name>/<class>_<split>_<i>.{jpg,png}

Each class is a distinct drawing (a shape, a colour scheme and a texture) placed at a random
position, size and rotation on a noisy background, so a small CNN separates the classes in a few
epochs on a CPU while the task is not trivially solved by one pixel. Images are real JPEG and PNG
files (some PNGs carry an alpha channel, some are palette or grayscale images) so loaders meet the
formats a real dataset has.

Only the standard library and Pillow are used, so the generator runs in both the Airflow and the
container environment. The output is fully determined by the arguments.

    python demo/dataset.py OUT_DIR [--classes 4] [--size 64] [--train 24 --valid 8 --test 8]
"""

from __future__ import annotations

import argparse
import math
import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

SPLITS = ("train", "valid", "test")
DEFAULT_IMAGES_PER_CLASS = {"train": 24, "valid": 8, "test": 8}

# The first breeds of the Udacity set, so demo output reads like the real thing.
BREEDS = (
    "Affenpinscher", "Afghan_hound", "Airedale_terrier", "Akita", "Alaskan_malamute",
    "American_eskimo_dog", "American_foxhound", "American_staffordshire_terrier",
    "American_water_spaniel", "Anatolian_shepherd_dog", "Australian_cattle_dog",
    "Australian_shepherd", "Australian_terrier", "Basenji", "Basset_hound", "Beagle",
)  # fmt: skip

SHAPES = ("circle", "square", "triangle", "cross")
PALETTES = (
    ((220, 60, 50), (250, 230, 200)),
    ((40, 110, 220), (230, 240, 250)),
    ((40, 170, 80), (240, 235, 210)),
    ((230, 180, 30), (60, 60, 90)),
)


def class_names(num_classes: int) -> list[str]:
    """Folder names `NNN.Breed_name` for the first `num_classes` classes."""
    if not 2 <= num_classes <= len(BREEDS):
        raise ValueError(f"num_classes must be between 2 and {len(BREEDS)}, got {num_classes}")
    return [f"{i + 1:03d}.{BREEDS[i]}" for i in range(num_classes)]


def _polygon(shape: str, cx: float, cy: float, radius: float, angle: float) -> list[tuple]:
    corners = {"square": 4, "triangle": 3}[shape]
    return [
        (cx + radius * math.cos(angle + 2 * math.pi * k / corners),
         cy + radius * math.sin(angle + 2 * math.pi * k / corners))
        for k in range(corners)
    ]  # fmt: skip


def _draw_class(draw: ImageDraw.ImageDraw, class_index: int, size: int, rng: random.Random) -> None:
    shape = SHAPES[class_index % len(SHAPES)]
    foreground, _ = PALETTES[(class_index // len(SHAPES) + class_index) % len(PALETTES)]
    jitter = tuple(max(0, min(255, c + rng.randint(-25, 25))) for c in foreground)
    radius = size * rng.uniform(0.2, 0.32)
    cx = rng.uniform(radius, size - radius)
    cy = rng.uniform(radius, size - radius)
    angle = rng.uniform(0, 2 * math.pi)
    if shape == "circle":
        draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=jitter)
    elif shape == "cross":
        arm = radius / 3
        draw.rectangle((cx - radius, cy - arm, cx + radius, cy + arm), fill=jitter)
        draw.rectangle((cx - arm, cy - radius, cx + arm, cy + radius), fill=jitter)
    else:
        draw.polygon(_polygon(shape, cx, cy, radius, angle), fill=jitter)
    # Classes beyond the first four shapes differ by a stripe texture as well as by colour.
    if class_index >= len(SHAPES):
        step = max(3, size // 10)
        for offset in range(0, size, step * 2):
            draw.line((offset, 0, offset, size), fill=tuple(c // 2 for c in jitter), width=1)


def render_image(class_index: int, size: int, rng: random.Random) -> Image.Image:
    """One RGB picture of class `class_index`."""
    _, background = PALETTES[(class_index // len(SHAPES) + class_index) % len(PALETTES)]
    noisy = Image.effect_noise((size, size), rng.uniform(20, 40)).convert("RGB")
    image = Image.blend(Image.new("RGB", (size, size), background), noisy, 0.35)
    _draw_class(ImageDraw.Draw(image), class_index, size, rng)
    return image.filter(ImageFilter.GaussianBlur(rng.uniform(0, 0.8)))


def _save(image: Image.Image, stem: Path, index: int) -> Path:
    """Save mostly JPEGs, with a share of PNGs in the other modes a real dataset has."""
    kind = index % 8
    if kind == 3:
        path = stem.with_suffix(".png")
        image.convert("RGBA").save(path)
    elif kind == 5:
        path = stem.with_suffix(".png")
        image.convert("P", palette=Image.Palette.ADAPTIVE).save(path)
    elif kind == 7:
        path = stem.with_suffix(".jpg")
        image.convert("L").save(path, quality=90)
    else:
        path = stem.with_suffix(".jpg")
        image.save(path, quality=90)
    return path


def make_dataset(
    root: Path,
    num_classes: int = 4,
    images_per_class: dict[str, int] | None = None,
    image_size: int = 64,
    seed: int = 0,
) -> Path:
    """Write the dataset under `root` (created if needed) and return `root`."""
    root = Path(root)
    counts = {**DEFAULT_IMAGES_PER_CLASS, **(images_per_class or {})}
    rng = random.Random(seed)
    for split in SPLITS:
        for class_index, name in enumerate(class_names(num_classes)):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            breed = name.split(".", 1)[1]
            for i in range(counts[split]):
                image = render_image(class_index, image_size, rng)
                _save(image, folder / f"{breed}_{split}_{i:04d}", i)
    return root


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--seed", type=int, default=0)
    for split in SPLITS:
        parser.add_argument(f"--{split}", type=int, default=DEFAULT_IMAGES_PER_CLASS[split],
                            help=f"images per class in {split}/")  # fmt: skip
    args = parser.parse_args(argv)
    counts = {split: getattr(args, split) for split in SPLITS}
    root = make_dataset(args.out_dir, args.classes, counts, args.size, args.seed)
    total = sum(counts.values()) * args.classes
    print(f"wrote {total} images of {args.classes} classes to {root}")


if __name__ == "__main__":
    main()
