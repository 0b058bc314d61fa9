# The build image made from Debian's packages (BUILD_IMAGE for the
# Dockerfile where no registry is reachable): Debian's rustc-web/cargo-web
# (a recent Rust, from bookworm-security), a C compiler for ring, and the
# same CARGO_HOME as the official rust image so the Dockerfile's cache
# mounts fit both.
FROM bourse-local/debian:bookworm
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      rustc-web cargo-web gcc libc6-dev ca-certificates \
 && rm -rf /var/lib/apt/lists/*
ENV CARGO_HOME=/usr/local/cargo
ENV PATH=/usr/local/cargo/bin:$PATH
