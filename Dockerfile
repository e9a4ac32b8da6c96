# One multi-stage build for every binary of the workspace; the BINARY build
# argument picks which one the image runs:
#   docker build --build-arg BINARY=gateway -t checkout/gateway .
# (docker-compose.yaml builds gateway, checkout-service and stock-service.)

FROM rust:1.95-bookworm AS build
ARG BINARY=gateway
WORKDIR /src
COPY . .
# protox compiles the .proto in Rust: no protoc needed.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin "${BINARY}" \
    && cp "target/release/${BINARY}" /usr/local/bin/service

FROM debian:bookworm-slim
# curl serves the compose healthchecks; ca-certificates lets amqps/https work.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /data --create-home app
COPY --from=build /usr/local/bin/service /usr/local/bin/service
USER app
WORKDIR /data
ENTRYPOINT ["/usr/local/bin/service"]
