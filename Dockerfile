# One image for every modelgate service; the command picks the service (`modelgate <service>`).
FROM node:20-bookworm-slim AS dashboard
WORKDIR /src
COPY dashboard/package.json dashboard/package-lock.json dashboard/
RUN cd dashboard && npm ci --no-audit --no-fund
COPY dashboard dashboard
RUN mkdir -p management_api && cd dashboard && npm run build

FROM python:3.11-slim-bookworm
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY schemas schemas
COPY ingress ingress
COPY predictor predictor
COPY metrics_consumer metrics_consumer
COPY management_api management_api
COPY infra infra
COPY modelgate modelgate
COPY bench bench
COPY --from=dashboard /src/management_api/static management_api/static
RUN pip install . && useradd --create-home modelgate && mkdir -p /data/models && chown -R modelgate /data
USER modelgate
ENV MODELGATE_MODEL_STORE=/data/models
ENTRYPOINT ["modelgate"]
