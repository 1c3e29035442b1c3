# syntax=docker/dockerfile:1.7
# TorchServe 0.12 on a CUDA base image, serving the colourisation archives (.mar).
#
#   docker build -f deploy/docker/torchserve.Dockerfile -t colorizers/torchserve:0.1.0 .
#   docker run --gpus all -p 8080:8080 -v "$PWD/model_store:/home/model-server/model-store" colorizers/torchserve:0.1.0
#
# Archives come from a volume at /home/model-server/model-store (a PersistentVolumeClaim in Kubernetes),
# or are baked into the image with --build-arg BAKE_MODELS=true (every model_store/*.mar of the build
# context). The image also keeps a copy under /opt/colorizers/model_store, which the Kubernetes init
# container uses to seed an empty volume.
#
# The base is NVIDIA's CUDA image rather than pytorch/torchserve: the official TorchServe images bring
# their own Python and torch, older than the torch==2.13.0 this project pins for training and serving alike.
# PyPI's Linux torch wheel ships its CUDA libraries; the host driver comes from the NVIDIA container toolkit.
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
WORKDIR /src
COPY pyproject.toml ./
COPY services/ services/
COPY gateway/ gateway/
COPY training/ training/
COPY protos/ protos/
RUN pip install ".[serve]"

FROM ${CUDA_IMAGE}
ARG BAKE_MODELS=false
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 openjdk-17-jre-headless tini ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --home-dir /home/model-server --uid 10001 --user-group --shell /usr/sbin/nologin model-server

COPY --from=build /opt/venv /opt/venv
COPY deploy/torchserve/ /opt/colorizers/deploy/torchserve/
COPY model_store/ /opt/colorizers/model_store/
RUN mkdir -p /home/model-server/model-store /home/model-server/logs \
    && if [ "${BAKE_MODELS}" = "true" ]; then \
         find /opt/colorizers/model_store -maxdepth 1 -name '*.mar' -exec cp {} /home/model-server/model-store/ \; ; \
       fi \
    && chmod 0755 /opt/colorizers/deploy/torchserve/start.sh \
    && chown -R model-server:model-server /home/model-server

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MODEL_STORE=/home/model-server/model-store \
    TS_CONFIG=/opt/colorizers/deploy/torchserve/config.properties \
    TS_MODELS=all \
    TS_BIND_ADDRESS=0.0.0.0 \
    TS_LOG_DIR=/home/model-server/logs \
    COLORIZERS_DEVICE=auto \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

USER 10001:10001
WORKDIR /home/model-server
VOLUME ["/home/model-server/model-store"]
# 8080 inference, 8081 management, 8082 metrics, 7070/7071 gRPC inference/management.
EXPOSE 8080 8081 8082 7070 7071

HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen(\"http://127.0.0.1:8080/ping\", timeout=4)"]

# tini reaps the worker processes; start.sh turns SIGTERM into a graceful TorchServe stop.
ENTRYPOINT ["/usr/bin/tini", "--", "/opt/colorizers/deploy/torchserve/start.sh"]
