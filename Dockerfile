# One image for every role: the API (`hitl serve`), workers (`hitl worker`) and migrations
# (`hitl migrate`); docker-compose.yml picks the role with `command:`.
#
#   docker build -t hitl .
#   docker run -p 8000:8000 -v hitl-data:/data hitl          # API + embedded worker on SQLite
#
# HITL_MIGRATE_ON_START=1 makes the entrypoint run `hitl migrate` before the command (handy for a
# single container on PostgreSQL); compose runs a one-shot `migrate` service instead.
FROM python:3.11-slim

# PYTHONPATH: the source tree stays importable from /app, so `hitl migrate` finds migrations/ and
# alembic.ini beside app/ (they are not part of the installed package).
# HITL_DATABASE_URL: the embedded default when no PostgreSQL URL is given, a SQLite file on the
# writable volume (the working directory belongs to root).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    HITL_DATABASE_URL=sqlite:////data/hitl.db \
    HITL_MIGRATE_ON_START=0

WORKDIR /app

# Dependencies first, from pyproject.toml alone, so code changes do not reinstall them.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

# The build context is an allowlist (.dockerignore): app/, migrations/, alembic.ini, pyproject, README.
COPY . .
RUN pip install --no-deps . \
 && useradd --system --uid 10001 --user-group --home-dir /app --shell /usr/sbin/nologin hitl \
 && mkdir -p /data \
 && chown hitl:hitl /data

USER hitl
VOLUME ["/data"]
EXPOSE 8000

# Liveness of the API process; worker and migrate containers disable it in docker-compose.yml.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

# `hitl migrate` first when asked to (and not already the command), then the command itself, as
# PID 1 via exec so SIGTERM reaches it and workers drain.
ENTRYPOINT ["/bin/sh", "-c", "if [ \"${HITL_MIGRATE_ON_START:-0}\" = 1 ] && [ \"$*\" != 'hitl migrate' ]; then hitl migrate || exit $?; fi; exec \"$@\"", "hitl-entrypoint"]
CMD ["hitl", "serve", "--host", "0.0.0.0", "--port", "8000"]
