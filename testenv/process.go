package testenv

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildMu  sync.Mutex
	built    = map[string]string{}
	buildDir string
)

// Binary builds one of the four services (by directory name, e.g. "command-service") once per test
// process and returns the path of the binary.
func Binary(t testing.TB, service string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if path, ok := built[service]; ok {
		return path
	}
	root, err := RepoRoot()
	if err != nil {
		t.Fatalf("find repository root: %v", err)
	}
	if buildDir == "" {
		if buildDir, err = os.MkdirTemp("", "upi-test-bin-"); err != nil {
			t.Fatalf("temp dir for binaries: %v", err)
		}
	}
	path := filepath.Join(buildDir, service)
	args := []string{"build", "-o", path}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, "./"+service)...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", service, err, out)
	}
	built[service] = path
	return path
}

// RepoRoot is the nearest directory above the working directory holding go.work: the repository.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.work above the working directory")
		}
		dir = parent
	}
}

// addrVar is the environment variable naming each service's listen address.
var addrVar = map[string]string{
	"api-gateway":     "GATEWAY_ADDR",
	"command-service": "COMMAND_SERVICE_ADDR",
	"query-service":   "QUERY_SERVICE_ADDR",
	"event-consumers": "EVENT_CONSUMERS_ADDR",
}

// opsAddrVar is the environment variable naming each service's operations listener.
var opsAddrVar = map[string]string{
	"api-gateway":     "GATEWAY_OPS_ADDR",
	"command-service": "COMMAND_SERVICE_OPS_ADDR",
	"query-service":   "QUERY_SERVICE_OPS_ADDR",
	"event-consumers": "EVENT_CONSUMERS_OPS_ADDR",
}

// OperatorKey is the operator key of services started in development mode (their default OPERATOR_KEYS).
const OperatorKey = "dev-operator-secret"

// Service is a real service process started by a test.
type Service struct {
	Name string
	// URL is the service's base URL, e.g. http://127.0.0.1:40123. It stays the same across restarts.
	URL string
	// OpsURL is its operations listener's: /metrics, the detailed /readyz, profiles and admin routes
	// (those need OperatorKey).
	OpsURL string

	t       testing.TB
	bin     string
	env     []string
	logPath string
	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
}

// StartService builds (once) and starts a service on a free loopback port (and its operations listener
// on another) with env added to the test's environment, waits until its /healthz answers, and stops it
// when the test ends. It runs in development mode (UPI_ENV=development: the development keys, by which
// the services started this way trust each other) unless env says otherwise. Its output goes to a log
// file that is printed when the test fails. The test's own environment reaches the service too, so that
// a setting given to `go test` applies to every service the tests start (CONSUMER_PARTITIONS=2 runs every
// event-consumers in two partitions); env, given by the test, takes precedence.
func StartService(t testing.TB, service string, env map[string]string) *Service {
	t.Helper()
	bin := Binary(t, service)
	port, err := freePort()
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	opsAddr := FreeAddr(t)
	s := &Service{
		Name:    service,
		URL:     fmt.Sprintf("http://127.0.0.1:%d", port),
		OpsURL:  "http://" + opsAddr,
		t:       t,
		bin:     bin,
		logPath: filepath.Join(t.TempDir(), service+".log"),
	}
	s.env = append(os.Environ(), fmt.Sprintf("%s=127.0.0.1:%d", addrVar[service], port),
		opsAddrVar[service]+"="+opsAddr, "UPI_ENV=development")
	if service == "event-consumers" {
		// The event feed stays off unless a test asks for it (RELAY_ENABLED=true and a RELAY_EXCHANGE of
		// its own): tests must not publish to the machine's upi.events exchange.
		s.env = append(s.env, "RELAY_ENABLED=false")
	}
	for k, v := range env {
		s.env = append(s.env, k+"="+v)
	}
	s.Start()
	if t.Failed() {
		t.FailNow()
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			if b, err := os.ReadFile(s.logPath); err == nil {
				t.Logf("%s log (last 4 KiB):\n%s", service, tail(b, 4096))
			}
		}
	})
	return s
}

// Start starts the process (again) and waits for /healthz. Tests call it from goroutines (chaos loops),
// so a failure is reported with Errorf, never t.Fatal, which must run on the test's own goroutine.
func (s *Service) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		s.t.Errorf("open log: %v", err)
		return
	}
	cmd := exec.Command(s.bin)
	cmd.Env = s.env
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		s.t.Errorf("start %s: %v", s.Name, err)
		return
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	s.cmd, s.done = cmd, done

	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-done:
			b, _ := os.ReadFile(s.logPath)
			s.t.Errorf("%s exited during start:\n%s", s.Name, tail(b, 4096))
			return
		default:
		}
		resp, err := http.Get(s.URL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			s.t.Errorf("%s did not become healthy in time", s.Name)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill sends SIGKILL, the crash of a process, and waits for it to be gone.
func (s *Service) Kill() { s.signal(syscall.SIGKILL, 0) }

// Stop sends SIGTERM and waits up to 20s for the drain, then kills.
func (s *Service) Stop() { s.signal(syscall.SIGTERM, 20*time.Second) }

// Restart kills the process and starts it again on the same address.
func (s *Service) Restart() {
	s.t.Helper()
	s.Kill()
	s.Start()
}

// PID is the operating-system process id of the running process, or 0 when it is stopped. It changes
// when the service is restarted. Benchmarks read the process's CPU time with it (ProcessCPU).
func (s *Service) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Running reports whether the process is alive.
func (s *Service) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done == nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

func (s *Service) signal(sig syscall.Signal, grace time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(sig)
	if grace > 0 {
		select {
		case <-s.done:
		case <-time.After(grace):
			_ = s.cmd.Process.Kill()
			<-s.done
		}
	} else {
		<-s.done
	}
	s.cmd = nil
}

// FreeAddr is a loopback address with a free port, for a service's second listener.
func FreeAddr(t testing.TB) string {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	return fmt.Sprintf("127.0.0.1:%d", port)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.TrimSpace(string(b))
}

// WaitHTTP polls url until it answers status or the context ends.
func WaitHTTP(ctx context.Context, url string, status int) error {
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == status {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not answer %d: %w", url, status, ctx.Err())
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// PrivateRedis starts a redis-server of the test's own (no persistence, on a free loopback port), stopped
// when the test ends, and returns its URL. It is for benchmarks that measure Redis's CPU time, which in a
// shared server holds every other user's traffic too. ok is false when there is no redis-server on the
// PATH; use Redis then.
func PrivateRedis(t testing.TB) (url string, ok bool) {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return "", false
	}
	port, err := freePort()
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	dir := t.TempDir()
	logPath := filepath.Join(dir, "redis.log")
	cmd := exec.Command(bin, "--bind", "127.0.0.1", "--port", fmt.Sprint(port), "--save", "", "--appendonly", "no",
		"--dir", dir, "--logfile", logPath)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	url = fmt.Sprintf("redis://127.0.0.1:%d/0", port)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for !redisAnswers(ctx, url) {
		select {
		case <-done:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("redis-server exited during start:\n%s", tail(b, 4096))
		case <-ctx.Done():
			t.Fatalf("redis-server did not answer on port %d in time", port)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return url, true
}

// Log is what the service wrote to its output so far (its JSON log lines).
func (s *Service) Log() []byte {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		s.t.Errorf("read %s log: %v", s.Name, err)
	}
	return b
}
