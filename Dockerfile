# MeshSync for Python: a slim, non-root image with only the runtime plugins (k8s, nats, file).
# Build from the repository root:  docker build -t meshsync:dev .

# ---- build: wheels for meshsync, its plugins and every dependency -------------------------------
FROM python:3.12-slim AS build
# A C compiler for meshsync-speedups' optional C extensions (without one: pure Python).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md hatch_build.py ./
COPY meshsync_core ./meshsync_core
COPY plugins ./plugins
RUN pip wheel --no-cache-dir --wheel-dir /wheels . ./plugins/meshsync_k8s ./plugins/meshsync_nats ./plugins/meshsync_file ./plugins/meshsync_speedups

# ---- runtime -----------------------------------------------------------------------------------
FROM python:3.12-slim
# Runs with a read-only root filesystem: no bytecode is written at run time, and HOME and the
# caches point at /tmp (an emptyDir in our manifests; in NATS mode nothing is written at all).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    XDG_CACHE_HOME=/tmp/.cache
COPY --from=build /wheels /wheels
# Every wheel: the core, the three plugins and meshsync-speedups (what the "all" extra names) and
# their dependencies.
# /meshery-meshsync is where Go MeshSync's image has its binary: Meshery Operator's Deployment
# runs ./meshery-meshsync (Go's flags, `-h` for its liveness probe) in the working directory /.
RUN pip install --no-cache-dir --no-index --find-links /wheels /wheels/*.whl \
    && rm -rf /wheels \
    && ln -s usr/local/bin/meshery-meshsync /meshery-meshsync \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin meshsync
USER 10001
# Go MeshSync's working directory. File mode writes its default snapshot here: give
# --output-file in a writable volume (the Helm chart uses /tmp).
WORKDIR /
EXPOSE 11000
ENTRYPOINT ["meshsync"]
CMD ["run", "--output", "nats", "--log-format", "json"]
