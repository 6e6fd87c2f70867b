// Package testenv gives tests real PostgreSQL and Redis: TEST_DATABASE_URL and TEST_REDIS_URL when set,
// otherwise the local servers `make run` uses (127.0.0.1:5432 as postgres, 127.0.0.1:6379) when they
// answer, otherwise containers started with testcontainers-go, otherwise the test is skipped, except under CI
// (CI set), where it fails. Each test gets its own freshly migrated database and its own Redis database, so
// tests run in parallel.
package testenv

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	tcpostgres "github.com/testcontainers/testcontainers-go/modules/postgres"
	tcredis "github.com/testcontainers/testcontainers-go/modules/redis"

	"upi/db"
)

// unavailable skips the test, or fails it under CI, where every dependency must be there.
func unavailable(t testing.TB, what string, err error) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is required under CI and is unavailable: %v", what, err)
	}
	t.Skipf("%s unavailable (set %s or run Docker): %v", what, envName(what), err)
}

func envName(what string) string {
	if what == "redis" {
		return "TEST_REDIS_URL"
	}
	return "TEST_DATABASE_URL"
}

// The servers `make run` uses by default. Tests use them when no TEST_*_URL is set and they answer, so
// that `make test` works on a machine with PostgreSQL and Redis installed, with or without Docker.
const (
	localPostgres = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	localRedis    = "redis://127.0.0.1:6379/0"
)

func postgresAnswers(ctx context.Context, url string) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return false
	}
	conn.Close(ctx)
	return true
}

func redisAnswers(ctx context.Context, url string) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	opts, err := redis.ParseURL(url)
	if err != nil {
		return false
	}
	c := redis.NewClient(opts)
	defer c.Close()
	return c.Ping(ctx).Err() == nil
}

var (
	pgOnce     sync.Once
	pgBase     string
	pgTemplate string
	pgErr      error
)

// Postgres returns the URL of a new database with every migration applied; it is dropped when the test
// ends.
func Postgres(t testing.TB) string {
	t.Helper()
	pgOnce.Do(func() { pgBase, pgTemplate, pgErr = preparePostgres() })
	if pgErr != nil {
		unavailable(t, "postgres", pgErr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name := "upi_test_" + randomHex(6)
	if err := adminExec(ctx, pgBase, fmt.Sprintf("create database %s template %s", name, pgTemplate)); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := adminExec(ctx, pgBase, "drop database if exists "+name+" with (force)"); err != nil {
			t.Logf("drop test database %s: %v", name, err)
		}
	})
	return withDatabaseURL(pgBase, name)
}

// PostgresPool is Postgres with a pool on it, closed when the test ends.
func PostgresPool(t testing.TB) (*pgxpool.Pool, string) {
	t.Helper()
	url := Postgres(t)
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatalf("connect to test database: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool, url
}

// preparePostgres finds the server and makes (once per migration set, across processes) a template
// database with the migrations applied, from which each test's database is copied in milliseconds.
func preparePostgres() (base, template string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	base = os.Getenv("TEST_DATABASE_URL")
	if base == "" && postgresAnswers(ctx, localPostgres) {
		base = localPostgres
	}
	if base == "" {
		if base, err = startPostgresContainer(ctx); err != nil {
			return "", "", err
		}
	}
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return "", "", fmt.Errorf("connect to %s: %w", redact(base), err)
	}
	defer conn.Close(ctx)

	template = "upi_template_" + migrationsDigest()
	// One process builds the template; the others wait on the lock and then find it.
	if _, err := conn.Exec(ctx, `select pg_advisory_lock(727272)`); err != nil {
		return "", "", err
	}
	defer conn.Exec(context.Background(), `select pg_advisory_unlock(727272)`) //nolint:errcheck
	var exists bool
	if err := conn.QueryRow(ctx, `select exists(select 1 from pg_database where datname = $1)`, template).Scan(&exists); err != nil {
		return "", "", err
	}
	if exists {
		return base, template, nil
	}
	building := template + "_building"
	if _, err := conn.Exec(ctx, "drop database if exists "+building+" with (force)"); err != nil {
		return "", "", err
	}
	if _, err := conn.Exec(ctx, "create database "+building); err != nil {
		return "", "", err
	}
	if err := db.Migrate(ctx, withDatabaseURL(base, building)); err != nil {
		return "", "", fmt.Errorf("migrate template: %w", err)
	}
	if _, err := conn.Exec(ctx, fmt.Sprintf("alter database %s rename to %s", building, template)); err != nil {
		return "", "", err
	}
	return base, template, nil
}

// migrationsDigest names the template after the migrations it holds, so a changed migration gets a new one.
func migrationsDigest() string {
	h := sha256.New()
	_ = fs.WalkDir(db.Migrations(), ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(db.Migrations(), path)
		if err != nil {
			return err
		}
		h.Write([]byte(path))
		h.Write(b)
		return nil
	})
	return hex.EncodeToString(h.Sum(nil))[:12]
}

func startPostgresContainer(ctx context.Context) (string, error) {
	c, err := tcpostgres.Run(ctx, "postgres:15-alpine",
		tcpostgres.WithDatabase("test"), tcpostgres.WithUsername("postgres"), tcpostgres.WithPassword("postgres"),
		tcpostgres.BasicWaitStrategies())
	if err != nil {
		return "", fmt.Errorf("start postgres container: %w", err)
	}
	return c.ConnectionString(ctx, "sslmode=disable")
}

func adminExec(ctx context.Context, base, sql string) error {
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

// withDatabaseURL swaps the database name of a connection URL.
func withDatabaseURL(base, name string) string {
	cfg, err := pgx.ParseConfig(base)
	if err != nil {
		panic(err)
	}
	user := cfg.User
	auth := user
	if cfg.Password != "" {
		auth += ":" + cfg.Password
	}
	return fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", auth, cfg.Host, cfg.Port, name)
}

func redact(url string) string {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return "(unparsable url)"
	}
	return fmt.Sprintf("%s@%s:%d/%s", cfg.User, cfg.Host, cfg.Port, cfg.Database)
}

var (
	redisOnce sync.Once
	redisBase string
	redisErr  error
)

// Redis returns the URL of a Redis logical database (1 to 15) reserved for this test and flushed before
// use. Reservations are held in database 0, so parallel test processes never share one.
func Redis(t testing.TB) string {
	t.Helper()
	redisOnce.Do(func() { redisBase, redisErr = prepareRedis() })
	if redisErr != nil {
		unavailable(t, "redis", redisErr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	opts, err := redis.ParseURL(redisBase)
	if err != nil {
		t.Fatalf("parse TEST_REDIS_URL: %v", err)
	}
	opts.DB = 0
	admin := redis.NewClient(opts)
	defer admin.Close()
	owner := randomHex(8)
	for {
		for n := 1; n <= 15; n++ {
			key := "upi:testenv:db:" + strconv.Itoa(n)
			ok, err := admin.SetNX(ctx, key, owner, 10*time.Minute).Result()
			if err != nil {
				t.Fatalf("reserve redis database: %v", err)
			}
			if !ok {
				continue
			}
			dbOpts := *opts
			dbOpts.DB = n
			c := redis.NewClient(&dbOpts)
			err = c.FlushDB(ctx).Err()
			c.Close()
			if err != nil {
				t.Fatalf("flush redis database %d: %v", n, err)
			}
			t.Cleanup(func() {
				c := redis.NewClient(opts)
				defer c.Close()
				c.Del(context.Background(), key)
			})
			return fmt.Sprintf("redis://%s/%d", opts.Addr, n)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no free redis test database: %v", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func prepareRedis() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	url := os.Getenv("TEST_REDIS_URL")
	if url == "" && redisAnswers(ctx, localRedis) {
		url = localRedis
	}
	if url == "" {
		c, err := tcredis.Run(ctx, "redis:7-alpine")
		if err != nil {
			return "", fmt.Errorf("start redis container: %w", err)
		}
		if url, err = c.ConnectionString(ctx); err != nil {
			return "", err
		}
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		return "", fmt.Errorf("parse redis url: %w", err)
	}
	c := redis.NewClient(opts)
	defer c.Close()
	if err := c.Ping(ctx).Err(); err != nil {
		return "", fmt.Errorf("ping redis: %w", err)
	}
	return url, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
