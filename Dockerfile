# Multi-stage build: compile in the Rust image, run in a small Debian image as a non-root user.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY .cargo .cargo
COPY src src
COPY migrations migrations
RUN cargo build --release --locked --bin weave-trace-server

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home weave
COPY --from=build /src/target/release/weave-trace-server /usr/local/bin/weave-trace-server
USER weave
ENV BIND=0.0.0.0:6345
EXPOSE 6345
HEALTHCHECK --interval=10s --timeout=3s CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/6345"]
ENTRYPOINT ["weave-trace-server"]
CMD ["serve"]
