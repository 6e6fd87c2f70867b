package testenv

// CPU time of the processes a benchmark runs on, read from /proc (Linux only): the four services,
// PostgreSQL and Redis. The design asks every benchmark for CPU milliseconds per completed payment beside
// its throughput, because that figure holds steady on a noisy machine where throughput does not.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
)

// procStat is what a benchmark needs from /proc/<pid>/stat, in clock ticks.
type procStat struct {
	comm                         string
	ppid                         int
	utime, stime, cutime, cstime int64
}

// readProcStat parses /proc/<pid>/stat (proc(5)). The command name is in parentheses and may itself
// hold spaces and parentheses, so the fields are counted from the last ')'.
func readProcStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	st, err := parseProcStat(b)
	if err != nil {
		return procStat{}, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return st, nil
}

func parseProcStat(b []byte) (procStat, error) {
	open, closing := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || closing < open {
		return procStat{}, errors.New("no command name in parentheses")
	}
	// fields[0] is field 3 of proc(5) (state); field n is fields[n-3].
	fields := strings.Fields(string(b[closing+1:]))
	if len(fields) < 15 {
		return procStat{}, fmt.Errorf("%d fields after the command name, want at least 15", len(fields))
	}
	num := func(n int) int64 { v, _ := strconv.ParseInt(fields[n-3], 10, 64); return v }
	return procStat{
		comm:  string(b[open+1 : closing]),
		ppid:  int(num(4)),
		utime: num(14), stime: num(15), cutime: num(16), cstime: num(17),
	}, nil
}

var (
	clockTicksOnce sync.Once
	clockTicks     int64
)

// ticks converts clock ticks (sysconf(_SC_CLK_TCK), the unit of /proc/<pid>/stat) to a duration. Go has
// no sysconf without cgo, so it asks getconf; Linux fixes the unit at 100 per second on the common
// architectures, which is the fallback.
func ticks(n int64) time.Duration {
	clockTicksOnce.Do(func() {
		clockTicks = 100
		if out, err := exec.Command("getconf", "CLK_TCK").Output(); err == nil {
			if v, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64); err == nil && v > 0 {
				clockTicks = v
			}
		}
	})
	return time.Duration(n) * time.Second / time.Duration(clockTicks)
}

// ProcessCPU is the user plus system CPU time that process pid has used so far (not counting its
// children). Its resolution is one clock tick, 10 ms on Linux.
func ProcessCPU(pid int) (time.Duration, error) {
	st, err := readProcStat(pid)
	if err != nil {
		return 0, fmt.Errorf("cpu time of pid %d: %w", pid, err)
	}
	return ticks(st.utime + st.stime), nil
}

// ErrNotLocal is returned when a server's processes are not visible in this machine's /proc (it runs in a
// container or elsewhere), so their CPU time cannot be read.
var ErrNotLocal = errors.New("not a local process")

// RedisCPU is the CPU time the Redis server behind url has used since it started, all its threads, as
// it reports it itself (INFO cpu: used_cpu_user + used_cpu_sys, from getrusage), so it works for a
// server in a container too. Redis is one process for every logical database: the figure holds whatever
// else uses that server.
func RedisCPU(ctx context.Context, url string) (time.Duration, error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return 0, err
	}
	c := redis.NewClient(opts)
	defer c.Close()
	info, err := c.Info(ctx, "cpu").Result()
	if err != nil {
		return 0, fmt.Errorf("redis INFO cpu: %w", err)
	}
	var seconds float64
	found := 0
	for line := range strings.Lines(info) {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		if k == "used_cpu_user" || k == "used_cpu_sys" {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return 0, fmt.Errorf("redis INFO cpu: %s: %w", k, err)
			}
			seconds += f
			found++
		}
	}
	if found != 2 {
		return 0, fmt.Errorf("redis INFO cpu has no used_cpu_user and used_cpu_sys:\n%s", info)
	}
	return time.Duration(seconds * float64(time.Second)), nil
}

// PostgresCPUSample is the CPU time of a local PostgreSQL server's processes at one moment. Compare two
// samples with Since.
type PostgresCPUSample struct {
	database string
	// procs are the live children of the postmaster, and the postmaster itself.
	procs map[int]pgProc
	// reaped is the CPU time of the postmaster's children that have exited (its cutime+cstime), in ticks:
	// a backend's own counters vanish with it, and reappear here.
	reaped int64
	// sessions is how many sessions the database has had (pg_stat_database), to tell whether any of its
	// backends exited in between.
	sessions int64
}

type pgProc struct {
	ticks int64
	// database is the database a backend is connected to, "" for the server's shared processes
	// (postmaster, checkpointer, WAL writer, ...).
	database string
	// application is the application_name of a backend's session (each service sets its own name).
	application string
}

// SamplePostgresCPU reads the CPU time of every process of the PostgreSQL server that pool is connected
// to: the postmaster and all its children (backends and background processes), each with the database
// it serves (pg_stat_activity). The server must run on this machine, visible in /proc: it fails
// otherwise.
func SamplePostgresCPU(ctx context.Context, pool *pgxpool.Pool) (PostgresCPUSample, error) {
	var backendPID int
	s := PostgresCPUSample{procs: map[int]pgProc{}}
	if err := pool.QueryRow(ctx, `
		select pg_backend_pid(), current_database(),
		       (select coalesce(sessions, 0) from pg_stat_database where datname = current_database())`,
	).Scan(&backendPID, &s.database, &s.sessions); err != nil {
		return s, fmt.Errorf("sample postgres cpu: %w", err)
	}
	rows, err := pool.Query(ctx, `select pid, coalesce(datname, ''), coalesce(application_name, '') from pg_stat_activity`)
	if err != nil {
		return s, fmt.Errorf("sample postgres cpu: %w", err)
	}
	dbOf, appOf := map[int]string{}, map[int]string{}
	for rows.Next() {
		var pid int
		var name, app string
		if err := rows.Scan(&pid, &name, &app); err != nil {
			return s, err
		}
		dbOf[pid], appOf[pid] = name, app
	}
	if err := rows.Err(); err != nil {
		return s, err
	}

	backend, err := readProcStat(backendPID)
	if err != nil || backend.comm != "postgres" {
		return s, fmt.Errorf("postgres backend %d: %w", backendPID, ErrNotLocal)
	}
	postmasterPID := backend.ppid
	postmaster, err := readProcStat(postmasterPID)
	if err != nil || postmaster.comm != "postgres" {
		return s, fmt.Errorf("the parent %d of postgres backend %d is not the postmaster", postmasterPID, backendPID)
	}
	s.reaped = postmaster.cutime + postmaster.cstime
	s.procs[postmasterPID] = pgProc{ticks: postmaster.utime + postmaster.stime}

	entries, err := os.ReadDir("/proc")
	if err != nil {
		return s, err
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readProcStat(pid)
		if err != nil || st.ppid != postmasterPID { // exited meanwhile, or not this server's
			continue
		}
		s.procs[pid] = pgProc{ticks: st.utime + st.stime, database: dbOf[pid], application: appOf[pid]}
	}
	return s, nil
}

// PostgresCPU is how a PostgreSQL server's CPU time between two samples divides.
type PostgresCPU struct {
	// Database is what the backends connected to the sampled database used.
	Database time.Duration
	// ByApplication divides Database by the backends' application_name (the service whose connection it
	// is; "" for a session that set none).
	ByApplication map[string]time.Duration
	// Server is what the server's shared processes used: postmaster, WAL writer, checkpointer, ...
	Server time.Duration
	// Exited is what backends that exited between the samples used (from the postmaster's
	// reaped-children time), when some of them served the sampled database: exact in sum, but not
	// divisible by database, so all of it is counted as the sampled database's.
	Exited time.Duration
	// OtherDatabases is what backends of other databases used: some other run on the server. It holds the
	// exited backends' time too when none of the sampled database's sessions ended in between.
	OtherDatabases time.Duration
	// DatabaseSessionsEnded is how many of the sampled database's sessions ended in between: those of the
	// first sample gone in the second, and those that began and ended in between (pg_stat_database).
	DatabaseSessionsEnded int
}

// Ours is the server's CPU time that served the sampled database: its backends, the server's shared
// processes, and exited backends when some of them were its own.
func (c PostgresCPU) Ours() time.Duration { return c.Database + c.Server + c.Exited }

// Since divides the server's CPU time between start and s.
func (s PostgresCPUSample) Since(start PostgresCPUSample) PostgresCPU {
	var database, server, others int64
	byApp := map[string]int64{}
	born := 0 // the database's backends that began in between and still run
	for pid, p := range s.procs {
		d := p.ticks
		if q, ok := start.procs[pid]; ok && q.ticks <= p.ticks { // (a lower count is a reused pid)
			d -= q.ticks
		} else if p.database == s.database {
			born++
		}
		switch p.database {
		case "":
			server += d
		case s.database:
			database += d
			byApp[p.application] += d
		default:
			others += d
		}
	}
	// Children reaped in between: their whole lifetime is in the postmaster's counter, of which the part
	// before start was already in start's sample.
	exited := s.reaped - start.reaped
	ended := 0
	for pid, q := range start.procs {
		if _, alive := s.procs[pid]; !alive {
			exited -= q.ticks
			if q.database == start.database {
				ended++
			}
		}
	}
	ended += max(int(s.sessions-start.sessions)-born, 0)
	c := PostgresCPU{
		Database: ticks(database), Server: ticks(server), OtherDatabases: ticks(others), DatabaseSessionsEnded: ended,
		ByApplication: make(map[string]time.Duration, len(byApp)),
	}
	for app, d := range byApp {
		c.ByApplication[app] = ticks(d)
	}
	if ended > 0 {
		c.Exited = ticks(max(exited, 0))
	} else {
		c.OtherDatabases += ticks(max(exited, 0))
	}
	return c
}

// MachineCPU is the CPU time all cores of this machine have spent busy (not idle, not waiting for I/O)
// since boot, from /proc/stat. Over an interval, what the processes a benchmark measures did not use of
// it is what everything else on the machine used meanwhile.
func MachineCPU() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	fields := strings.Fields(line)
	// cpu user nice system idle iowait irq softirq steal guest guest_nice; guest time is already in user.
	if len(fields) < 9 || fields[0] != "cpu" {
		return 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	var busy int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		v, err := strconv.ParseInt(fields[i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat: %w", err)
		}
		busy += v
	}
	return ticks(busy), nil
}
