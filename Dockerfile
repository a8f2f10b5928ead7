# chaos-runner image, for machines with a container daemon. It matches what tests/image/build
# produces without one: a static glibc binary at /usr/local/bin/chaos-runner (upstream's path),
# /etc/passwd and /etc/group with nobody (65534), nothing else; user 65534:65534; the binary is the
# ENTRYPOINT with no CMD, since the chaos-operator starts the runner with no arguments.
# Builds for the architecture it runs on (x86_64 or aarch64): `docker buildx build --platform
# linux/amd64,linux/arm64 .` builds both (the other one's builder stage runs under emulation).

FROM rust:1.95 AS builder
WORKDIR /src
COPY . .
# crt-static with an explicit --target links the runner statically (build scripts stay dynamic).
RUN target="$(uname -m)-unknown-linux-gnu" \
 && RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release --locked --bin chaos-runner --target "$target" \
 && install -D -m 0755 "target/$target/release/chaos-runner" /rootfs/usr/local/bin/chaos-runner \
 && mkdir -p /rootfs/etc \
 && printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' \
      'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' > /rootfs/etc/passwd \
 && printf '%s\n' 'root:x:0:' 'nobody:x:65534:' > /rootfs/etc/group

FROM scratch
COPY --from=builder /rootfs/ /
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
USER 65534:65534
ENTRYPOINT ["/usr/local/bin/chaos-runner"]
