# One image for every annoflow role: migrate, producer, applier, worker, inference worker, flower.
#   docker build -t annoflow .
#   docker run --rm annoflow --help
# The role is the command: `annoflow produce ...`, `annoflow apply`, `annoflow worker ...`;
# Flower runs `celery flower` from the same image (see docker-compose.yml).

# ---- build: install annoflow and its dependencies into a virtual environment
FROM python:3.11.10-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/annoflow
WORKDIR /src
# Dependencies first, from the metadata alone, so a code change does not reinstall them.
COPY pyproject.toml README.md ./
RUN mkdir -p common producer workers \
    && /opt/annoflow/bin/pip install --quiet ".[flower]" \
    && /opt/annoflow/bin/pip uninstall --quiet --yes annoflow
COPY common ./common
COPY producer ./producer
COPY workers ./workers
RUN /opt/annoflow/bin/pip install --quiet --no-deps ".[flower]" \
    && /opt/annoflow/bin/annoflow --help >/dev/null

# ---- runtime: the virtual environment, the shared libraries OpenCV needs, a non-root user
FROM python:3.11.10-slim-bookworm
# libglib2.0-0 and libgomp1: OpenCV's headless build still links them.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libglib2.0-0 libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 --user-group annoflow \
    && mkdir -p /opt/annoflow-agents \
    && chown annoflow:annoflow /opt/annoflow-agents
COPY --from=build /opt/annoflow /opt/annoflow
ENV PATH=/opt/annoflow/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONPATH=/opt/annoflow-agents \
    ANNOFLOW_HOME=/home/annoflow/.annoflow
USER annoflow
WORKDIR /home/annoflow
# Store and broker reachable; roles without a store (workers) override it with --no-store.
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 CMD ["annoflow", "health"]
ENTRYPOINT ["annoflow"]
CMD ["--help"]
