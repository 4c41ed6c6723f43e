# The bot: Python 3.11, the pinned requirements (no torch: dense retrieval comes from an embeddings
# server), a non-root user, and data_dir (SQLite memory, knowledge index, voice cache, imported cards)
# in a volume. docker-compose.yml runs it beside Redis and lmdeploy.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    ANONYMIZED_TELEMETRY=False

WORKDIR /app
COPY requirements.txt requirements-voice.txt ./
RUN pip install -r requirements.txt
# the embedded Japanese voice; leave this out for a smaller image that speaks through vits-simple-api
RUN pip install -r requirements-voice.txt

COPY . .
RUN useradd --create-home --uid 10001 bot \
    && mkdir -p /app/data \
    && chown -R bot:bot /app/data
USER bot

# data_dir = "data" in config.toml, relative to /app/config.toml
VOLUME ["/app/data"]
# [qq] port: OneBot implementations connect here (reverse WebSocket); [metrics] port when enabled
EXPOSE 8080 9464
CMD ["python", "-m", "bot", "run"]
