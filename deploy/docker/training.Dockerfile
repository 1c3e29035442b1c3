# syntax=docker/dockerfile:1.7
# The training service (`python -m training serve`, HTTP :8090) and the training jobs (`python -m training
# train ...`, also under torchrun for multi-GPU / multi-node DistributedDataParallel).
#
#   docker build -f deploy/docker/training.Dockerfile -t colorizers/training:0.1.0 .
#   docker run --gpus all -p 8090:8090 -v "$PWD/model_store:/home/model-server/model-store" colorizers/training:0.1.0
#
# PyPI's Linux torch wheel ships its CUDA libraries (cuDNN, NCCL included); the base image supplies the
# CUDA driver hooks for the NVIDIA container toolkit.
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-base-ubuntu24.04

FROM ${CUDA_IMAGE} AS build
ARG TORCH_INDEX_URL=https://pypi.org/simple
ENV DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN pip install --index-url "${TORCH_INDEX_URL}" torch==2.13.0
# The source stays at /opt/colorizers (editable install): packaging reads services/handler.py from it.
WORKDIR /opt/colorizers
COPY pyproject.toml ./
COPY services/ services/
COPY gateway/ gateway/
COPY training/ training/
COPY protos/ protos/
COPY model_store/weights/ model_store/weights/
RUN pip install -e ".[train]"

FROM ${CUDA_IMAGE}
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 tini ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --home-dir /home/model-server --uid 10001 --user-group --shell /usr/sbin/nologin model-server
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/colorizers /opt/colorizers
RUN mkdir -p /home/model-server/model-store /data /runs \
    && chown -R model-server:model-server /home/model-server /data /runs

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    TRAINING_HOST=0.0.0.0 \
    TRAINING_PORT=8090 \
    TRAINING_MODEL_STORE=/home/model-server/model-store \
    TRAINING_DATA_DIR=/data \
    TRAINING_RUNS_DIR=/runs \
    TRAINING_TORCHSERVE_MANAGEMENT_URL=http://127.0.0.1:8081 \
    COLORIZERS_DEVICE=auto \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

USER 10001:10001
WORKDIR /opt/colorizers
EXPOSE 8090

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python3", "-c", "import socket; socket.create_connection((\"127.0.0.1\", 8090), timeout=4).close()"]

ENTRYPOINT ["/usr/bin/tini", "--", "python3", "-m", "training"]
CMD ["serve"]
