"""The image classifier that runs inside SageMaker's PyTorch containers.

Used by the entry scripts beside this package: ``train.py`` (training jobs),
``inference.py`` (endpoints and batch transform) and ``explain.py`` (the explanation job). One
module per concern:

- ``environment``: the SageMaker training contract (``SM_*`` variables, ``/opt/ml`` files).
- ``hyperparameters``: the ``--name value`` arguments, with the SDK's JSON-encoded values.
- ``images``: decoding and resizing one picture, shared by training and serving.
- ``data``: the ``<split>/<NNN.Class>/*.jpg`` dataset, cached as one uint8 tensor per split.
- ``models``: the backbones (``simplecnn``, ``resnet18/34/50``, ``mobilenet_v2``) and the
  freezing policies.
- ``training``: the epoch loop and the ``#metrics`` lines the tuner scrapes.
- ``debugger``: the SageMaker Debugger (smdebug) hook.
- ``distributed``: multi-host data parallel training with torch.distributed.
- ``checkpoints``: resumable training state in the SageMaker checkpoint directory.
- ``artifact``: the self-contained model directory (``model.pt`` + ``code/``).
- ``serving``: request decoding and response encoding for the inference handlers.
- ``explanations``: saliency maps (Captum), their deletion test, and the explanation report.
- ``errors``: the failures the platform reports (training failure file, HTTP client errors).
"""
