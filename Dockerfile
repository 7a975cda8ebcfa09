# syntax=docker/dockerfile:1

# ---- build ---------------------------------------------------------------------------------
FROM rust:1.95-bookworm AS builder
WORKDIR /src
# protoc comes from the protoc-bin-vendored crate (see build.rs): no system protoc needed.
# Every path Cargo.toml or build.rs reads is copied: the manifest names the test and bench
# targets, and build.rs embeds ui/ into the binary. (.ci/image.sh copies exactly these paths
# to an empty folder and builds the server there, in CI.)
COPY Cargo.toml Cargo.lock build.rs ./
COPY proto ./proto
COPY src ./src
COPY ui ./ui
COPY tests/api ./tests/api
COPY benches ./benches
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin authn-keys \
    && cp target/release/authn-keys /usr/local/bin/authn-keys \
    && strip /usr/local/bin/authn-keys

# ---- run -----------------------------------------------------------------------------------
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 authn \
    && useradd --system --uid 10001 --gid authn --home-dir /data --no-create-home authn \
    && mkdir -p /data \
    && chown authn:authn /data
COPY --from=builder /usr/local/bin/authn-keys /usr/local/bin/authn-keys

# The admin key file (and, on SQLite, the database and its .masterkey) live in /data, owned by
# uid 10001 with mode 0600: read the key file through the container, e.g.
#   docker exec <container> cat /data/admin-key.json > admin-key.json   (see docs/docker.md)
# AUTHN_KEYS_EXTERNAL_URL is the issuer that assertions must name in `aud`: set it to the URL
# clients use to reach this container.
ENV AUTHN_KEYS_LISTEN=0.0.0.0:8080 \
    AUTHN_KEYS_ADMIN_KEY_FILE=/data/admin-key.json \
    AUTHN_KEYS_DATABASE_URL=sqlite:///data/authn-keys.db?mode=rwc \
    AUTHN_KEYS_EXTERNAL_URL=http://localhost:8080
VOLUME ["/data"]
WORKDIR /data
USER 10001:10001
EXPOSE 8080
# Ready when the database answers. The image has no curl: bash's /dev/tcp speaks the one
# HTTP/1.0 request (the server closes the connection after answering it).
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=5 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /debug/ready HTTP/1.0\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["authn-keys"]
CMD ["serve"]
