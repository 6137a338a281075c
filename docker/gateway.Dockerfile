# syntax=docker/dockerfile:1
# gateway: the AI gateway (POST /analyze, POST /v1/chat/completions) on port 8001.
# Build from the repository root, which holds the lock file:
#   docker build -f docker/gateway.Dockerfile -t codereview-gateway .
ARG PYTHON_IMAGE=python:3.11-slim-trixie

# ---- builder: the locked main dependency group in /opt/venv; poetry stays in this stage ----
FROM ${PYTHON_IMAGE} AS builder
ARG POETRY_VERSION=2.5.1
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    POETRY_NO_INTERACTION=1 \
    POETRY_VIRTUALENVS_CREATE=false \
    POETRY_CACHE_DIR=/tmp/poetry-cache
RUN python -m venv /opt/poetry \
    && /opt/poetry/bin/pip install "poetry==${POETRY_VERSION}" \
    && python -m venv --without-pip /opt/venv
WORKDIR /src
COPY pyproject.toml poetry.lock ./
# `sync` installs exactly what poetry.lock pins (and fails if it no longer matches pyproject.toml).
RUN VIRTUAL_ENV=/opt/venv /opt/poetry/bin/poetry sync --only main --no-root --compile \
    && rm -rf /tmp/poetry-cache

# ---- runtime: the venv and the code, nothing to build with ----
FROM ${PYTHON_IMAGE} AS runtime
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GATEWAY_HOST=0.0.0.0 \
    GATEWAY_PORT=8001
RUN groupadd --system --gid 10001 codereview \
    && useradd --system --uid 10001 --gid codereview --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin codereview
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
COPY gateway/ /app/gateway/
COPY docker/healthcheck.py /opt/codereview/healthcheck.py
RUN python -m compileall -q /app /opt/codereview
USER 10001:10001
EXPOSE 8001
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "/opt/codereview/healthcheck.py", "GATEWAY_PORT", "8001"]
CMD ["python", "-m", "gateway"]
