"""Real-time endpoints and batch transform for the local runtime (the executor side).

``model_server.py`` runs inside the "container" (stdlib only); ``process.py`` starts and stops
it; ``artifacts.py`` turns a model's container definition into a model dir; ``fleet.py`` maps
endpoints to their running servers; ``multi_model.py`` loads and unloads a multi-model variant's
models on demand; ``invoke.py`` answers InvokeEndpoint; ``batch.py`` runs a
transform over input objects. The API operations live in ``local_sagemaker/sagemaker/hosting.py``
and ``transform.py``.
"""
