# syntax=docker/dockerfile:1
# alicom-emu container image: `docker build -t alicom-emu .` (BuildKit, the default since Docker 23).

# ---- build ----------------------------------------------------------------------------------
# Edition 2024 and let-chains need Rust >= 1.88; rust:1 is the newest stable. The full image (not
# -slim) carries the C toolchain that ring and aws-lc-sys (media crypto) build with.
FROM rust:1-bookworm AS builder
WORKDIR /src
# Only what the build reads: manifests, lockfile, sources and the embedded default config
# (bench/ is a workspace member, so its manifest must be there; it is not built).
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
COPY bench ./bench
COPY src ./src
COPY fixtures ./fixtures
# The registry and target caches persist between builds, so a source change recompiles only
# the workspace crates. The binary is copied out because cache mounts are not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p alicom-emu \
    && cp target/release/alicom-emu /usr/local/bin/alicom-emu

# ---- runtime --------------------------------------------------------------------------------
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /data --create-home alicom
COPY --from=builder /usr/local/bin/alicom-emu /usr/local/bin/alicom-emu
USER alicom
WORKDIR /data
# Listen on every interface of the container; URLs handed to clients still say 127.0.0.1
# unless ALICOM_EMU_SERVER__PUBLIC_HOST is set.
ENV ALICOM_EMU_SERVER__BIND=0.0.0.0
#      POP   admin MQTT/ws MQTT/tcp MNS   POP/TLS MNS/TLS TURN     media
EXPOSE 18080 18090 18083   11883    18081 18443   18444   3478/udp 40000/udp
HEALTHCHECK --interval=5s --timeout=3s --start-period=2s --retries=3 \
    CMD ["alicom-emu", "health", "--url", "http://127.0.0.1:18090/health"]
# The binary handles SIGTERM itself (graceful shutdown), so it can run as PID 1.
ENTRYPOINT ["alicom-emu"]
