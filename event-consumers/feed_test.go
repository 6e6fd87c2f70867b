package main

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	amqp "github.com/rabbitmq/amqp091-go"

	"upi/event-consumers/internal/adapters/rabbitmq/relay/relaytest"
	"upi/event-consumers/internal/workload"
	subscriber "upi/examples/feed-subscriber"
	"upi/shared/platform/eventstore"
	"upi/testenv"
)

// The real binary relaying to the real broker, killed with SIGKILL mid-stream again and again while the
// log grows, then left to finish: every event arrives at a bound queue (first deliveries of each stream
// in version order, repeats identical), and the example subscriber, following the feed meanwhile, ends
// with each account's total equal to the accounts projection's balance.
func TestFeedSurvivesKillsAndSubscriberMatchesProjection(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	rabbitURL := testenv.RabbitMQ(t)
	pool, url := testenv.PostgresPool(t)
	ctx := context.Background()
	exchange := relaytest.Exchange()
	feed := relaytest.Bind(t, rabbitURL, exchange, "#")
	followWithExample(t, pool, rabbitURL, exchange)

	bin := buildConsumers(t)
	bank, vpas := fundedBank(t, pool, "feed", 20, 4)
	rng := rand.New(rand.NewPCG(7, 7))
	if err := bank.Random(ctx, rng, vpas, 150); err != nil {
		t.Fatal(err)
	}
	start := func() *exec.Cmd {
		cmd := exec.Command(bin)
		cmd.Env = append(os.Environ(), "DATABASE_URL="+url, "EVENT_CONSUMERS_ADDR=127.0.0.1:0", "EVENT_CONSUMERS_OPS_ADDR=127.0.0.1:0", "UPI_ENV=development",
			"CONSUMER_BATCH_SIZE=20", "LOG_LEVEL=warn", "COMMAND_SERVICE_URL=http://127.0.0.1:1",
			"RELAY_ENABLED=true", "RABBITMQ_URL="+rabbitURL, "RELAY_EXCHANGE="+exchange, "RELAY_IN_FLIGHT=8")
		cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	for round := range 3 {
		before := feed.Distinct()
		cmd := start()
		deadline := time.Now().Add(30 * time.Second)
		for feed.Distinct() == before && time.Now().Before(deadline) {
			time.Sleep(2 * time.Millisecond)
		}
		time.Sleep(time.Duration(rng.IntN(20)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		t.Logf("round %d: killed with %d distinct events delivered", round, feed.Distinct())
		if err := bank.Random(ctx, rng, vpas, 40); err != nil {
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
	waitForLastEvent(t, pool, "accounts", "payments", "event-feed")
	log := feed.WaitAll(t, pool, 60*time.Second)
	repeats := relaytest.Check(t, log, feed.Deliveries())
	t.Logf("%d events delivered, %d repeats after 3 kills", len(log), repeats)
	if err := workload.Verify(ctx, pool, bank.Expected()); err != nil {
		t.Fatal(err)
	}

	deadline := time.Now().Add(60 * time.Second)
	for {
		totals, err := subscriber.Totals(ctx, pool)
		if err != nil {
			t.Fatal(err)
		}
		diff := balanceDiff(t, pool, totals)
		if diff == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("example subscriber's totals differ from the accounts projection: %s", diff)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// followWithExample binds the example subscriber's queue to exchange (before the relay publishes) and runs
// it on the test's database until the test ends.
func followWithExample(t *testing.T, pool *pgxpool.Pool, rabbitURL, exchange string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	if err := subscriber.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	queue := testenv.UniqueName("example.totals.test.")
	conn, err := amqp.Dial(rabbitURL)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := subscriber.Bind(ch, exchange, queue); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	cfg := subscriber.Config{RabbitMQURL: rabbitURL, Exchange: exchange, Queue: queue}
	go func() {
		defer close(done)
		_ = subscriber.New(cfg, pool, slog.New(slog.NewTextHandler(io.Discard, nil))).Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		_, _ = ch.QueueDelete(queue, false, false, false)
		conn.Close()
	})
}

// balanceDiff compares running totals with the accounts projection: "" when equal.
func balanceDiff(t *testing.T, pool *pgxpool.Pool, totals map[string]int64) string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `select vpa, balance_paise from accounts`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var vpa string
		var balance int64
		if err := rows.Scan(&vpa, &balance); err != nil {
			t.Fatal(err)
		}
		n++
		if totals[vpa] != balance {
			return vpa + ": total " + strconv.FormatInt(totals[vpa], 10) + ", balance " + strconv.FormatInt(balance, 10)
		}
	}
	if len(totals) > n {
		return strconv.Itoa(len(totals)-n) + " totals of accounts the projection does not hold"
	}
	return ""
}

// The split docker compose runs: one process with RELAY_ENABLED=false builds the projections and never
// publishes; a second with RELAY_ONLY=true publishes the whole log, once in order, and builds nothing.
func TestRelayOnlyProcessCarriesTheFeedAlone(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	rabbitURL := testenv.RabbitMQ(t)
	pool, url := testenv.PostgresPool(t)
	ctx := context.Background()
	exchange := relaytest.Exchange()
	feed := relaytest.Bind(t, rabbitURL, exchange, "#")

	bin := buildConsumers(t)
	bank, vpas := fundedBank(t, pool, "split", 8, 2)
	if err := bank.Random(ctx, rand.New(rand.NewPCG(3, 3)), vpas, 60); err != nil {
		t.Fatal(err)
	}
	start := func(env ...string) *exec.Cmd {
		cmd := exec.Command(bin)
		cmd.Env = append(os.Environ(), append([]string{"DATABASE_URL=" + url, "EVENT_CONSUMERS_ADDR=127.0.0.1:0",
			"EVENT_CONSUMERS_OPS_ADDR=127.0.0.1:0", "UPI_ENV=development", "LOG_LEVEL=warn",
			"COMMAND_SERVICE_URL=http://127.0.0.1:1", "RABBITMQ_URL=" + rabbitURL, "RELAY_EXCHANGE=" + exchange}, env...)...)
		cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() })
		return cmd
	}

	start("RELAY_ENABLED=false")
	waitForLastEvent(t, pool, "accounts", "payments")
	time.Sleep(300 * time.Millisecond)
	if n := feed.Distinct(); n != 0 || checkpoint(t, pool, "event-feed") != (eventstore.Position{}) {
		t.Fatalf("with RELAY_ENABLED=false the process published %d events (checkpoint %v)", n, checkpoint(t, pool, "event-feed"))
	}

	start("RELAY_ONLY=true")
	log := feed.WaitAll(t, pool, 60*time.Second)
	relaytest.Check(t, log, feed.Deliveries())
	if err := workload.Verify(ctx, pool, bank.Expected()); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d events published by the relay-only process", len(log))
}

// buildConsumers builds this module's binary into the test's temporary directory.
func buildConsumers(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "event-consumers")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// fundedBank opens n accounts named prefix0@okbank.. (owned by clients client-0..client-(owners-1) in turn)
// straight into the log, each with 50,000 paise deposited.
func fundedBank(t *testing.T, pool *pgxpool.Pool, prefix string, n, owners int) (*workload.Bank, []string) {
	t.Helper()
	ctx := context.Background()
	bank := workload.New(eventstore.New(pool))
	vpas := make([]string, n)
	for i := range vpas {
		vpas[i] = prefix + strconv.Itoa(i) + "@okbank"
		if _, err := bank.Open(ctx, vpas[i], "client-"+strconv.Itoa(i%owners)); err != nil {
			t.Fatal(err)
		}
		if _, err := bank.Deposit(ctx, vpas[i], 50000); err != nil {
			t.Fatal(err)
		}
	}
	return bank, vpas
}
