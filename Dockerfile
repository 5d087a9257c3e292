# syntax=docker/dockerfile:1
# Aegis in a container. State (database, E2EE store, config) lives on the /data volume:
#
#   docker build -t aegis .
#   docker volume create aegis-data        # then put aegis.yaml in it (see config/example.yaml,
#                                          # with store_path /data/store and the database in /data)
#   docker run -d --name aegis -v aegis-data:/data -e AEGIS_MATRIX__PASSWORD=... aegis
#   docker run --rm -v aegis-data:/data aegis check-config -c /data/aegis.yaml
#
# The HTTP server (health, metrics, calendar, early-warning intake) listens on http.listen;
# in a container set it to 0.0.0.0:8080 (or AEGIS_HTTP__LISTEN=0.0.0.0:8080) to publish it.
# docker-compose.yml runs it with Synapse and PostgreSQL; docs/operations.md has the rest.

# --- build: wheels for Aegis and all its dependencies ------------------------------------
FROM python:3.11-slim AS build

WORKDIR /src
# .dockerignore lets through only what the wheel is built from.
COPY . .
# No compiler needed: the native dependencies (vodozemac for E2EE, pydantic-core, asyncpg...)
# come as manylinux binary wheels; the only sdists left are pure Python.
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# --- runtime: only the installed wheels; no source tree -----------------------------------
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# The wheels are bind-mounted rather than copied so they never become an image layer.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links /wheels aegis

# /data is created and owned by aegis before VOLUME, so a fresh named volume inherits
# that ownership and the non-root bot can write its database and key store.
RUN useradd --system --user-group --uid 10001 --home-dir /data --shell /usr/sbin/nologin aegis \
    && mkdir /data \
    && chown aegis:aegis /data
VOLUME /data

USER aegis
# Relative paths in the config resolve from here, so the defaults data/store and
# sqlite+aiosqlite:///data/aegis.db also land on the volume.
WORKDIR /

EXPOSE 8080
# Liveness from inside the container: loopback reaches http.listen 0.0.0.0:8080 as well as
# 127.0.0.1:8080. The slim image has no curl; the image's Python asks instead.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]

# The bot stops cleanly on SIGTERM (docker stop) and exits 0.
ENTRYPOINT ["aegis"]
CMD ["run", "-c", "/data/aegis.yaml"]
