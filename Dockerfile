# hashgate in a container: built in a Rust image, run from a slim one as a non-root user.
#   docker build --build-arg HASHGATE_GIT_COMMIT=$(git rev-parse --short=12 HEAD) -t hashgate .
#   docker run -v $PWD/config/hashgate.toml:/etc/hashgate/hashgate.toml:ro -p 3333:3333 hashgate
# contrib/compose/ runs it with Prometheus and Grafana.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# .git is not copied (.dockerignore): the commit comes in as a build argument instead.
ARG HASHGATE_GIT_COMMIT=unknown
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    HASHGATE_GIT_COMMIT=$HASHGATE_GIT_COMMIT cargo build --release --locked --bin hashgate \
 && install -m 0755 target/release/hashgate /usr/local/bin/hashgate

FROM debian:bookworm-slim
COPY --from=build /usr/local/bin/hashgate /usr/local/bin/hashgate
COPY config/hashgate.toml /etc/hashgate/hashgate.toml
RUN useradd --system --no-create-home --uid 10001 hashgate
USER hashgate
# Miners (proxy.listen) and the status server (http.listen). The status server defaults to
# loopback; inside a container it has to listen on all interfaces to be scraped, so publish
# 9184 only on a management network (the API is read-only and unauthenticated).
ENV HASHGATE_CONFIG=/etc/hashgate/hashgate.toml \
    HASHGATE_HTTP_LISTEN=0.0.0.0:9184
EXPOSE 3333 9184
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/hashgate"]
CMD ["run"]
