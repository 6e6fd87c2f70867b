# The image of one service, chosen by two build arguments:
#   SERVICE  its module directory: api-gateway, command-service, query-service or event-consumers
#   PORT     the port it listens on (8080, 8081, 8082, 8083: each service's default address)
# Build from the repository root, so that the modules the service replaces (shared/, db/, testenv/,
# examples/) are in the context; docker-compose.yml passes both arguments for each service:
#   docker build --build-arg SERVICE=command-service --build-arg PORT=8081 -t upi/command-service .
#
# The build stage takes no argument: it builds all four binaries at once, so that the four images share
# it (built once, then taken from the layer cache) and the dependencies are fetched and compiled once. It
# needs no BuildKit feature: the classic builder, BuildKit and both Compose versions build it alike.

FROM golang:1.26 AS build
WORKDIR /src
# The workspace (go.work) is not copied: each module builds alone through its replace directives.
ENV GOWORK=off CGO_ENABLED=0

# Module files first, so the download step is skipped until a go.mod or go.sum changes. testenv and the
# example feed subscriber are test-only dependencies (the latter of event-consumers), but the module
# graph needs their go.mod files.
COPY shared/go.mod shared/go.sum shared/
COPY db/go.mod db/go.sum db/
COPY testenv/go.mod testenv/go.sum testenv/
COPY examples/feed-subscriber/go.mod examples/feed-subscriber/go.sum examples/feed-subscriber/
COPY api-gateway/go.mod api-gateway/go.sum api-gateway/
COPY command-service/go.mod command-service/go.sum command-service/
COPY query-service/go.mod query-service/go.sum query-service/
COPY event-consumers/go.mod event-consumers/go.sum event-consumers/
RUN for s in api-gateway command-service query-service event-consumers; do (cd "$s" && go mod download) || exit 1; done

COPY shared/ shared/
COPY db/ db/
COPY api-gateway/ api-gateway/
COPY command-service/ command-service/
COPY query-service/ query-service/
COPY event-consumers/ event-consumers/
COPY deploy/healthcheck/main.go deploy/healthcheck/main.go
# The healthcheck probe is built once per port, to probe http://127.0.0.1:PORT/readyz by default.
RUN for s in api-gateway command-service query-service event-consumers; do \
      (cd "$s" && go build -trimpath -ldflags='-s -w' -o "/out/$s" .) || exit 1; \
    done \
    && for p in 8080 8081 8082 8083; do \
      go build -trimpath -ldflags="-s -w -X main.defaultURL=http://127.0.0.1:$p/readyz" \
        -o "/out/healthcheck-$p" deploy/healthcheck/main.go || exit 1; \
    done

FROM gcr.io/distroless/static-debian12:nonroot
ARG SERVICE
ARG PORT
LABEL org.opencontainers.image.title="upi/${SERVICE}"
# One entry point name for every service: ENTRYPOINT cannot take a build argument. Without SERVICE and
# PORT these COPY lines fail (set --build-arg SERVICE=<service directory> and --build-arg PORT=<its port>).
COPY --from=build /out/${SERVICE} /usr/local/bin/service
# Distroless has no shell or curl: this probe is what the container healthcheck runs.
COPY --from=build /out/healthcheck-${PORT} /usr/local/bin/healthcheck
USER nonroot:nonroot
EXPOSE ${PORT}
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["/usr/local/bin/healthcheck"]
ENTRYPOINT ["/usr/local/bin/service"]
