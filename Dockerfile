# Quiver's runtime image: the `quiver` binary on a small Debian, as a non-root user, serving the
# repository mounted at /repo.
#
#   cargo build --release -p quiver-cli
#   docker build -t quiver .                       # copies target/release/quiver
#   docker run -p 6566:6566 -v "$PWD/my-repo:/repo" quiver
#
# The binary is built outside the image (with the workspace's own toolchain and target
# directory, so a rebuild is incremental) and copied in: QUIVER_BIN names it, relative to the
# build context. BASE is the base image: any glibc Debian/Ubuntu of bookworm's age or newer;
# where no registry is reachable, import one built with debootstrap (ci/docker-test.sh does).
#
# Settings come from the mounted repository's quiver.yaml, and from the environment:
#   QUIVER__REGISTRY=postgresql://...   the metadata store (default: /repo/.quiver/registry.db)
#   QUIVER__ONLINE_STORE=redis://...    the online store (default: quiver.yaml's, or embedded)
#   QUIVER__TRACKING__MLFLOW=http://... MLflow mirroring
#   QUIVER_SERVER_TOKEN=...             the bearer token of write and admin endpoints
# Other commands run the same way: `docker run -v ...:/repo quiver materialize 2025-01-01 now`.
ARG BASE=debian:bookworm-slim
FROM ${BASE}

ARG QUIVER_BIN=target/release/quiver

# A fixed uid, so that a mounted repository can be made writable for it (`chown 10001`).
RUN (getent group quiver || groupadd --system --gid 10001 quiver) >/dev/null \
    && useradd --system --uid 10001 --gid quiver --home-dir /repo --no-create-home \
        --shell /usr/sbin/nologin quiver \
    && mkdir -p /repo \
    && chown quiver:quiver /repo

COPY ${QUIVER_BIN} /usr/local/bin/quiver

# `quiver serve` reads its address from QUIVER_HOST and QUIVER_PORT, and the health check
# below the port: change the port with `-e QUIVER_PORT=...`, not with a flag.
ENV QUIVER_REPO=/repo QUIVER_HOST=0.0.0.0 QUIVER_PORT=6566
WORKDIR /repo
USER quiver
EXPOSE 6566

# GET /health with no tool but bash: the image needs no curl.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${QUIVER_PORT:-6566} && printf 'GET /health HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]

ENTRYPOINT ["quiver"]
CMD ["serve"]
