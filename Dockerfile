# swarmgate container image: a static binary in an empty (scratch) image.
#
# Two ways to build the same final stage (`runtime`):
#
#   1. Everything in Docker (needs the Rust image and crates.io):
#        DOCKER_BUILDKIT=1 docker build -t swarmgate:latest .
#
#   2. With a prebuilt static binary (what scripts/build-image.sh does on machines that cannot
#      pull a Rust image): it compiles on the host with
#        RUSTFLAGS='-C target-feature=+crt-static' cargo build --release \
#            --bin swarmgate --target x86_64-unknown-linux-gnu
#      stages the binary and the CA bundle in target/image/, then, with BuildKit (buildx),
#        docker build --build-arg BINARY_SOURCE=prebuilt --target runtime -t swarmgate:latest .
#      (BuildKit builds only the stages the target needs: the Rust image is never pulled.)
#      The legacy builder builds every stage before the target, so without buildx the script
#      feeds it the `prebuilt` stage followed by this file's `runtime` stage, verbatim (from the
#      `FROM scratch AS runtime` line to the end).
#
# Running it: swarmgate reads /etc/swarmgate/swarmgate.yaml when present (mount your config
# there), else its built-in config (Docker discovery on the `kuscia-exchange-cluster` network,
# replicas' port 1080 over https without verification, proxy on 8080, admin on 9901). Docker
# discovery needs the engine socket: mount it read-only and, because the image runs as
# 65534:65534, give the process the socket's group:
#   docker run -d --name swarmgate --network kuscia-exchange-cluster -p 8080:8080 \
#     -v /var/run/docker.sock:/var/run/docker.sock:ro \
#     --group-add "$(stat -c %g /var/run/docker.sock)" swarmgate:latest
# (Read-only mounting does not make the API read-only: socket access is root-equivalent on the
# host, whatever the user inside the container.)

# "builder" (compile here) or "prebuilt" (take target/image/ from the build context).
ARG BINARY_SOURCE=builder
# Must have glibc >= 2.34 (bookworm: 2.36): from 2.34 on, the `files` and `dns` NSS modules are
# part of libc itself, so a static binary resolves names (Docker's embedded DNS via the
# /etc/resolv.conf Docker mounts, /etc/hosts) in an image without libnss_*.so. With an older
# glibc, hostnames in `servers:` would not resolve in the scratch image.
ARG RUST_IMAGE=rust:1-bookworm

FROM ${RUST_IMAGE} AS builder
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY .cargo ./.cargo
COPY src ./src
COPY config ./config
RUN RUSTFLAGS='-C target-feature=+crt-static' \
        cargo build --release --locked --bin swarmgate --target x86_64-unknown-linux-gnu \
    && mkdir -p /out/etc/ssl/certs /out-state/var/lib/swarmgate \
    && cp target/x86_64-unknown-linux-gnu/release/swarmgate /out/swarmgate \
    && cp /etc/ssl/certs/ca-certificates.crt /out/etc/ssl/certs/ca-certificates.crt

# Same layout as /out and /out-state above, prepared by scripts/build-image.sh.
FROM scratch AS prebuilt
COPY target/image/ /out/
COPY target/image-state/ /out-state/

FROM ${BINARY_SOURCE} AS binary

# The runtime stage: keep it last (scripts/build-image.sh reuses it from this line on).
FROM scratch AS runtime
# Static binary and the CA bundle (only used for `tls_verify: true` upstreams without tls_ca).
COPY --from=binary /out/ /
# The embedded route tables' state_dir (set `state_dir: /var/lib/swarmgate` and mount a volume
# there to keep them), writable by the image's user.
COPY --from=binary --chown=65534:65534 /out-state/ /
USER 65534:65534
EXPOSE 8080 9901
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/swarmgate", "healthcheck"]
ENTRYPOINT ["/swarmgate"]
