// Command healthcheck probes a service's readiness from inside its container. The runtime image is
// distroless (no shell, no curl), so the container healthcheck needs a binary of its own; it is built from
// this single stdlib-only file beside each service (`go build deploy/healthcheck/main.go`), outside any
// module so that it adds no dependency to the services.
//
// Usage: healthcheck [URL]   (default: the service's /readyz, set when the image is built)
//
// Exit status 0 when the URL answers 200 within the timeout, 1 otherwise, which is what Docker and
// docker compose expect of a healthcheck command.
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

// defaultURL is the URL probed when none is given. The image build sets it to the port of the service it
// packs (-ldflags "-X main.defaultURL=..."), so that the image's own HEALTHCHECK needs no argument: the
// Dockerfile cannot put a build argument into the HEALTHCHECK command.
var defaultURL = "http://127.0.0.1:8080/readyz"

// timeout stays under the compose healthcheck's own timeout (3s) while leaving room for /readyz, which
// gives each dependency ping up to 2s.
const timeout = 2500 * time.Millisecond

func main() {
	url := defaultURL
	if len(os.Args) > 1 {
		url = os.Args[1]
	}
	if err := probe(url); err != nil {
		fmt.Fprintln(os.Stderr, "unhealthy:", err)
		os.Exit(1)
	}
}

func probe(url string) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("build request for %s: %w", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d: %s", url, resp.StatusCode, body)
	}
	return nil
}
