# Multi-stage build: compile in the Rust image, run in a small Debian image as a non-root user.
# Tags are pinned; on a machine without Docker Hub, scripts/docker-images builds them locally.
FROM rust:1.95-bookworm AS build
WORKDIR /src
# Dependencies first, in a layer of their own: it is rebuilt only when the manifests change.
COPY Cargo.toml Cargo.lock build.rs ./
COPY bench/Cargo.toml bench/Cargo.toml
RUN mkdir -p src bench/src migrations \
    && echo 'fn main() {}' > src/main.rs && echo '' > src/lib.rs && echo 'fn main() {}' > bench/src/main.rs \
    && cargo build --release --locked --bin weave-trace-server \
    && rm -rf src bench/src target/release/.fingerprint/weave-trace-server-* target/release/deps/weave_trace_server-* \
              target/release/deps/libweave_trace_server-*
COPY src src
COPY migrations migrations
COPY ui ui
COPY bench/src bench/src
RUN cargo build --release --locked --bin weave-trace-server

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --no-create-home weave
COPY --from=build /src/target/release/weave-trace-server /usr/local/bin/weave-trace-server
USER weave
ENV BIND=0.0.0.0:6345
EXPOSE 6345
# The server's own /health (200 only when the database answers), without curl in the image.
HEALTHCHECK --interval=5s --timeout=4s --start-period=10s CMD ["weave-trace-server", "healthcheck", "--address", "127.0.0.1:6345"]
ENTRYPOINT ["weave-trace-server"]
CMD ["serve"]
