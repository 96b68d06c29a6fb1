# The Fabro runs bot: one process, Socket Mode or HTTP (docs/deployment.md).
# The base image is pinned by exact tag and every package by constraints.txt, so a rebuild
# installs what CI tested.
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A font for the labels of workflow graphs drawn as images (the slim image has none). Not pinned
# to a version: Debian's mirrors keep only the current one, so a pin would break every build at
# the next point release; the release itself is fixed by the base image's exact tag.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md LICENSE constraints.txt ./
COPY bot ./bot
RUN PIP_CONSTRAINT=constraints.txt pip install . \
    && useradd --create-home --uid 10001 fabro \
    && mkdir /data && chown 10001 /data

USER 10001
# The SQLite default lives on a volume so alert state survives a new container.
# HEALTH_PORT serves /healthz, /readyz and /metrics in either mode (HTTP mode also serves
# them on PORT), so the same probe works for Socket Mode and HTTP mode.
ENV HOST=0.0.0.0 \
    PORT=3000 \
    HEALTH_PORT=8080 \
    DATABASE_URL=sqlite:////data/fabro-slack-bot.db
VOLUME ["/data"]
EXPOSE 3000 8080

HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('HEALTH_PORT', '8080'), timeout=4)"]

CMD ["fabro-slack-bot", "run"]
