# syntax=docker/dockerfile:1
# The image of the gateway (the catty-gateway app, docker/fly.gateway.toml): the one catty
# binary, started through the name catty-gateway, which runs `catty gateway`. It is the only
# process that holds the providers' keys (Fly secrets); session machines reach it over Fly's
# private network only (Flycast: http://catty-gateway.flycast), never from the Internet.
# Build context: the repository root, e.g.
#   fly deploy --config docker/fly.gateway.toml
# tests/image_layout.rs checks that the ENTRYPOINT's name starts the gateway.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked

FROM debian:bookworm-slim
# ca-certificates: the providers' APIs over HTTPS.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=builder /src/target/release/catty /usr/local/bin/catty
RUN ln -s catty /usr/local/bin/catty-gateway && catty version
# Nothing is kept on its disk: usage, quota and holds are in the hosted API's PostgreSQL.
ENV CATTY_LOG=info
USER nobody
EXPOSE 8080
ENTRYPOINT ["catty-gateway"]
