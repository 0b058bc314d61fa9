# Multi-stage build: compile the binaries once, ship them on a slim base.
#   docker build -t bourse .
# Needs BuildKit (Docker 23+ by default; DOCKER_BUILDKIT=1 before that).
# The base images are build arguments so the image can also be made from
# local images where no registry is reachable (scripts/docker/local-images):
#   --build-arg BUILD_IMAGE=bourse-local/rust:bookworm
#   --build-arg RUNTIME_IMAGE=bourse-local/debian:bookworm
ARG BUILD_IMAGE=rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${BUILD_IMAGE} AS build
WORKDIR /src
# The sources are bind-mounted, not copied, and cargo keeps its registry and
# target directory in BuildKit cache mounts: a rebuild after a code change
# compiles only our crates, with no placeholder sources to keep in step with
# the manifests. Crates vendored into the context (var/docker/vendor, made by
# scripts/docker/vendor) are used when present, for a build without network;
# otherwise they come from crates.io.
RUN --mount=type=bind,target=/src,rw \
    --mount=type=cache,target=/usr/local/cargo/registry,id=bourse-cargo-registry,sharing=locked \
    --mount=type=cache,target=/src/target,id=bourse-cargo-target,sharing=locked \
    set -eu; \
    if [ -d var/docker/vendor ]; then \
      set -- --offline --config 'source.crates-io.replace-with="vendored"' \
             --config 'source.vendored.directory="var/docker/vendor"'; \
    else \
      set --; \
    fi; \
    cargo build --release --locked "$@" -p bourse-api -p bourse-worker -p bourse-bench; \
    mkdir -p /out; \
    cp target/release/bourse-api target/release/bourse-worker target/release/bourse-bench /out/

FROM ${RUNTIME_IMAGE}
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home /app bourse
WORKDIR /app
COPY --from=build /out/ /usr/local/bin/
USER bourse
ENV APP_ENV=production LOG_FORMAT=json HTTP_ADDR=0.0.0.0:8080 WORKER_HTTP_ADDR=0.0.0.0:9090
EXPOSE 8080 9090
CMD ["bourse-api"]
