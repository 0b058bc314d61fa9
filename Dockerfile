# Multi-stage build: compile both binaries once, ship them on a slim base.
#   docker build -t bourse .
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# Dependencies first, so code changes do not rebuild them.
COPY Cargo.toml Cargo.lock ./
COPY api/Cargo.toml api/Cargo.toml
COPY worker/Cargo.toml worker/Cargo.toml
COPY shared/Cargo.toml shared/Cargo.toml
COPY queue/Cargo.toml queue/Cargo.toml
COPY tests/Cargo.toml tests/Cargo.toml
RUN for c in api worker queue shared tests; do mkdir -p $c/src && echo "" > $c/src/lib.rs; done \
 && echo "fn main() {}" > api/src/main.rs && echo "fn main() {}" > worker/src/main.rs \
 && mkdir -p worker/src/bin && echo "fn main() {}" > worker/src/bin/bench.rs \
 && mkdir -p migrations && cargo build --release --locked -p bourse-api -p bourse-worker \
 && rm -rf api/src worker/src queue/src shared/src tests/src
COPY . .
# Touch the sources so cargo rebuilds our crates over the placeholders.
RUN find api worker queue shared tests -name '*.rs' -exec touch {} + \
 && cargo build --release --locked -p bourse-api -p bourse-worker

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home /app bourse
WORKDIR /app
COPY --from=build /src/target/release/bourse-api /src/target/release/bourse-worker /src/target/release/bourse-bench /usr/local/bin/
USER bourse
ENV APP_ENV=production LOG_FORMAT=json HTTP_ADDR=0.0.0.0:8080 WORKER_HTTP_ADDR=0.0.0.0:9090
EXPOSE 8080 9090
CMD ["bourse-api"]
