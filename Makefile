# The UPI event-sourced payments backend. `make` lists the targets.
SHELL := /bin/bash
MODULES := shared testenv db command-service query-service event-consumers api-gateway examples/feed-subscriber
SERVICES := api-gateway command-service query-service event-consumers

DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/upi?sslmode=disable
REDIS_URL ?= redis://127.0.0.1:6379/0
# make's targets are a developer's: development mode (the development keys; docs/deployment.md) unless set.
UPI_ENV ?= development
export DATABASE_URL REDIS_URL UPI_ENV

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

.PHONY: build
build: ## Build the four binaries into bin/
	@mkdir -p bin
	@for s in $(SERVICES); do echo "build bin/$$s"; CGO_ENABLED=0 go build -trimpath -o bin/$$s ./$$s || exit 1; done

.PHONY: migrate
migrate: ## Apply db/migrations to DATABASE_URL (creating the database if missing)
	go run ./command-service migrate

.PHONY: run
run: migrate build ## Migrate, build, and run all four services in the foreground (Ctrl-C stops them)
	@scripts/run-local.sh

.PHONY: db-logins
db-logins: ## Give each service its own login (COMMAND_/CONSUMERS_/QUERY_DB_PASSWORD; docs/deployment.md)
	@scripts/db-logins.sh

.PHONY: test
test: ## Run every module's tests with the race detector (TEST_DATABASE_URL/TEST_REDIS_URL, or Docker)
	@for m in $(MODULES); do echo "== $$m"; (cd $$m && go test -race -count=1 -timeout 15m ./...) || exit 1; done

.PHONY: test-race
test-race: test ## Same as test: the race detector is always on

.PHONY: bench
bench: ## Run the benchmarks, each beside the pgbench baseline (see docs/benchmarks.md)
	@scripts/bench.sh

.PHONY: bench-payments
bench-payments: ## Only the payment figures (throughput, latency, CPU per payment) beside the baseline, with webhooks on, in a few minutes
	@PAYBENCH_WEBHOOKS=$${PAYBENCH_WEBHOOKS:-1} BENCH_MODULES=event-consumers BENCH=BenchmarkPayments scripts/bench.sh

.PHONY: lint
lint: ## go vet and staticcheck over every module, and gofmt
	@test -z "$$(gofmt -l $(MODULES))" || { gofmt -l $(MODULES); echo "gofmt needed"; exit 1; }
	@for m in $(MODULES); do (cd $$m && go vet ./... && go run honnef.co/go/tools/cmd/staticcheck@2026.2.2 ./...) || exit 1; done

.PHONY: fmt
fmt: ## gofmt every module
	gofmt -w $(MODULES)

.PHONY: tidy
tidy: ## go mod tidy in every module
	@for m in $(MODULES); do (cd $$m && go mod tidy) || exit 1; done

.PHONY: offline-images
offline-images: ## Build, where absent, every image the Dockerfile and compose file name, from Debian's packages and the Go module proxy (no registry)
	@scripts/offline-images.sh

.PHONY: compose-up
compose-up: ## docker compose up --build --wait (docker-compose v1: polls the health itself)
	@bash -c '. scripts/compose-lib.sh && up_wait --build'

.PHONY: compose-down
compose-down: ## docker compose down (volumes kept: `docker compose down -v` drops the data)
	@bash -c '. scripts/compose-lib.sh && dc down'

.PHONY: compose-smoke
compose-smoke: ## The smoke script against the compose stack's published port (GATEWAY_PORT, default 8080)
	@scripts/smoke.sh http://127.0.0.1:$${GATEWAY_PORT:-8080}

.PHONY: compose-faults
compose-faults: ## The fault scenarios under a bank workload against the compose stack (scripts/compose-faults.sh)
	@scripts/compose-faults.sh

.PHONY: compose-ci
compose-ci: ## CI's compose stage: images, down -v, up --wait, smoke, README examples, fault scenarios, down -v
	@scripts/compose-ci.sh

.PHONY: clean
clean: ## Remove bin/
	rm -rf bin
