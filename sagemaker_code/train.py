"""Training entry point: fine-tune an image classifier on ``<split>/<NNN.Class>/*.jpg`` data.

Runs as SageMaker's training toolkit runs a script-mode entry point, from the code dir::

    python train.py --backbone resnet18 --batch-size 32 --epochs 3 --lr 0.001 ...

or with no arguments when ``SM_HPS`` / ``hyperparameters.json`` hold the hyperparameters
(``classifier/hyperparameters.py`` lists them). Channels: ``train`` and ``valid`` (or one
``train`` channel holding ``train/ valid/ test/``), optional ``test``, and optional
``pretrained`` with one state-dict file for the backbone (without it, a resnet starts from
torchvision's ImageNet weights, or from scratch with ``--pretrained-weights none``).

Outputs: one ``#metrics`` line per epoch (and ``#metrics test_loss=... test_acc=...`` with a
test split) on stdout; the best epoch's model in ``SM_MODEL_DIR`` (``classifier/artifact.py``);
SageMaker Debugger tensors when the job configured the hook (``classifier/debugger.py``); a
checkpoint per epoch when it configured checkpoints. On failure: the reason in
``<SM_OUTPUT_DIR>/failure`` and exit 1.
"""

from __future__ import annotations

import sys
import time

import torch
from classifier.artifact import save_model
from classifier.checkpoints import load_checkpoint, save_checkpoint
from classifier.data import BatchLoader, list_classes, load_split, locate_splits
from classifier.debugger import DebuggerHook
from classifier.distributed import Cluster, join_cluster, leave_cluster, wrap_for_training
from classifier.environment import TrainingEnvironment
from classifier.errors import report_training_failure
from classifier.hyperparameters import Hyperparameters, parse_hyperparameters
from classifier.models import (
    build_model,
    find_weights_file,
    load_backbone_weights,
    load_imagenet_weights,
    set_trainable,
    trainable_for_epoch,
    use_out_of_place_relu,
)
from classifier.training import BestWeights, EpochResult, Trainer, make_optimizer
from torch import nn


def main(argv: list[str]) -> None:
    env = TrainingEnvironment.from_environ()
    with report_training_failure(env.output_dir):
        hp = parse_hyperparameters(argv, env.hyperparameters)
        print(f"hyperparameters: {hp}", flush=True)
        train(env, hp)


def train(env: TrainingEnvironment, hp: Hyperparameters) -> None:
    torch.manual_seed(hp.seed)
    cluster = join_cluster(env)

    class_names, data = load_data(env, hp)
    print(f"device: {cluster.device}", flush=True)
    network = build_network(env, hp, len(class_names))
    criterion = nn.CrossEntropyLoss(label_smoothing=hp.label_smoothing)
    hook = DebuggerHook.from_job(env.input_config_dir, env.checkpoint_dir, cluster.is_master)
    if hook.enabled:
        use_out_of_place_relu(network)
    hook.attach(network, criterion)
    network.to(cluster.device)
    optimizer = make_optimizer(hp.optimizer, list(network.parameters()), hp.lr, hp.weight_decay)
    trainer = Trainer(network, criterion, optimizer, hook, cluster, seed=hp.seed)

    loaders = {
        split: BatchLoader(
            images,
            hp.batch_size,
            shuffle=split == "train",
            device=cluster.device,
            seed=hp.seed,
            rank=cluster.rank,
            world_size=cluster.world_size,
        )
        for split, images in data.items()
    }
    train_loader, valid_loader = loaders["train"], loaders["valid"]
    first_epoch, best = resume(env, network, optimizer)

    # The epochs.
    trained_part, module = None, network
    for epoch in range(first_epoch, hp.epochs + 1):
        started = time.perf_counter()
        part = trainable_for_epoch(hp.freeze, epoch)
        if part != trained_part:
            set_trainable(network, part)
            module, trained_part = wrap_for_training(network, cluster), part
        train_loader.set_epoch(epoch)
        train_loss, train_acc, images_per_sec = trainer.train_epoch(module, train_loader)
        valid_loss, valid_acc = trainer.evaluate(valid_loader, mode="eval")
        result = EpochResult(
            epoch, train_loss, train_acc, valid_loss, valid_acc,
            time.perf_counter() - started, images_per_sec,
        )  # fmt: skip
        best.offer(network, result)
        if cluster.is_master:
            print(result.metrics_line(), flush=True)
            if env.checkpoint_dir is not None:
                save_checkpoint(
                    env.checkpoint_dir, checkpoint_state(epoch, network, optimizer, best)
                )

    finish(env, hp, cluster, trainer, best, class_names, loaders.get("test"))
    hook.close()
    leave_cluster(cluster)


def load_data(env: TrainingEnvironment, hp: Hyperparameters) -> tuple[list[str], dict]:
    """The training class names and every split, decoded once into memory."""
    splits = locate_splits(env.channels)
    class_names = list_classes(splits["train"], "train")
    workers = hp.num_workers or env.num_cpus
    data = {
        split: load_split(folder, split, class_names, hp.image_size, workers)
        for split, folder in splits.items()
    }
    sizes = ", ".join(f"{split}={len(images)}" for split, images in data.items())
    print(f"{len(class_names)} classes; pictures: {sizes}", flush=True)
    return class_names, data


def build_network(env: TrainingEnvironment, hp: Hyperparameters, num_classes: int) -> nn.Module:
    """The backbone with a fresh head, starting from the weights the job asked for."""
    network = build_model(hp.backbone, num_classes)
    if "pretrained" in env.channels:
        load_backbone_weights(network, find_weights_file(env.channels["pretrained"]))
    elif hp.pretrained_weights == "imagenet" and hp.backbone != "simplecnn":
        load_imagenet_weights(network, hp.backbone)
    elif hp.freeze != "full":
        print(
            f"warning: freeze={hp.freeze} keeps a randomly initialised {hp.backbone} backbone "
            "(at first); give it pretrained weights or use freeze=full",
            file=sys.stderr,
        )
    return network


def resume(
    env: TrainingEnvironment, network: nn.Module, optimizer: torch.optim.Optimizer
) -> tuple[int, BestWeights]:
    """The first epoch to run and the best weights so far: from the checkpoint, if any."""
    saved = load_checkpoint(env.checkpoint_dir)
    if saved is None:
        return 1, BestWeights()
    network.load_state_dict(saved["network"])
    optimizer.load_state_dict(saved["optimizer"])
    print(f"resuming after epoch {saved['epoch']} from {env.checkpoint_dir}", flush=True)
    return saved["epoch"] + 1, BestWeights.from_dict(saved["best"])


def checkpoint_state(
    epoch: int, network: nn.Module, optimizer: torch.optim.Optimizer, best: BestWeights
) -> dict:
    return {
        "epoch": epoch,
        "network": network.state_dict(),
        "optimizer": optimizer.state_dict(),
        "best": best.as_dict(),
    }


def finish(
    env: TrainingEnvironment,
    hp: Hyperparameters,
    cluster: Cluster,
    trainer: Trainer,
    best: BestWeights,
    class_names: list[str],
    test_loader: BatchLoader | None,
) -> None:
    """Restore the best epoch's weights, score them on the test split, save the model."""
    if best.state is not None:
        trainer.network.load_state_dict(best.state)
        print(f"keeping the weights of epoch {best.epoch}", flush=True)
    if test_loader is not None:
        test_loss, test_acc = trainer.evaluate(test_loader, mode="predict")
        if cluster.is_master:
            print(f"#metrics test_loss={test_loss:.4f} test_acc={test_acc:.4f}", flush=True)
    if cluster.is_master:
        path = save_model(
            env.model_dir, trainer.network,
            backbone=hp.backbone, class_names=class_names, image_size=hp.image_size,
        )  # fmt: skip
        print(f"saved the model to {path}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
