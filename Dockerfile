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

# Base images carry exact tags; docs/operations.md ("Pinning the images") says how to add
# their digests (python:3.11.14-slim-bookworm@sha256:...), which cannot be looked up here.

# --- build: the wheel of Aegis itself ---------------------------------------------------
FROM python:3.11.14-slim-bookworm AS build

WORKDIR /src
# .dockerignore lets through only what the wheel is built from.
COPY . .
# Only Aegis: its dependencies come from requirements.lock below, checked against hashes.
# Its build backend (setuptools) comes from requirements-build.lock, hashed too, and builds
# the wheel in place (--no-build-isolation) instead of one pip would fetch unchecked.
RUN pip install --no-cache-dir --require-hashes --no-deps -r requirements-build.lock \
    && pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels .

# --- runtime: the locked dependencies, then the wheel; no source tree --------------------
FROM python:3.11.14-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# Every dependency, at the version and with the hashes of requirements.lock (`make lock`):
# a file that does not match its hash stops the build. All are binary wheels (manylinux,
# x86_64 and aarch64) except atomicwrites, pure Python, which is built with the image's own
# setuptools (--no-build-isolation) rather than one downloaded unchecked. Then Aegis, with
# --no-deps, so nothing outside the lock is ever resolved. The lock and the wheel are
# bind-mounted rather than copied, so neither becomes an image layer.
RUN --mount=type=bind,source=requirements.lock,target=/tmp/requirements.lock \
    --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --require-hashes --no-deps --no-build-isolation \
        -r /tmp/requirements.lock \
    && pip install --no-cache-dir --no-index --no-deps /wheels/aegis-*.whl

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
