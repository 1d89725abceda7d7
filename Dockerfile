# syntax=docker/dockerfile:1
#
# kpng: one image, three programs (console scripts on PATH), and the operator CLI `kpng`:
#   kpng-watcher   Kubernetes API or cluster file -> NATS          (runs as the kpng user)
#   kpng-agent     NATS -> this node's nftables and conntrack      (runs as root with NET_ADMIN)
#   kpng-observer  NATS -> HTTP API, SSE, metrics, dashboard       (runs as the kpng user)
#   kpng-auth      NATS auth callout: per-node identity from tokens (runs as the kpng user)
# Choose the program with the container command, e.g.
#   docker run --rm kpng:dev kpng-agent --help
#
# Product image only: .dockerignore keeps tests/ and tools/ (API simulator, scale and bench
# harnesses, dev runner) out of the build context, so they are neither built nor shipped.

# Reproducible: the base image pinned to the Python release and Debian release the tests ran on,
# and every dependency pinned by constraints.txt (`make constraints`, pip freeze of the tested
# virtualenv), so two builds of one commit install the same versions.
ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md LICENSE constraints.txt ./
COPY libs ./libs
COPY services ./services
# kpng and every dependency of the three services (the `all` extra) as wheels, at the tested
# versions; the runtime stage installs them offline
RUN pip wheel --constraint constraints.txt --wheel-dir /wheels '.[all]'

FROM ${PYTHON_IMAGE}
ARG DEBIAN_FRONTEND=noninteractive
# set by the build: docker build --build-arg VERSION=$(git describe) --build-arg REVISION=...
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="kpng" \
      org.opencontainers.image.description="A Kubernetes service proxy built as microservices over NATS (watcher, agent, observer)" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/kubernetes-sigs/kpng" \
      org.opencontainers.image.documentation="https://github.com/kubernetes-sigs/kpng/tree/main/docs" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"
# nft: the agent's ruleset; iproute2 and conntrack: for operators debugging a node
# (the agent itself talks netlink through pyroute2 for addresses and conntrack cleanup)
RUN apt-get update \
    && apt-get install -y --no-install-recommends nftables iproute2 conntrack \
    && rm -rf /var/lib/apt/lists/*
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels 'kpng[all]' \
    && kpng-watcher --help >/dev/null \
    && kpng-agent --help >/dev/null \
    && kpng-observer --help >/dev/null \
    && kpng-auth --help >/dev/null \
    && kpng-agent --version \
    && kpng --help >/dev/null
# Non-root by default (watcher, observer, dump-backend agents). The nftables agent overrides
# this with runAsUser 0 and the NET_ADMIN/NET_RAW capabilities (see deploy/helm).
RUN groupadd --system --gid 10001 kpng \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin kpng \
    && install -d -o kpng -g kpng /var/lib/kpng /var/lib/kpng/dumps /var/lib/kpng/bus
USER 10001:10001
WORKDIR /var/lib/kpng
# observer HTTP, watcher metrics, agent healthz, agent metrics
EXPOSE 8080 9100 10256 10249
# For Docker and Compose (Kubernetes uses the chart's probes instead): GET HEALTHCHECK_URL,
# by default the agent's /livez; the observer's is http://127.0.0.1:8080/livez. The watcher
# serves no health endpoint: HEALTHCHECK_URL=none checks only that the process runs.
ENV HEALTHCHECK_URL=http://127.0.0.1:10256/livez
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; u = os.environ.get('HEALTHCHECK_URL', ''); sys.exit(0 if u in ('', 'none') else urllib.request.urlopen(u, timeout=4).status != 200)"]
CMD ["kpng-watcher", "--help"]
