# roombook: `docker build -t roombook .` then `docker run -p 8080:8080 roombook`
# Stage 1 builds the wheel and its dependencies; stage 2 runs them as a non-root user.
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY pyproject.toml README.md ./
COPY roombook ./roombook
RUN pip install --no-cache-dir --upgrade pip && pip install --no-cache-dir .

FROM python:3.11-slim-bookworm
RUN useradd --create-home --uid 10001 roombook && mkdir -p /data && chown roombook /data
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    ROOMBOOK_DATA_DIR=/data \
    RAY_USAGE_STATS_ENABLED=0
USER roombook
WORKDIR /home/roombook
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz').status != 200)"
ENTRYPOINT ["roombook"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
