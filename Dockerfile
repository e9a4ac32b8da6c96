# One multi-stage build for every binary of the workspace; the BINARY build
# argument picks which one the image runs:
#   docker build --build-arg BINARY=gateway -t checkout/gateway .
# (docker-compose.yaml builds gateway, checkout-service and stock-service.)
#
# Plain Dockerfile syntax, no `RUN --mount`: it builds the same with BuildKit
# and with the classic builder (docker-compose 1.29 without
# COMPOSE_DOCKER_CLI_BUILD), and needs no `# syntax=` frontend image from a
# registry. Caching comes from the layers instead:
# 1. `plan` keeps what decides the dependencies (the manifests, Cargo.lock)
#    and puts an empty target where each crate's sources go;
# 2. `build` compiles the dependencies against that plan. Its layer changes
#    only when a manifest or the lock file does: an edit to a source file
#    recompiles the workspace's own crates, never the ~250 dependencies, and
#    README.md, docs/, web/ and the tests are not in the build context at
#    all (.dockerignore);
# 3. then the real sources, and the three services in one `cargo build` that
#    every image shares.
# (cargo-chef does steps 1–2 as a tool; it would be one more crate to compile
# in every cold build for what a dozen lines of shell do here.)

FROM rust:1.95-bookworm AS plan
WORKDIR /plan
COPY . /src
# The manifests and the lock file as they are; every target root a manifest
# builds (src/lib.rs, src/main.rs, build.rs) empty, or an empty `main`. A
# member whose sources are not in the context (e2e, the end-to-end tests'
# harness, a library: see .dockerignore) gets an empty library, and keeps it
# in `build`.
RUN cd /src \
    && find . -name Cargo.toml -not -path './target/*' | while read -r manifest; do \
         crate=$(dirname "$manifest"); mkdir -p "/plan/$crate/src"; \
         cp "$manifest" "/plan/$manifest"; \
         if [ "$crate" != . ] && [ ! -d "$crate/src" ]; then : > "/plan/$crate/src/lib.rs"; fi; \
         [ ! -f "$crate/src/lib.rs" ] || : > "/plan/$crate/src/lib.rs"; \
         for main in src/main.rs build.rs; do \
           [ ! -f "$crate/$main" ] || echo 'fn main() {}' > "/plan/$crate/$main"; \
         done; \
       done \
    && cp Cargo.lock /plan/

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY --from=plan /plan/ ./
# protox compiles the .proto in Rust: no protoc needed.
RUN cargo build --release --locked --bin gateway --bin checkout-service --bin stock-service
COPY . .
# The real sources are older than the empty ones just built (COPY keeps their
# modification times): touch them so cargo rebuilds every workspace crate.
RUN find . -path ./target -prune -o -type f -exec touch {} + \
    && cargo build --release --locked --bin gateway --bin checkout-service --bin stock-service
# Any other binary of the workspace (e.g. BINARY=checkout, the CLI) on top.
ARG BINARY=gateway
RUN [ -x "target/release/${BINARY}" ] || cargo build --release --locked --bin "${BINARY}"; \
    cp "target/release/${BINARY}" /usr/local/bin/service

FROM debian:bookworm-slim
# curl serves the compose healthchecks; ca-certificates lets amqps/https work.
# The service runs as an unprivileged user with a fixed uid (10001, outside
# the system range, so volumes can be prepared for it); /data is its home
# and where stock-service keeps its SQLite file.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 10001 --user-group --no-log-init --home-dir /data --create-home --shell /usr/sbin/nologin app
COPY --from=build /usr/local/bin/service /usr/local/bin/service
USER app
WORKDIR /data
ENTRYPOINT ["/usr/local/bin/service"]
