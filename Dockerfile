# roombook: `docker build -t roombook .` then
#   docker run --init --shm-size=2g -p 8080:8080 -v roombook-data:/data roombook
# One image for every process: the API (`roombook serve`, the default), the event side
# (`roombook worker`) and the nodes of a Ray cluster that run the shard actors (`ray start`):
#   docker run --shm-size=2g roombook ray start --head --block --port=6390 ...
# Ray keeps its object store in /dev/shm: Docker's 64 MB default makes it fall back to disk.
# Stage 1 installs the pinned dependencies (constraints.txt) and the package; stage 2 runs them.
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY constraints.txt pyproject.toml README.md ./
COPY roombook ./roombook
RUN pip install --no-cache-dir -c constraints.txt .

FROM python:3.11-slim-bookworm
# tini as PID 1 reaps the children Ray's processes leave behind and passes signals on
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 roombook \
    && mkdir -p /data \
    && chown roombook /data
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    ROOMBOOK_DATA_DIR=/data \
    RAY_USAGE_STATS_ENABLED=0
USER 10001
WORKDIR /home/roombook
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status != 200)"]
ENTRYPOINT ["tini", "--"]
CMD ["roombook", "serve", "--host", "0.0.0.0", "--port", "8080"]
