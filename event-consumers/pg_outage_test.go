package main_test

// PostgreSQL going away is a normal day (docs/failure-handling.md, "PostgreSQL outages"): the bank workload runs
// through the four real services against a PostgreSQL of the test's own, which is killed (SIGKILL of the
// postmaster and its backends, as a crashed machine or container would leave it) and restarted twice, and
// stopped for 20 s once. Every answer meanwhile is a success or a 5xx problem+json, never a 500; the
// services stay up and recover by themselves; afterwards the bank's invariants hold.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"upi/db"
	"upi/testenv"
)

// privatePostgres is a PostgreSQL server owned by one test: initdb into a temporary directory, the
// postmaster on a free loopback port in a process group of its own, so that the test can crash it.
type privatePostgres struct {
	t       *testing.T
	bin     string
	data    string
	port    int
	cred    *syscall.Credential
	logPath string
	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
}

// postgresBinDir finds the server's binaries: PG_BINDIR, else `pg_config --bindir`, else the PATH, else
// Debian's layout (/usr/lib/postgresql/VERSION/bin, the newest).
func postgresBinDir() (string, error) {
	if d := os.Getenv("PG_BINDIR"); d != "" {
		return d, nil
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		d := strings.TrimSpace(string(out))
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("no PostgreSQL server binaries (initdb) found; set PG_BINDIR")
}

func versionOf(dir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return v
}

func startPrivatePostgres(t *testing.T) *privatePostgres {
	t.Helper()
	bin, err := postgresBinDir()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("a private PostgreSQL is required under CI: %v", err)
		}
		t.Skip(err)
	}
	dir, err := os.MkdirTemp("", "upi-pg-outage-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	p := &privatePostgres{t: t, bin: bin, data: filepath.Join(dir, "data"), logPath: filepath.Join(dir, "postgres.log")}
	// initdb refuses to run as root: run the server as the postgres OS user then.
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root needs a postgres OS user for initdb: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		p.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", p.data, "-U", "postgres", "--auth=trust",
		"-E", "UTF8", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	if err := p.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.stop(syscall.SIGINT)
		if t.Failed() {
			if b, err := os.ReadFile(p.logPath); err == nil {
				t.Logf("postgres log (last 4 KiB):\n%s", lastBytes(b, 4096))
			}
		}
	})
	return p
}

func lastBytes(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// URL is the connection URL of database name on the server, as its superuser.
func (p *privatePostgres) URL(name string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", p.port, name)
}

// start runs the postmaster and waits until it accepts connections (after crash recovery, if any).
// It is called from the fault goroutine too, so it returns errors rather than failing the test.
func (p *privatePostgres) start() error {
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o666)
	if err != nil {
		return err
	}
	// fsync off: the test crashes the server, never the machine, so the page cache survives.
	cmd := exec.Command(filepath.Join(p.bin, "postgres"), "-D", p.data, "-p", strconv.Itoa(p.port),
		"-k", filepath.Dir(p.data), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
		"-c", "max_connections=200", "-c", "shared_buffers=32MB")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred, Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start postgres: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := pgx.Connect(ctx, p.URL("postgres"))
		cancel()
		if err == nil {
			conn.Close(context.Background())
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("postgres exited during start: %s", lastBytes(mustRead(p.logPath), 2048))
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres did not accept connections in time: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func mustRead(path string) []byte { b, _ := os.ReadFile(path); return b }

// crash SIGKILLs the postmaster and every backend of its process group, and waits for the postmaster.
func (p *privatePostgres) crash() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
	// Orphaned backends hold the shared memory that a new postmaster checks; they were killed with it.
	time.Sleep(100 * time.Millisecond)
	p.cmd = nil
}

// stop shuts the server down (SIGINT: fast shutdown, as `pg_ctl stop -m fast`).
func (p *privatePostgres) stop(sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
	p.cmd = nil
}

// outageProbe polls every service's /readyz and one read through the gateway, and records when each
// answered 503 and when a payment first completed after a recovery.
type outageProbe struct {
	mu sync.Mutex
	// last503 is the last time each probe saw a 503, by probe name; first503 the first in this fault.
	first503, last503 map[string]time.Time
}

func (o *outageProbe) saw(name string, status int, at time.Time) {
	if status != http.StatusServiceUnavailable && status != 0 {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.first503[name]; !ok {
		o.first503[name] = at
	}
	o.last503[name] = at
}

func (o *outageProbe) reset() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.first503, o.last503 = map[string]time.Time{}, map[string]time.Time{}
}

// window is, per probe, from its first to its last 503 in the fault.
func (o *outageProbe) window() map[string]time.Duration {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := map[string]time.Duration{}
	for name, first := range o.first503 {
		out[name] = o.last503[name].Sub(first).Round(100 * time.Millisecond)
	}
	return out
}

func TestBankSurvivesPostgresOutages(t *testing.T) {
	if testing.Short() {
		t.Skip("the bank workload runs the whole system; skipped with -short")
	}
	payments := envInt("OUTAGE_PAYMENTS", 900)
	workers := envInt("OUTAGE_WORKERS", 8)
	down := time.Duration(envInt("OUTAGE_DOWN_SECONDS", 20)) * time.Second

	pg := startPrivatePostgres(t)
	dbURL := pg.URL("upi")
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	if err := db.Migrate(ctx, dbURL); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	redisURL := testenv.Redis(t)
	cmd := testenv.StartService(t, "command-service", map[string]string{"DATABASE_URL": dbURL,
		"LIMIT_DAILY_PAISE": "0", "LIMIT_DAILY_P2P_COUNT": "0", "LIMIT_NEW_ACCOUNT_PAISE": "0"})
	qry := testenv.StartService(t, "query-service", map[string]string{"DATABASE_URL": dbURL})
	cons := testenv.StartService(t, "event-consumers", map[string]string{"DATABASE_URL": dbURL, "COMMAND_SERVICE_URL": cmd.URL})
	gw := testenv.StartService(t, "api-gateway", map[string]string{
		"REDIS_URL": redisURL, "COMMAND_SERVICE_URL": cmd.URL, "QUERY_SERVICE_URL": qry.URL,
		"API_KEYS": "bank-a=key-a,bank-b=key-b", "RATE_LIMIT_RPS": "1000000", "RATE_LIMIT_BURST": "1000000",
	})
	services := []*testenv.Service{cmd, qry, cons, gw}

	// Every answer the clients get: a success, a 4xx, or a 5xx problem+json; a 500 is a defect.
	var amu sync.Mutex
	statuses := map[int]int{}
	var slowest5xx, slowest time.Duration
	answered := func(status int, h http.Header, body []byte, took time.Duration) {
		amu.Lock()
		statuses[status]++
		slowest = max(slowest, took)
		if status >= 500 || status == 0 {
			slowest5xx = max(slowest5xx, took)
		}
		amu.Unlock()
		switch {
		case status == 0 && took >= 9*time.Second:
			t.Errorf("no answer within the client's 10 s: %s", body)
		case status == 0:
			// The connection failed without an answer (a connection closed as it was reused): not a
			// hang, and the client tries again, as any client must.
			t.Logf("transport error after %s, retried: %s", took, body)
		}
		if status == http.StatusInternalServerError {
			t.Errorf("a 500 during the outages: %s", body)
		} else if status >= 500 && !strings.HasPrefix(h.Get("Content-Type"), "application/problem+json") {
			t.Errorf("a %d that is not problem+json: %q %s", status, h.Get("Content-Type"), body)
		} else if status == http.StatusServiceUnavailable {
			var p struct{ Code string }
			if json.Unmarshal(body, &p) != nil || p.Code != "DEPENDENCY_UNAVAILABLE" {
				t.Errorf("a 503 without code DEPENDENCY_UNAVAILABLE: %s", body)
			}
		}
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	clients := []*bankClient{{base: gw.URL, key: "key-a", http: hc, answered: answered},
		{base: gw.URL, key: "key-b", http: hc, answered: answered}}

	accounts, deposited := openBankAccounts(ctx, t, clients, 6)
	if t.Failed() {
		t.FailNow()
	}

	// The probes: each service's /readyz and a balance read through the gateway, every 100 ms.
	probe := &outageProbe{}
	probe.reset()
	probeCtx, stopProbe := context.WithCancel(ctx)
	var probeWG sync.WaitGroup
	probeHC := &http.Client{Timeout: 5 * time.Second}
	for _, s := range services {
		probeWG.Go(func() {
			for probeCtx.Err() == nil {
				st := 0
				if resp, err := probeHC.Get(s.URL + "/readyz"); err == nil {
					st = resp.StatusCode
					resp.Body.Close()
				}
				probe.saw(s.Name+" /readyz", st, time.Now())
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
	probeWG.Go(func() {
		for probeCtx.Err() == nil {
			st, _, _ := clients[0].do(probeCtx, http.MethodGet, "/v1/accounts/"+accounts[0].vpa+"/balance", "", nil)
			if probeCtx.Err() == nil {
				probe.saw("gateway GET balance", st, time.Now())
			}
			time.Sleep(100 * time.Millisecond)
		}
	})

	// The faults, while the payments run.
	verify, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer verify.Close()
	type faultReport struct {
		name             string
		outage           time.Duration // from the fault until PostgreSQL accepted connections again
		unavailable      map[string]time.Duration
		firstPaymentDone time.Duration // from PostgreSQL's return to the first payment completed after it
	}
	var reports []faultReport
	faultsDone := make(chan struct{})
	go func() {
		defer close(faultsDone)
		faults := []struct {
			name  string
			apply func()
		}{
			{"SIGKILL postmaster, restart at once", func() { pg.crash() }},
			{"SIGKILL postmaster, restart at once (again)", func() { pg.crash() }},
			{fmt.Sprintf("stopped for %s", down), func() { pg.stop(syscall.SIGINT); time.Sleep(down) }},
		}
		for _, f := range faults {
			select {
			case <-ctx.Done():
				return
			case <-time.After(3 * time.Second):
			}
			probe.reset()
			start := time.Now()
			f.apply()
			if err := pg.start(); err != nil {
				t.Errorf("%s: restart postgres: %v", f.name, err)
				return
			}
			back := time.Now()
			r := faultReport{name: f.name, outage: back.Sub(start).Round(100 * time.Millisecond)}
			// The first payment completed after PostgreSQL's return (created_at is the server's clock,
			// the same machine's).
			for ctx.Err() == nil {
				var at *time.Time
				err := verify.QueryRow(ctx, `select min(created_at) from events
					where event_type = 'PaymentCompleted' and created_at > $1`, back).Scan(&at)
				if err == nil && at != nil {
					r.firstPaymentDone = at.Sub(back).Round(10 * time.Millisecond)
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			// Give the probes time to see the services ready again before reading their windows.
			time.Sleep(2 * time.Second)
			r.unavailable = probe.window()
			reports = append(reports, r)
		}
	}()

	accepted, _ := payRandomly(ctx, t, clients, accounts, payments, workers)
	// Payments keep running until the last fault is over, so that each fault meets traffic.
	for {
		select {
		case <-faultsDone:
		default:
			more, _ := payRandomly(ctx, t, clients, accounts, 50, workers)
			for k, v := range more {
				accepted[k] = v
			}
			continue
		}
		break
	}
	stopProbe()
	probeWG.Wait()
	for _, s := range services {
		if !s.Running() {
			t.Errorf("%s exited during the outages", s.Name)
			s.Start()
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	waitAllTerminal(t, ctx, verify)
	checkLog(t, ctx, verify, accepted, deposited)
	checkReadModels(t, ctx, verify, clients, accounts)
	var parked int
	if err := verify.QueryRow(ctx, `select count(*) from workflow_parked where status = 'parked'`).Scan(&parked); err != nil {
		t.Fatal(err)
	}
	if parked != 0 {
		t.Errorf("%d workflow steps left parked", parked)
	}

	t.Logf("%d payments accepted; answers by status: %v; slowest answer %s, slowest 5xx %s",
		len(accepted), statuses, slowest.Round(time.Millisecond), slowest5xx.Round(time.Millisecond))
	for _, r := range reports {
		names := make([]string, 0, len(r.unavailable))
		for n := range r.unavailable {
			names = append(names, n)
		}
		sort.Strings(names)
		var b strings.Builder
		for _, n := range names {
			fmt.Fprintf(&b, " %s %s;", n, r.unavailable[n])
		}
		t.Logf("fault %q: postgres gone %s; first payment completed %s after its return; 503 (or no answer) for:%s",
			r.name, r.outage, r.firstPaymentDone, b.String())
	}
	if len(reports) != 3 {
		t.Fatalf("%d of 3 faults ran", len(reports))
	}
	// While PostgreSQL was stopped, each service that needs it said so on /readyz, and reads through the
	// gateway were 503s; after each fault payments completed again within seconds.
	stopped := reports[2]
	for _, name := range []string{"command-service /readyz", "query-service /readyz", "event-consumers /readyz", "gateway GET balance"} {
		if stopped.unavailable[name] < down/2 {
			t.Errorf("%s: 503 for %s of a %s outage", name, stopped.unavailable[name], down)
		}
	}
	for _, r := range reports {
		if r.firstPaymentDone > 15*time.Second {
			t.Errorf("fault %q: the first payment completed %s after PostgreSQL returned", r.name, r.firstPaymentDone)
		}
	}
}
