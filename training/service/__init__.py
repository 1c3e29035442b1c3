"""Training HTTP API (``python -m training serve``): start training jobs, follow them, list the artifacts.

A job is one ``python -m training train ...`` process in its own process group, started by a supervisor
that keeps at most ``TRAINING_MAX_CONCURRENT_JOBS`` of them running (the rest wait in a queue). Everything
a job owns lives in ``RUNS_DIR/jobs/<id>/``:

    job.json        the job record (rewritten on every change; a restarted service reads it back)
    train.log       the trainer's stdout and stderr
    <model>/        the trainer's run directory: progress.json, checkpoint.pt, tensorboard/
    weights/        the weights and sidecar the trainer wrote

When the trainer ends well the job is *packaging*: its weights and sidecar are copied into
``MODEL_STORE/weights`` under the served name, the archive ``MODEL_STORE/<name>.mar`` is built and, when
``TRAINING_TORCHSERVE_MANAGEMENT_URL`` is set, registered with TorchServe and made the default version.
A registration that fails leaves the job *succeeded* with a warning (weights and archive are good; TorchServe
can load the archive later, ``POST /v1/jobs/{id}/register`` tries again); a failure before that fails the job.

The modules: ``jobs`` (the job record, its files, the trainer's command line), ``processes`` (watching and
signalling trainer processes), ``manager`` (queue, supervision, packaging, restarts), ``artifacts`` (weights
into the store, archives, TorchServe registration), ``schemas`` (request and response bodies), ``views`` (a job
as clients see it), ``errors`` and ``api`` (routes, error handlers, ``create_app``, ``main``). Callers import
from those modules.
"""
