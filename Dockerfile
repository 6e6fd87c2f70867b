# syntax=docker/dockerfile:1
# The image of one service, chosen by two build arguments:
#   SERVICE  its module directory: api-gateway, command-service, query-service or event-consumers
#   PORT     the port it listens on (8080, 8081, 8082, 8083: each service's default address)
# Build from the repository root, so that the modules the service replaces (shared/, db/, testenv/,
# examples/) are in the context; docker-compose.yml passes both arguments for each service:
#   docker build --build-arg SERVICE=command-service --build-arg PORT=8081 -t upi/command-service .

FROM golang:1.26 AS build
ARG SERVICE
ARG PORT
# Without them the build would fail later with a puzzling COPY error, or probe the wrong port.
RUN test -n "$SERVICE" && test -n "$PORT" \
    || { echo 'set --build-arg SERVICE=<service directory> and --build-arg PORT=<its port>' >&2; exit 1; }
WORKDIR /src
# The workspace (go.work) is not copied: the module builds alone through its replace directives.
ENV GOWORK=off CGO_ENABLED=0

# Module files first, so the download step is skipped until a go.mod or go.sum changes. The module cache
# is a BuildKit cache mount, shared by the four service images, so each module is fetched once.
COPY shared/go.mod shared/go.sum shared/
COPY db/go.mod db/go.sum db/
# testenv and the example feed subscriber are test-only dependencies (the latter of event-consumers), but
# the module graph needs their go.mod files.
COPY testenv/go.mod testenv/go.sum testenv/
COPY examples/feed-subscriber/go.mod examples/feed-subscriber/go.sum examples/feed-subscriber/
COPY ${SERVICE}/go.mod ${SERVICE}/go.sum ${SERVICE}/
RUN --mount=type=cache,target=/go/pkg/mod \
    cd "$SERVICE" && go mod download

COPY shared/ shared/
COPY db/ db/
COPY ${SERVICE}/ ${SERVICE}/
COPY deploy/healthcheck/main.go deploy/healthcheck/main.go
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    cd "$SERVICE" && go build -trimpath -ldflags='-s -w' -o /out/service . \
    && cd /src && go build -trimpath -ldflags="-s -w -X main.defaultURL=http://127.0.0.1:${PORT}/readyz" \
        -o /out/healthcheck deploy/healthcheck/main.go

FROM gcr.io/distroless/static-debian12:nonroot
ARG SERVICE
ARG PORT
LABEL org.opencontainers.image.title="upi/${SERVICE}"
# One entry point name for every service: ENTRYPOINT cannot take a build argument.
COPY --from=build /out/service /usr/local/bin/service
# Distroless has no shell or curl: this probe is what the container healthcheck runs. It was built to
# probe http://127.0.0.1:${PORT}/readyz.
COPY --from=build /out/healthcheck /usr/local/bin/healthcheck
USER nonroot:nonroot
EXPOSE ${PORT}
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["/usr/local/bin/healthcheck"]
ENTRYPOINT ["/usr/local/bin/service"]
