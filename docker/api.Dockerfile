# syntax=docker/dockerfile:1
# The image of the hosted API (the catty-api app, docker/fly.api.toml): the one catty binary,
# started through the name catty-api, which runs `catty api`. With CATTY_DATABASE_URL set (a
# Fly secret) it serves many users on 0.0.0.0:8080 behind Fly's proxy, which ends TLS.
# Build context: the repository root, e.g.
#   fly deploy --config docker/fly.api.toml
# tests/image_layout.rs checks that the ENTRYPOINT's name starts the API.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked

FROM debian:bookworm-slim
# ca-certificates: the Machines API's public endpoint and an identity provider over HTTPS.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=builder /src/target/release/catty /usr/local/bin/catty
RUN ln -s catty /usr/local/bin/catty-api && catty version
# Nothing of the API's is kept on its disk: users, tokens and sessions are in PostgreSQL.
ENV XDG_STATE_HOME=/tmp/catty-state CATTY_LOG=info
USER nobody
EXPOSE 8080
ENTRYPOINT ["catty-api", "--provider", "fly"]
