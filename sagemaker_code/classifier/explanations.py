"""Why the classifier answered what it did: saliency maps, and a test of whether they are true.

Saliency comes from Captum, PyTorch's own attribution library: Grad-CAM on the network's last
convolutional block (``gradcam``: cheap, one backward pass, a coarse map of *where* the class
evidence is) or integrated gradients on the pixels (``integrated_gradients``: fine-grained, 32
forward/backward passes per image). Each map is scaled to the picture and to [0, 1].

What is explained (``choose_images``):

- a sample of validation images per class;
- every misclassified validation image, up to a cap;
- the most confused class pairs of the confusion matrix (recomputed from the model's own
  predictions): for each pair, a few of its images with one map for the true class and one for
  the class the model chose, side by side.

Faithfulness is measured, not assumed (``deletion_test``): masking the most salient pixels of a
picture should lower the probability of the predicted class far more than masking as many
random pixels. The ratio of the two mean drops is the report's faithfulness figure.
"""

from __future__ import annotations

import html
import io
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam
from matplotlib import colormaps
from PIL import Image
from torch import nn

from classifier.artifact import Classifier
from classifier.data import ImageSet
from classifier.images import normalize
from classifier.models import use_out_of_place_relu

METHODS = ("gradcam", "integrated_gradients")
BATCH_SIZE = 32
INTEGRATED_GRADIENTS_STEPS = 32
# Random masks per picture in the deletion test: one random mask is a noisy reference.
RANDOM_MASKS = 3
# Overlays are drawn at least this wide, however small the model's input is.
OVERLAY_PIXELS = 192
OVERLAY_OPACITY = 0.5


def last_conv_block(network: nn.Module) -> nn.Module:
    """The block Grad-CAM reads: a resnet's ``layer4``, simplecnn's or mobilenet_v2's last
    ``features`` block, else the network's last ``Conv2d``."""
    if hasattr(network, "layer4"):
        return network.layer4
    if isinstance(getattr(network, "features", None), nn.Sequential):
        return network.features[-1]
    convolutions = [m for m in network.modules() if isinstance(m, nn.Conv2d)]
    if not convolutions:
        raise ValueError(f"{type(network).__name__} has no convolutional layer for Grad-CAM")
    return convolutions[-1]


def _batches(count: int) -> list[slice]:
    return [slice(start, min(start + BATCH_SIZE, count)) for start in range(0, count, BATCH_SIZE)]


def _inputs(classifier: Classifier, images: torch.Tensor) -> torch.Tensor:
    return normalize(images.to(classifier.device), classifier.mean, classifier.std)


def probabilities(classifier: Classifier, images: torch.Tensor) -> torch.Tensor:
    """``(N, classes)`` softmax of the network for ``(N, 3, S, S)`` uint8 pictures."""
    with torch.no_grad():
        return torch.cat(
            [
                classifier.network(_inputs(classifier, images[part])).softmax(dim=1).cpu()
                for part in _batches(len(images))
            ]
        )


def saliency(
    classifier: Classifier, images: torch.Tensor, targets: torch.Tensor, method: str = "gradcam"
) -> torch.Tensor:
    """``(N, S, S)`` maps in [0, 1] of how much each pixel speaks for class ``targets[i]``."""
    if method not in METHODS:
        raise ValueError(f"unknown explanation method {method!r}; choose one of {METHODS}")
    network = classifier.network
    maps = []
    for part in _batches(len(images)):
        inputs = _inputs(classifier, images[part])
        target = targets[part].to(classifier.device)
        if method == "gradcam":
            coarse = LayerGradCam(network, last_conv_block(network)).attribute(
                inputs, target=target, relu_attributions=True
            )
            fine = LayerAttribution.interpolate(coarse, inputs.shape[-2:], "bilinear")
        else:
            # Captum runs all n_steps scaled copies of the batch in one pass unless told
            # otherwise: 32 x 32 pictures of 128 px through mobilenet_v2 took 18.7 GB (the
            # kernel killed the job). A pass per batch's worth of copies keeps a batch's memory.
            fine = IntegratedGradients(network).attribute(
                inputs, target=target, n_steps=INTEGRATED_GRADIENTS_STEPS,
                internal_batch_size=len(inputs),
            )  # fmt: skip
        maps.append(fine.detach().abs().sum(dim=1).cpu())
    joined = torch.cat(maps)
    peak = joined.flatten(1).amax(dim=1).clamp_min(1e-12).view(-1, 1, 1)
    return joined / peak


@dataclass(frozen=True)
class DeletionTest:
    """Mean drop of the predicted class's probability when masking the ``fraction`` most
    salient pixels (``salient_drop``) and as many random pixels (``random_drop``)."""

    fraction: float
    images: int
    salient_drop: float
    random_drop: float

    @property
    def ratio(self) -> float | None:
        """salient_drop / random_drop; None when random masking lowered nothing."""
        return self.salient_drop / self.random_drop if self.random_drop > 0 else None

    def as_dict(self) -> dict:
        return {"fraction": self.fraction, "images": self.images,
                "salient_drop": self.salient_drop, "random_drop": self.random_drop,
                "ratio": self.ratio}  # fmt: skip


def _masked(images: torch.Tensor, chosen: torch.Tensor, mean: Sequence[float]) -> torch.Tensor:
    """``images`` with the pixels flagged in ``chosen`` (N, S*S) set to the mean colour (what
    normalisation turns into 0: the picture carries no evidence there)."""
    fill = torch.tensor([round(255 * m) for m in mean], dtype=torch.uint8).view(1, 3, 1)
    flat = images.flatten(2).clone()
    mask = chosen.unsqueeze(1).expand_as(flat)
    flat[mask] = fill.expand_as(flat)[mask]
    return flat.view_as(images)


def deletion_test(
    classifier: Classifier,
    images: torch.Tensor,
    maps: torch.Tensor,
    fraction: float = 0.2,
    seed: int = 0,
) -> DeletionTest:
    """Mask the ``fraction`` most salient pixels of each picture, and separately ``fraction``
    random ones (``RANDOM_MASKS`` times), and compare the drops in the probability of the class
    the model predicted for the intact picture (``maps`` must be that class's saliency)."""
    if not 0 < fraction < 1:
        raise ValueError(f"the deletion fraction must be between 0 and 1, got {fraction}")
    count, pixels = len(images), maps[0].numel()
    masked_pixels = max(1, round(fraction * pixels))
    before = probabilities(classifier, images)
    predicted = before.argmax(dim=1)
    rows = torch.arange(count)
    start = before[rows, predicted]

    def mean_drop(chosen: torch.Tensor) -> float:
        after = probabilities(classifier, _masked(images, chosen, classifier.mean))
        return float((start - after[rows, predicted]).mean())

    salient = torch.zeros(count, pixels, dtype=torch.bool)
    salient.scatter_(1, maps.flatten(1).topk(masked_pixels, dim=1).indices, True)
    generator = torch.Generator().manual_seed(seed)
    random_drops = []
    for _ in range(RANDOM_MASKS):
        order = torch.rand(count, pixels, generator=generator).argsort(dim=1)
        chosen = torch.zeros(count, pixels, dtype=torch.bool)
        chosen.scatter_(1, order[:, :masked_pixels], True)
        random_drops.append(mean_drop(chosen))
    return DeletionTest(fraction, count, mean_drop(salient), sum(random_drops) / RANDOM_MASKS)


def confused_pairs(
    labels: torch.Tensor, predicted: torch.Tensor, num_classes: int, count: int
) -> list[tuple[int, int, int]]:
    """The ``count`` largest off-diagonal cells of the confusion matrix as (true class,
    predicted class, images), largest first; pairs that never happened are left out."""
    matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    matrix.index_put_((labels, predicted), torch.ones_like(labels), accumulate=True)
    matrix.fill_diagonal_(0)
    cells = sorted(
        ((int(matrix[t, p]), t, p) for t in range(num_classes) for p in range(num_classes)),
        key=lambda cell: (-cell[0], cell[1], cell[2]),
    )
    return [(t, p, n) for n, t, p in cells[:count] if n > 0]


@dataclass
class Selection:
    """Indices of the validation images to explain, by report section."""

    samples: list[int] = field(default_factory=list)
    misclassified: list[int] = field(default_factory=list)
    # (true class, predicted class, images of that confusion, the indices explained)
    pairs: list[tuple[int, int, int, list[int]]] = field(default_factory=list)


def choose_images(
    labels: torch.Tensor,
    predicted: torch.Tensor,
    num_classes: int,
    *,
    samples_per_class: int,
    max_misclassified: int,
    pairs: int,
    images_per_pair: int,
    seed: int = 0,
) -> Selection:
    """What to explain (see the module doc); the per-class sample is drawn with ``seed``."""
    rng = random.Random(seed)
    selection = Selection()
    for cls in range(num_classes):
        members = (labels == cls).nonzero().flatten().tolist()
        selection.samples += sorted(rng.sample(members, min(samples_per_class, len(members))))
    wrong = (labels != predicted).nonzero().flatten().tolist()
    selection.misclassified = wrong[:max_misclassified]
    for true, chosen, images in confused_pairs(labels, predicted, num_classes, pairs):
        members = ((labels == true) & (predicted == chosen)).nonzero().flatten().tolist()
        selection.pairs.append((true, chosen, images, members[:images_per_pair]))
    return selection


def overlay_png(image: torch.Tensor, heat: torch.Tensor) -> bytes:
    """The ``(3, S, S)`` uint8 picture with its ``(S, S)`` map in the jet colour map laid over
    it, as a PNG at least OVERLAY_PIXELS wide."""
    size = max(OVERLAY_PIXELS, image.shape[-1])
    picture = Image.fromarray(image.permute(1, 2, 0).numpy(), "RGB")
    colours = (colormaps["jet"](heat.numpy())[..., :3] * 255).astype("uint8")
    blended = Image.blend(picture, Image.fromarray(colours, "RGB"), OVERLAY_OPACITY)
    buffer = io.BytesIO()
    blended.resize((size, size), Image.Resampling.BILINEAR).save(buffer, format="PNG")
    return buffer.getvalue()


def top_answers(
    probability: torch.Tensor, class_names: list[str], k: int
) -> list[tuple[str, float]]:
    """The ``k`` most probable classes of one picture, most probable first."""
    values, indices = probability.topk(min(k, len(class_names)))
    return [(class_names[i], float(v)) for v, i in zip(values, indices.tolist(), strict=True)]


# One explained picture in the report: where it is, what it is, what the model said, and the
# overlay files (class name -> path relative to the report).
@dataclass(frozen=True)
class ExplainedImage:
    image: str
    true_label: str
    answers: list[tuple[str, float]]
    overlays: dict[str, str]

    def as_dict(self) -> dict:
        return {"image": self.image, "true_label": self.true_label,
                "top_k": [list(answer) for answer in self.answers],
                "overlays": self.overlays}  # fmt: skip


def _card(item: ExplainedImage) -> str:
    answers = "".join(
        f"<li{' class=hit' if label == item.true_label else ''}>{html.escape(label)} "
        f"{probability:.3f}</li>"
        for label, probability in item.answers
    )
    pictures = "".join(
        f"<figure><img src='{html.escape(path)}' alt='saliency for {html.escape(label)}'>"
        f"<figcaption>for {html.escape(label)}</figcaption></figure>"
        for label, path in item.overlays.items()
    )
    return (
        f"<div class=card><div class=pictures>{pictures}</div>"
        f"<p><b>{html.escape(item.image)}</b><br>true: {html.escape(item.true_label)}</p>"
        f"<ol>{answers}</ol></div>"
    )


def render_report(
    title: str,
    method: str,
    deletion: DeletionTest,
    sections: Sequence[tuple[str, str, Sequence[ExplainedImage]]],
) -> str:
    """A self-contained HTML page (the overlays are files beside it): the faithfulness figure,
    then each (heading, description, images) section as cards with the top-k answers."""
    ratio = f"{deletion.ratio:.2f}" if deletion.ratio is not None else "undefined"
    body = "".join(
        f"<h2>{html.escape(heading)}</h2><p>{html.escape(text)}</p>"
        + ("".join(_card(item) for item in items) or "<p><i>none</i></p>")
        for heading, text, items in sections
    )
    share = round(100 * deletion.fraction)
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>body{{font-family:sans-serif;margin:2em}}"
        ".card{display:inline-block;vertical-align:top;margin:6px;padding:6px;"
        "border:1px solid #ccc}.pictures{display:flex;gap:4px}figure{margin:0}"
        "img{width:192px}.hit{font-weight:bold;color:#060}ol{margin:0;padding-left:1.5em}"
        f"</style></head><body><h1>{html.escape(title)}</h1>"
        f"<p>Saliency: {html.escape(method)} (Captum). Blue: no evidence; red: the most.</p>"
        f"<h2>Faithfulness (deletion test)</h2><p id=deletion>Masking the {share} % most "
        f"salient pixels lowers the predicted class's probability by "
        f"{deletion.salient_drop:.4f} on average; masking {share} % random pixels by "
        f"{deletion.random_drop:.4f} ({deletion.images} images). Ratio: <b>{ratio}</b> "
        "(above 1: the maps point at what the model uses).</p>"
        f"{body}</body></html>"
    )


def _overlay_file(output_dir: Path, index: int, target: str, png: bytes) -> str:
    relative = f"overlays/{index:05d}-{target.replace('/', '_')}.png"
    (output_dir / relative).write_bytes(png)
    return relative


def explain_split(
    classifier: Classifier,
    images: ImageSet,
    names: list[str],
    output_dir: Path,
    *,
    method: str = "gradcam",
    samples_per_class: int = 2,
    max_misclassified: int = 20,
    confused_pairs: int = 3,
    images_per_pair: int = 2,
    top_k: int = 5,
    deletion_fraction: float = 0.2,
    seed: int = 0,
) -> dict:
    """Explain the split ``images`` (file ``names`` relative to the split folder) into
    ``output_dir``: ``report.html``, ``overlays/*.png`` and ``summary.json`` (returned)."""
    classes = classifier.class_names
    use_out_of_place_relu(classifier.network)
    probability = probabilities(classifier, images.images)
    predicted = probability.argmax(dim=1)
    selection = choose_images(
        images.labels, predicted, len(classes), samples_per_class=samples_per_class,
        max_misclassified=max_misclassified, pairs=confused_pairs,
        images_per_pair=images_per_pair, seed=seed,
    )  # fmt: skip
    # Every map the report shows: for the predicted class; for a confused pair's images, also for
    # the true class.
    wanted = sorted(
        {(i, int(predicted[i])) for i in [*selection.samples, *selection.misclassified]}
        | {(i, c) for true, _, _, members in selection.pairs for i in members
           for c in (true, int(predicted[i]))}
    )  # fmt: skip
    (output_dir / "overlays").mkdir(parents=True, exist_ok=True)
    overlays: dict[int, dict[str, str]] = {}
    if wanted:
        indices = torch.tensor([i for i, _ in wanted])
        maps = saliency(classifier, images.images[indices], torch.tensor([c for _, c in wanted]),
                        method)  # fmt: skip
        for (i, target), heat in zip(wanted, maps, strict=True):
            png = overlay_png(images.images[i], heat)
            overlays.setdefault(i, {})[classes[target]] = _overlay_file(
                output_dir, i, classes[target], png
            )

    def explained(index: int) -> ExplainedImage:
        answers = top_answers(probability[index], classes, top_k)
        return ExplainedImage(names[index], classes[int(images.labels[index])], answers,
                              overlays[index])  # fmt: skip

    # The deletion test over the whole split: its maps are for the predicted classes.
    deletion = deletion_test(
        classifier, images.images, saliency(classifier, images.images, predicted, method),
        deletion_fraction, seed,
    )  # fmt: skip
    sections = [
        ("A sample per class", f"{samples_per_class} validation images of each class.",
         [explained(i) for i in selection.samples]),
        ("Misclassified", f"Every misclassified validation image (at most {max_misclassified}; "
         f"{int((predicted != images.labels).sum())} in all).",
         [explained(i) for i in selection.misclassified]),
    ]  # fmt: skip
    pairs = []
    for true, chosen, count, members in selection.pairs:
        heading = f"{classes[true]} taken for {classes[chosen]} ({count} images)"
        sections.append((heading, "Left: evidence for the true class; right: for the answer.",
                         [explained(i) for i in members]))  # fmt: skip
        pairs.append({"true": classes[true], "predicted": classes[chosen], "images": count})
    title = f"Explanations: {classifier.backbone} on {len(images)} validation images"
    (output_dir / "report.html").write_text(render_report(title, method, deletion, sections))
    summary = {
        "method": method,
        "backbone": classifier.backbone,
        "accuracy": float((predicted == images.labels).float().mean()),
        "explained_images": len(overlays),
        "deletion": deletion.as_dict(),
        "confused_pairs": pairs,
        "sections": {heading: [item.as_dict() for item in items]
                     for heading, _, items in sections},
    }  # fmt: skip
    (output_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
