FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# pyproject.toml names README.md as the package's long description, so the build needs it.
COPY pyproject.toml README.md ./
COPY src ./src
# The service runs as uid 10001, not root. Without DATABASE_URL it keeps its SQLite file
# (the default sqlite:///saga.db, relative to the working directory) in /data, which that
# user owns; mount a volume there to keep it.
RUN pip install . \
    && useradd --create-home --uid 10001 saga \
    && mkdir /data \
    && chown saga:saga /data

USER 10001
WORKDIR /data
VOLUME /data
EXPOSE 3101
CMD ["saga", "serve", "--host", "0.0.0.0"]
