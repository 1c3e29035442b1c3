# syntax=docker/dockerfile:1.7
# The gateway: REST :8000, gRPC :50051, web page. CPU only.
#
#   docker build -f deploy/docker/gateway.Dockerfile -t colorizers/gateway:0.1.0 .
#   docker run -p 8000:8000 -p 50051:50051 -e GATEWAY_BACKEND=embedded colorizers/gateway:0.1.0
#
# torch is installed from PyTorch's CPU index (the embedded backend runs the models in-process; with
# GATEWAY_BACKEND=torchserve it only reads the weight sidecars). The committed weights are in the image at
# /opt/colorizers/model_store/weights; in Kubernetes GATEWAY_WEIGHTS_DIR points into the shared model store.
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN pip install --index-url "${TORCH_INDEX_URL}" torch==2.13.0
WORKDIR /src
COPY pyproject.toml ./
COPY services/ services/
COPY gateway/ gateway/
COPY training/ training/
COPY protos/ protos/
RUN pip install ".[gateway]"

FROM ${PYTHON_IMAGE}
RUN useradd --create-home --home-dir /home/gateway --uid 10001 --user-group --shell /usr/sbin/nologin gateway
COPY --from=build /opt/venv /opt/venv
COPY model_store/weights/ /opt/colorizers/model_store/weights/

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    GATEWAY_HTTP_HOST=0.0.0.0 \
    GATEWAY_HTTP_PORT=8000 \
    GATEWAY_GRPC_PORT=50051 \
    GATEWAY_WEIGHTS_DIR=/opt/colorizers/model_store/weights \
    COLORIZERS_DEVICE=cpu

USER 10001:10001
WORKDIR /home/gateway
EXPOSE 8000 50051

HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen(\"http://127.0.0.1:8000/healthz\", timeout=4)"]

ENTRYPOINT ["python", "-m", "gateway"]
