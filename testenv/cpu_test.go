package testenv

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

func TestParseProcStat(t *testing.T) {
	// A command name with a space and a parenthesis, as a process may name itself.
	line := "4242 (we ird) name) S 17 4242 4242 0 -1 4194560 900 0 0 0 123 45 67 8 20 0 1 0 100 1000 10\n"
	st, err := parseProcStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	want := procStat{comm: "we ird) name", ppid: 17, utime: 123, stime: 45, cutime: 67, cstime: 8}
	if st != want {
		t.Fatalf("parsed %+v, want %+v", st, want)
	}
	if _, err := parseProcStat([]byte("4242 (short) S 1 2")); err == nil {
		t.Fatal("a truncated line parsed")
	}
}

// ProcessCPU of this process agrees with what getrusage says it used.
func TestProcessCPU(t *testing.T) {
	for end := time.Now().Add(100 * time.Millisecond); time.Now().Before(end); {
	}
	var before, after syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &before); err != nil {
		t.Fatal(err)
	}
	got, err := ProcessCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &after); err != nil {
		t.Fatal(err)
	}
	rusage := func(r syscall.Rusage) time.Duration {
		return time.Duration(r.Utime.Nano() + r.Stime.Nano())
	}
	// /proc counts in clock ticks (10 ms); allow two.
	if lo, hi := rusage(before)-20*time.Millisecond, rusage(after)+20*time.Millisecond; got < lo || got > hi {
		t.Fatalf("ProcessCPU = %v, getrusage says %v to %v", got, rusage(before), rusage(after))
	}
}

func TestPostgresCPU(t *testing.T) {
	ctx := context.Background()
	pool, url := PostgresPool(t)
	otherURL := Postgres(t)
	start, err := SamplePostgresCPU(ctx, pool)
	if errors.Is(err, ErrNotLocal) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}

	// The same computing query on connections of this database and of another one, some of which close
	// (their backend exits, and only the postmaster's reaped-children time keeps it). Each backend's own
	// CPU time is read before it goes, to know what the samples must hold. Other runs on a shared server
	// can only add to the figures.
	const query = `select count(*) from generate_series(1, 3000000)`
	work := func(url string, closeAfter bool) (backend time.Duration) {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		var pid int
		if err := conn.QueryRow(ctx, `select pg_backend_pid()`).Scan(&pid); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, query); err != nil {
			t.Fatal(err)
		}
		if backend, err = ProcessCPU(pid); err != nil {
			t.Fatal(err)
		}
		if closeAfter {
			conn.Close(ctx)
		} else {
			t.Cleanup(func() { conn.Close(context.Background()) })
		}
		return backend
	}
	sample := func() PostgresCPUSample {
		time.Sleep(200 * time.Millisecond) // for exited backends to be reaped
		s, err := SamplePostgresCPU(ctx, pool)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	const tick = 10 * time.Millisecond

	// First no session of this database ends: a backend of another database that exits is theirs. The one
	// of this database names itself, as each service does, and its CPU is found under that name.
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	stays := work(url+sep+"application_name=testenv-cpu", false)
	elsewhereExits := work(otherURL, true)
	elsewhereStays := work(otherURL, false)
	mid := sample()
	got := mid.Since(start)
	t.Logf("backends: this database %v, another database %v (exits) and %v; sampled %+v",
		stays, elsewhereExits, elsewhereStays, got)
	if got.DatabaseSessionsEnded != 0 || got.Exited != 0 {
		t.Errorf("no session of this database ended, sampled %+v", got)
	}
	if got.Database < stays-2*tick || got.Ours() < stays-2*tick {
		t.Errorf("this database's backend used %v of CPU, sampled %+v", stays, got)
	}
	if got.ByApplication["testenv-cpu"] < stays-2*tick || got.ByApplication["testenv-cpu"] > got.Database {
		t.Errorf("this database's backend named testenv-cpu used %v of CPU, sampled %+v", stays, got)
	}
	if got.OtherDatabases < elsewhereExits+elsewhereStays-3*tick {
		t.Errorf("another database's backends used %v and %v of CPU, sampled %+v", elsewhereExits, elsewhereStays, got)
	}

	// Then one does: exited backends count as this database's.
	exits := work(url, true)
	got = sample().Since(mid)
	t.Logf("backends: this database %v (exits); sampled %+v", exits, got)
	if got.DatabaseSessionsEnded != 1 {
		t.Errorf("one session of this database ended, sampled %+v", got)
	}
	if got.Exited < exits-2*tick || got.Ours() < exits-2*tick {
		t.Errorf("this database's exited backend used %v of CPU, sampled %+v", exits, got)
	}
}

func TestRedisCPU(t *testing.T) {
	ctx := context.Background()
	url := Redis(t)
	before, err := RedisCPU(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opts)
	defer c.Close()
	// A script that only computes, a few hundred milliseconds of the server's time.
	if err := c.Eval(ctx, `local n = 0 for i = 1, 20000000 do n = n + i end return 0`, nil).Err(); err != nil {
		t.Fatal(err)
	}
	after, err := RedisCPU(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("redis-server CPU: %v before the script, %v after", before, after)
	if after-before < 50*time.Millisecond {
		t.Fatalf("redis-server CPU: %v before a script, %v after", before, after)
	}
	// When the server is local, /proc agrees (to a clock tick or two).
	info, err := c.Info(ctx, "server").Result()
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
			pid, _ := strconv.Atoi(v)
			if st, err := readProcStat(pid); err == nil && strings.HasPrefix(st.comm, "redis-server") {
				proc := ticks(st.utime + st.stime)
				if proc < after-20*time.Millisecond || proc > after+50*time.Millisecond {
					t.Errorf("redis-server pid %d: /proc says %v of CPU, INFO cpu %v", pid, proc, after)
				}
			}
		}
	}
}

func TestMachineCPU(t *testing.T) {
	before, err := MachineCPU()
	if err != nil {
		t.Fatal(err)
	}
	self, err := ProcessCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(200 * time.Millisecond); time.Now().Before(end); {
	}
	selfAfter, err := ProcessCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	after, err := MachineCPU()
	if err != nil {
		t.Fatal(err)
	}
	// The machine was busy at least while this process was.
	if after-before < selfAfter-self-20*time.Millisecond {
		t.Fatalf("machine busy %v while this process alone used %v", after-before, selfAfter-self)
	}
}

func TestPrivateRedis(t *testing.T) {
	url, ok := PrivateRedis(t)
	if !ok {
		t.Skip("no redis-server on the PATH")
	}
	ctx := context.Background()
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opts)
	defer c.Close()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	// Its own server: a fresh process, whose CPU time is next to nothing yet.
	used, err := RedisCPU(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	if used > time.Second {
		t.Fatalf("a just-started redis-server has used %v of CPU: is it the shared one?", used)
	}
}
