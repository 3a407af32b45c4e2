"""classifier/explanations.py on small tensors: what is chosen, where Grad-CAM looks, masking."""

from __future__ import annotations

import pytest
import torch
from classifier.artifact import Classifier
from classifier.explanations import (
    _masked,
    choose_images,
    confused_pairs,
    last_conv_block,
    saliency,
)
from classifier.images import IMAGENET_MEAN, IMAGENET_STD
from classifier.models import build_model


def test_the_most_confused_pairs_come_largest_first_and_only_if_they_happened():
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2])
    predicted = torch.tensor([1, 1, 0, 0, 1, 2, 1, 2])
    assert confused_pairs(labels, predicted, 3, 5) == [(0, 1, 2), (1, 0, 1), (2, 1, 1)]
    assert confused_pairs(labels, predicted, 3, 1) == [(0, 1, 2)]
    assert confused_pairs(labels, labels, 3, 5) == []


def test_choose_images_samples_each_class_caps_the_misclassified_and_keeps_the_pairs():
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2])
    predicted = torch.tensor([1, 1, 0, 0, 1, 2, 1, 2])
    chosen = choose_images(labels, predicted, 3, samples_per_class=2, max_misclassified=3,
                           pairs=2, images_per_pair=1)  # fmt: skip
    assert [int(labels[i]) for i in chosen.samples] == [0, 0, 1, 1, 2, 2]
    assert chosen.misclassified == [0, 1, 3]
    assert chosen.pairs == [(0, 1, 2, [0]), (1, 0, 1, [3])]
    again = choose_images(labels, predicted, 3, samples_per_class=2, max_misclassified=3,
                          pairs=2, images_per_pair=1)  # fmt: skip
    assert again == chosen  # the sample is seeded


@pytest.mark.parametrize("backbone", ["simplecnn", "resnet18"])
def test_gradcam_reads_the_last_conv_block_and_gives_a_map_per_picture(backbone):
    torch.manual_seed(0)
    network = build_model(backbone, 3).eval()
    expected = network.layer4 if backbone == "resnet18" else network.features[-1]
    assert last_conv_block(network) is expected
    classifier = Classifier(network, ["a", "b", "c"], backbone, 64, IMAGENET_MEAN, IMAGENET_STD,
                            torch.device("cpu"))  # fmt: skip
    images = torch.randint(0, 255, (2, 3, 64, 64), dtype=torch.uint8)
    maps = saliency(classifier, images, torch.tensor([0, 2]))
    assert maps.shape == (2, 64, 64)
    assert float(maps.min()) >= 0 and float(maps.flatten(1).amax(1).max()) <= 1


def test_masked_pixels_take_the_mean_colour_on_every_channel():
    images = torch.zeros(1, 3, 2, 2, dtype=torch.uint8)
    chosen = torch.tensor([[True, False, False, True]])
    masked = _masked(images, chosen, IMAGENET_MEAN)
    assert masked[0, :, 0, 0].tolist() == [round(255 * m) for m in IMAGENET_MEAN]
    assert masked[0, :, 0, 1].tolist() == [0, 0, 0]
    assert masked[0, :, 1, 1].tolist() == [round(255 * m) for m in IMAGENET_MEAN]


def test_an_unknown_method_is_named():
    network = build_model("simplecnn", 2).eval()
    classifier = Classifier(network, ["a", "b"], "simplecnn", 16, IMAGENET_MEAN, IMAGENET_STD,
                            torch.device("cpu"))  # fmt: skip
    with pytest.raises(ValueError, match="unknown explanation method 'lime'"):
        saliency(
            classifier, torch.zeros(1, 3, 16, 16, dtype=torch.uint8), torch.tensor([0]), "lime"
        )
