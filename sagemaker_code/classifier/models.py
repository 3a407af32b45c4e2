"""The backbones and what is trained of them.

Backbones: ``resnet18``, ``resnet34``, ``resnet50``, ``mobilenet_v2`` (torchvision) and
``simplecnn``, three conv blocks that train in seconds on a CPU for tests, demos and tuning
trials. The classifier layer (the head, ``head_prefix``) is ``fc`` in the resnets and simplecnn,
``classifier.1`` in mobilenet_v2. A torchvision backbone's starting weights come, in this order,
from a state-dict file in the ``pretrained`` channel (network-isolated jobs;
``load_backbone_weights``), from torchvision's ImageNet weights (downloaded, or found in torch
hub's cache; ``load_imagenet_weights``), or nowhere (``pretrained-weights none``: trained from
scratch).

Freeze policies: ``head`` trains the head only, ``full`` trains everything, ``staged`` trains
the head for the first epoch and everything afterwards (``trainable_for_epoch``). Parameters that
cannot change the loss (``inert_parameters``) are never trained.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from pathlib import Path

import torch
import torchvision
from torch import nn

from classifier.errors import TrainingError

BACKBONES = ("simplecnn", "resnet18", "resnet34", "resnet50", "mobilenet_v2")
FREEZE_POLICIES = ("head", "full", "staged")
# mobilenet_v2's classifier is Sequential(Dropout, Linear): its Linear is the head.
MOBILENET_HEAD = "classifier.1"
WEIGHT_SUFFIXES = (".pt", ".pth", ".bin")


class SimpleCNN(nn.Module):
    """Three conv-norm-relu-pool blocks, global average pooling and a linear ``fc`` head.

    Each block names its activation ``relu`` so SageMaker Debugger's ``relu_input``
    collection (regex ``.*relu_input``) finds it, as it does in torchvision's ResNets.
    """

    def __init__(self, num_classes: int, width: int = 32) -> None:
        super().__init__()
        channels = (3, width, width * 2, width * 4)
        self.features = nn.Sequential(
            *(_conv_block(c_in, c_out) for c_in, c_out in itertools.pairwise(channels))
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


def _conv_block(c_in: int, c_out: int) -> nn.Sequential:
    block = nn.Sequential()
    block.add_module("conv", nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False))
    # GroupNorm, not BatchNorm: no running statistics, so a network trained for a dozen steps
    # (a tuning trial, a test) evaluates the way it trained.
    block.add_module("norm", nn.GroupNorm(8, c_out))
    block.add_module("relu", nn.ReLU())
    block.add_module("pool", nn.MaxPool2d(2))
    return block


def build_model(backbone: str, num_classes: int) -> nn.Module:
    """A freshly initialised network with a ``num_classes``-way ``fc`` head."""
    if backbone == "simplecnn":
        return SimpleCNN(num_classes)
    if backbone not in BACKBONES:
        raise TrainingError(f"unknown backbone {backbone!r}; choose one of {BACKBONES}")
    model = getattr(torchvision.models, backbone)(weights=None)
    if backbone == "mobilenet_v2":
        model.classifier[1] = nn.Linear(model.classifier[1].in_features, num_classes)
        _name_activations_relu(model)
    else:
        model.fc = nn.Linear(model.fc.in_features, num_classes)
    set_trainable(model, "full")
    return model


def inert_parameters(model: nn.Module) -> set[str]:
    """Parameters whose gradient is zero by construction: in mobilenet_v2, the bias of the batch
    norm that ends each inverted residual block (its linear bottleneck, no activation after it).
    That output reaches the loss only through 1x1 convolutions into batch norms, directly or
    through the residual sums, and a training-mode batch norm subtracts each channel's batch
    mean: a constant shift per channel, all that a bias adds, cancels there.

    Trained, they get rounding noise (1e-9 to 1e-7 of mean absolute gradient in a fresh network
    at 64 or 224 px), which Debugger's VanishingGradient, by AWS's formula (any tensor of the
    ``gradients`` collection under ``threshold``, 1e-7), reports as vanishing gradients on every
    mobilenet_v2 trained in full, and which Adam's normalised steps turn into moves of up to the
    learning rate a step. Not requiring gradients, they get no smdebug gradient hook (it hooks
    only parameters that do) and no update."""
    inert = set()
    for name, module in model.named_modules():
        if isinstance(module, torchvision.models.mobilenetv2.InvertedResidual):
            inert.add(f"{name}.conv.{len(module.conv) - 1}.bias")
    return inert


def head_prefix(model: nn.Module) -> str:
    """The state-dict prefix of the classifier layer: what ``head`` trains and no weights file
    brings (its class count is the dataset's)."""
    return "fc." if hasattr(model, "fc") else f"{MOBILENET_HEAD}."


def _name_activations_relu(model: nn.Module) -> None:
    """Wrap each ReLU6 as a child named ``relu``, so SageMaker Debugger's ``relu_input``
    collection (regex ``.*relu_input``) finds mobilenet_v2's activations as it finds a resnet's
    (``features.1.conv.0.2.relu_input_0``). Activations hold no parameters: the state dict,
    and so ImageNet weights, keep their keys."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.ReLU6):
                setattr(parent, name, nn.Sequential(OrderedDict(relu=child)))


def find_weights_file(folder: Path) -> Path:
    """The one state-dict file (``.pt``/``.pth``/``.bin``) in the ``pretrained`` channel."""
    files = sorted(p for p in folder.rglob("*") if p.suffix in WEIGHT_SUFFIXES and p.is_file())
    if len(files) != 1:
        raise TrainingError(
            "channel 'pretrained' must hold exactly one weights file "
            f"({', '.join(WEIGHT_SUFFIXES)}), found {[str(p) for p in files] or 'none'} in {folder}"
        )
    return files[0]


def load_backbone_weights(model: nn.Module, weights_file: Path) -> None:
    """Load a state-dict file into everything but the ``fc`` head (its class count differs).

    Accepts a plain state dict or ``{"state_dict": ...}``. Raises ``TrainingError`` when a
    backbone tensor is missing, extra or of another shape: the file is for another
    architecture (resnet34 weights hold all of resnet18's tensors, and more).
    """
    loaded = torch.load(weights_file, map_location="cpu", weights_only=True)
    state = loaded.get("state_dict", loaded) if isinstance(loaded, dict) else None
    if not isinstance(state, dict):
        raise TrainingError(f"{weights_file} holds no state dict")
    _load_backbone_state(model, state, str(weights_file))


def load_imagenet_weights(model: nn.Module, backbone: str) -> None:
    """Load torchvision's ImageNet weights of ``backbone`` into everything but the head.

    torch hub takes them from its cache (``$TORCH_HOME/hub/checkpoints``) or downloads them;
    without internet access that fails, and the ``TrainingError`` says what to do instead.
    """
    weights = torchvision.models.get_model_weights(backbone).DEFAULT
    try:
        state = weights.get_state_dict(progress=False)
    except OSError as error:  # URLError and friends: no route to download.pytorch.org
        raise TrainingError(
            f"could not get the ImageNet weights of {backbone} from {weights.url} ({error}); "
            "a job without internet access needs a 'pretrained' channel holding them, or "
            "pretrained-weights=none to train from scratch"
        ) from error
    _load_backbone_state(model, state, weights.url)


def _load_backbone_state(model: nn.Module, state: dict, source: str) -> None:
    head = head_prefix(model)
    expected = {k: v for k, v in model.state_dict().items() if not k.startswith(head)}
    wrong = [
        name
        for name, tensor in expected.items()
        if name not in state or state[name].shape != tensor.shape
    ]
    wrong += [n for n in state if n not in expected and not n.startswith(head)]
    if wrong:
        raise TrainingError(
            f"{source} does not fit the {type(model).__name__} backbone: "
            f"{len(wrong)} tensors missing, extra or of another shape, e.g. {wrong[:3]}"
        )
    model.load_state_dict({name: state[name] for name in expected}, strict=False)


def use_out_of_place_relu(model: nn.Module) -> None:
    """Make in-place ReLUs (and mobilenet_v2's ReLU6s) ordinary ones.

    Forward hooks see a module's inputs after it ran: an in-place ReLU has overwritten them
    by then, so the Debugger's ``relu_input`` tensors would hold ReLU outputs (never
    negative) and PoorWeightInitialization would judge the wrong numbers.
    """
    for module in model.modules():
        if isinstance(module, (nn.ReLU, nn.ReLU6)):
            module.inplace = False


def trainable_for_epoch(policy: str, epoch: int) -> str:
    """``head`` or ``full``: what the policy trains in ``epoch`` (counted from 1)."""
    if policy == "staged":
        return "head" if epoch == 1 else "full"
    return policy


def set_trainable(model: nn.Module, part: str) -> None:
    """Make the head (``head``) or every parameter (``full``) require gradients, nothing else;
    never the inert ones (``inert_parameters``)."""
    head, inert = head_prefix(model), inert_parameters(model)
    for name, parameter in model.named_parameters():
        parameter.requires_grad_((part == "full" or name.startswith(head)) and name not in inert)
