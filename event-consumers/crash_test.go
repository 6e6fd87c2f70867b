package main

import (
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"upi/event-consumers/internal/runner"
	"upi/event-consumers/internal/workload"
	"upi/shared/platform/eventstore"
	"upi/testenv"
)

// The real binary, killed with SIGKILL in the middle of its work again and again while events keep
// arriving, then left to finish: every event applied exactly once (the read models match the workload's
// expected outcome, and the projections' version guards would have stopped on a double or a gap).
//
// It runs twice: as one worker per consumer, and with the partitioned consumers in three partitions each
// (every kill then takes several partition workers down, each at its own place in the log).
func TestKilledMidBatchAppliesEveryEventOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	for _, partitions := range []int{1, 3} {
		t.Run("partitions="+strconv.Itoa(partitions), func(t *testing.T) { killedMidBatch(t, partitions) })
	}
}

func killedMidBatch(t *testing.T, partitions int) {
	pool, url := testenv.PostgresPool(t)
	ctx := context.Background()
	bin := filepath.Join(t.TempDir(), "event-consumers")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}

	bank := workload.New(eventstore.New(pool))
	vpas := make([]string, 20)
	for i := range vpas {
		vpas[i] = "crash" + strconv.Itoa(i) + "@okbank"
		if _, err := bank.Open(ctx, vpas[i], "client-"+strconv.Itoa(i%4)); err != nil {
			t.Fatal(err)
		}
		if _, err := bank.Deposit(ctx, vpas[i], 50000); err != nil {
			t.Fatal(err)
		}
	}
	rng := rand.New(rand.NewPCG(42, 42))
	if err := bank.Random(ctx, rng, vpas, 100); err != nil {
		t.Fatal(err)
	}

	start := func() *exec.Cmd {
		cmd := exec.Command(bin)
		cmd.Env = append(os.Environ(), "DATABASE_URL="+url, "EVENT_CONSUMERS_ADDR=127.0.0.1:0", "EVENT_CONSUMERS_OPS_ADDR=127.0.0.1:0", "UPI_ENV=development",
			"CONSUMER_BATCH_SIZE=7", "LOG_LEVEL=warn", "COMMAND_SERVICE_URL=http://127.0.0.1:1",
			"RELAY_ENABLED=false", "CONSUMER_PARTITIONS="+strconv.Itoa(partitions))
		cmd.Stdout, cmd.Stderr = testLogWriter{t}, testLogWriter{t}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	kills := 0
	for round := range 3 {
		before := checkpoint(t, pool, "accounts")
		cmd := start()
		// Let it apply at least one batch, then kill it at a random moment of its work.
		deadline := time.Now().Add(30 * time.Second)
		for checkpoint(t, pool, "accounts") == before && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(time.Duration(rng.IntN(40)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		kills++
		t.Logf("round %d: killed at accounts checkpoint %v", round, checkpoint(t, pool, "accounts"))
		if err := bank.Random(ctx, rng, vpas, 20); err != nil { // the log grows between lives
			t.Fatal(err)
		}
	}

	cmd := start()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Errorf("event-consumers did not exit cleanly on SIGTERM: %v", err)
		}
	}()
	waitForLastEvent(t, pool, "accounts", "payments")
	if err := workload.Verify(ctx, pool, bank.Expected()); err != nil {
		t.Fatalf("after %d kills: %v", kills, err)
	}
}

func checkpoint(t *testing.T, pool *pgxpool.Pool, name string) eventstore.Position {
	t.Helper()
	p, err := runner.LoadCheckpoint(context.Background(), pool, name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// waitForLastEvent waits until the checkpoints reach the last event appended (not eventstore.Head: other
// sessions of a shared server can hold its horizon back).
func waitForLastEvent(t *testing.T, pool *pgxpool.Pool, names ...string) {
	t.Helper()
	last, err := workload.LastPosition(context.Background(), pool)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(90 * time.Second)
	for _, n := range names {
		for checkpoint(t, pool, n) != last {
			if time.Now().After(deadline) {
				t.Fatalf("%s at %v, not caught up with %v", n, checkpoint(t, pool, n), last)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }
