# syntax=docker/dockerfile:1
#
# kpng: one image, three programs (console scripts on PATH):
#   kpng-watcher   Kubernetes API or cluster file -> NATS          (runs as the kpng user)
#   kpng-agent     NATS -> this node's nftables and conntrack      (runs as root with NET_ADMIN)
#   kpng-observer  NATS -> HTTP API, SSE, metrics, dashboard       (runs as the kpng user)
# Choose the program with the container command, e.g.
#   docker run --rm kpng:dev kpng-agent --help
#
# Product image only: .dockerignore keeps tests/ and tools/ (API simulator, scale and bench
# harnesses, dev runner) out of the build context, so they are neither built nor shipped.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY libs ./libs
COPY services ./services
# kpng and every dependency of the three services (the `all` extra) as wheels; the runtime
# stage installs them offline
RUN pip wheel --wheel-dir /wheels '.[all]'

FROM ${PYTHON_IMAGE}
ARG DEBIAN_FRONTEND=noninteractive
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
    && kpng-observer --help >/dev/null
# Non-root by default (watcher, observer, dump-backend agents). The nftables agent overrides
# this with runAsUser 0 and the NET_ADMIN/NET_RAW capabilities (see deploy/helm).
RUN groupadd --system --gid 10001 kpng \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin kpng \
    && install -d -o kpng -g kpng /var/lib/kpng /var/lib/kpng/dumps /var/lib/kpng/bus
USER 10001:10001
WORKDIR /var/lib/kpng
# observer HTTP, watcher metrics, agent healthz, agent metrics
EXPOSE 8080 9100 10256 10249
CMD ["kpng-watcher", "--help"]
