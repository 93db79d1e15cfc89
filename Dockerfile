FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY pgvec ./pgvec
COPY sql ./sql
RUN pip install --no-cache-dir .
EXPOSE 5433
CMD ["pgvec", "serve", "--host", "0.0.0.0", "--data-dir", "/data"]
