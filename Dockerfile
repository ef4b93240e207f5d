# Croupier gateway: runs `croupier serve` against external PostgreSQL and Redis
# (set DATABASE_URL and REDIS_URL; the embedded servers are not in this image).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway gateway
COPY providers providers
COPY wallet wallet
COPY rng rng
# gateway/openapi/ links to the OpenAPI documents here; the wheel takes their content.
COPY docs/openapi docs/openapi
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 croupier
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY config /app/config
WORKDIR /app
USER croupier
ENV CROUPIER_HOST=0.0.0.0 CROUPIER_PORT=8080 PYTHONUNBUFFERED=1
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/livez', timeout=2).status == 200 else 1)"]
CMD ["croupier", "serve", "--config", "/app/config/croupier.toml"]
