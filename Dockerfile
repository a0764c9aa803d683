# refnet-jobs-runner (and the refnet-jobs CLI) in a small image.
#   docker build -t refnet-jobs .        (--build-arg PG_MAJOR=16 to match an older server)
#   docker run --rm -e DATABASE_URL=postgres://user:pw@db/refnet -p 9187:9187 refnet-jobs
# The runner needs DATABASE_URL in a container: without it, it would try to
# start a throwaway PostgreSQL, which this image does not contain.

FROM rust:1.94-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p refnet-jobs-runner -p refnet-jobs-cli \
 && strip target/release/refnet-jobs-runner target/release/refnet-jobs

FROM debian:bookworm-slim
# pg_dump refuses a server newer than itself: install the client of the
# server's major version (or newer) from the PostgreSQL project's repository.
ARG PG_MAJOR=17
# ca-certificates: https webhooks; postgresql-client: pg_dump / pg_restore for backups.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates postgresql-common \
 && /usr/share/postgresql-common/pgdg/apt.postgresql.org.sh -y \
 && apt-get install -y --no-install-recommends postgresql-client-${PG_MAJOR} \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/refnet-jobs --create-home refnet \
 && mkdir -p /var/lib/refnet-jobs/data \
 && chown refnet:refnet /var/lib/refnet-jobs/data
COPY --from=build /src/target/release/refnet-jobs-runner /src/target/release/refnet-jobs /usr/local/bin/
COPY --from=build /src/migrations /usr/share/refnet-jobs/migrations
# The config's relative paths (data/reports, data/backups, logs) are taken from
# its directory: here the refnet user's own, so the tasks can write there.
COPY --from=build --chown=refnet:refnet /src/refnet-jobs.toml /var/lib/refnet-jobs/refnet-jobs.toml
USER refnet
WORKDIR /var/lib/refnet-jobs
VOLUME /var/lib/refnet-jobs/data
ENV REFNET_JOBS_CONFIG=/var/lib/refnet-jobs/refnet-jobs.toml \
    REFNET_JOBS_LISTEN=0.0.0.0:9187 \
    REFNET_JOBS_LOG_JSON=1
EXPOSE 9187
# bash (not sh) for /dev/tcp: no curl needed in the image.
HEALTHCHECK --interval=30s --timeout=5s CMD ["/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9187 && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && grep -q '200 OK' <&3"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/refnet-jobs-runner"]
