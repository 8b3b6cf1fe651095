# The cost oracle: gRPC server with an SQLite cache on a volume (or PostgreSQL by URL).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    COST_ORACLE_HOST=0.0.0.0 COST_ORACLE_PORT=50051 \
    COST_ORACLE_DB_URL=sqlite:////data/cache.sqlite

WORKDIR /app
# CPU torch by default; build with --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu126 for CUDA.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
RUN pip install "torch==2.13.0" --index-url "${TORCH_INDEX}"
COPY pyproject.toml README.md ./
COPY cost_engine ./cost_engine
COPY contract ./contract
COPY server ./server
COPY client ./client
COPY costoracle ./costoracle
COPY cost_oracle ./cost_oracle
RUN pip install ".[postgres,metrics]"

VOLUME ["/data"]
EXPOSE 50051 9464
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-m", "cost_oracle.client.healthcheck", "--target", "127.0.0.1:50051"]
ENTRYPOINT ["cost-oracle", "serve"]
