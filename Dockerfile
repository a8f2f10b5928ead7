# chaos-runner image: a static musl binary on a minimal base, run as uid 65534 like the upstream
# image, started by the operator with no args and no command.
# No container engine runs on the development machine, so this file is not built by the test
# command; it is kept deliberately simple (x86_64 only; set RUST_TARGET for another musl target).

FROM rust:1.95 AS builder
ARG RUST_TARGET=x86_64-unknown-linux-musl
# ring (TLS) compiles C code: musl-gcc comes from musl-tools.
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# rust-toolchain.toml pins the toolchain: add the target to that one.
RUN rustup target add "${RUST_TARGET}" \
 && cargo build --release --locked --target "${RUST_TARGET}" --bin chaos-runner \
 && cp "target/${RUST_TARGET}/release/chaos-runner" /chaos-runner

FROM gcr.io/distroless/static:nonroot
COPY --from=builder /chaos-runner /chaos-runner
USER 65534:65534
ENTRYPOINT ["/chaos-runner"]
