package eventstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"upi/shared/platform/eventstore"
)

// blocking is a deposit whose decision waits for release: it holds its group (and, with Concurrency 1,
// the committer) open while the test fills the queue behind it.
func blocking(started chan<- struct{}, release <-chan struct{}) eventstore.Command[balance] {
	return func(balance, int) ([]eventstore.NewEvent, error) {
		select {
		case started <- struct{}{}:
		default:
		}
		<-release
		return []eventstore.NewEvent{deposited(1)}, nil
	}
}

type execResult struct {
	err error
	at  time.Duration
}

// execAsync runs op through c from a goroutine of its own and reports how it ended and when.
func execAsync(ctx context.Context, c *eventstore.Committer, o *eventstore.Op) <-chan execResult {
	out := make(chan execResult, 1)
	start := time.Now()
	go func() {
		_, err := c.Execute(ctx, o)
		out <- execResult{err, time.Since(start)}
	}()
	return out
}

// waitQueued gives the goroutines just started time to queue their commands.
func waitQueued() { time.Sleep(100 * time.Millisecond) }

// A full queue refuses at once with ErrOverloaded, and a command whose caller went away while it waited
// is answered at once and never reaches the log; the commands that were kept commit.
func TestCommitterShedsWhenFullAndDropsAbandonedCommands(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	c := eventstore.NewCommitter(s, eventstore.CommitterOptions{Concurrency: 1, MaxOps: 8, MaxQueue: 2, MaxWait: time.Minute})
	started, release := make(chan struct{}, 1), make(chan struct{})
	first := execAsync(context.Background(), c, op("held@bank", uuid.Nil, blocking(started, release)))
	<-started // its group runs; the next commands queue

	callerCtx, hangUp := context.WithCancel(context.Background())
	// The command service's commands outlive their caller (WithoutCancel) and name it with WithCaller.
	abandonedCtx := eventstore.WithCaller(context.WithoutCancel(callerCtx), callerCtx)
	abandoned := execAsync(abandonedCtx, c, op("abandoned@bank", uuid.Nil, deposit(uuid.Nil, 5)))
	kept := execAsync(context.Background(), c, op("kept@bank", uuid.Nil, deposit(uuid.Nil, 7)))
	waitQueued()

	start := time.Now()
	_, err := c.Execute(context.Background(), op("refused@bank", uuid.Nil, deposit(uuid.Nil, 9)))
	if !errors.Is(err, eventstore.ErrOverloaded) {
		t.Fatalf("a command beyond MaxQueue: %v, want ErrOverloaded", err)
	}
	if d := time.Since(start); d > 50*time.Millisecond {
		t.Errorf("refusing took %v: it must not wait", d)
	}

	hangUp()
	select {
	case r := <-abandoned:
		if !errors.Is(r.err, context.Canceled) {
			t.Errorf("abandoned command: %v, want context.Canceled", r.err)
		}
	case <-time.After(time.Second):
		t.Fatal("a command whose caller has gone was still waiting a second later")
	}

	close(release)
	if r := <-first; r.err != nil {
		t.Fatalf("first command: %v", r.err)
	}
	if r := <-kept; r.err != nil {
		t.Fatalf("kept command: %v", r.err)
	}
	for stream, want := range map[string]int{"held@bank": 1, "kept@bank": 1, "abandoned@bank": 0, "refused@bank": 0} {
		if got := len(load(t, s, stream)); got != want {
			t.Errorf("%s has %d events, want %d", stream, got, want)
		}
	}
}

// A command that waited in the queue longer than MaxWait is refused with ErrOverloaded when its turn
// comes, and is not run.
func TestCommitterRefusesCommandsThatWaitedTooLong(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	c := eventstore.NewCommitter(s, eventstore.CommitterOptions{Concurrency: 1, MaxWait: 150 * time.Millisecond})
	started, release := make(chan struct{}, 1), make(chan struct{})
	first := execAsync(context.Background(), c, op("slow@bank", uuid.Nil, blocking(started, release)))
	<-started
	late := execAsync(context.Background(), c, op("late@bank", uuid.Nil, deposit(uuid.Nil, 5)))
	time.Sleep(300 * time.Millisecond)
	close(release)
	if r := <-first; r.err != nil {
		t.Fatalf("first command: %v", r.err)
	}
	if r := <-late; !errors.Is(r.err, eventstore.ErrOverloaded) {
		t.Fatalf("a command that waited 300 ms with MaxWait 150 ms: %v, want ErrOverloaded", r.err)
	}
	if n := len(load(t, s, "late@bank")); n != 0 {
		t.Errorf("the refused command appended %d events", n)
	}
	// The committer goes on: the next command runs.
	if _, err := c.Execute(context.Background(), op("late@bank", uuid.Nil, deposit(uuid.Nil, 5))); err != nil {
		t.Fatalf("after shedding: %v", err)
	}
}

// A caller that hangs up once its command's group has begun is answered at once, but the command is not
// cut midway: it commits with its group, and a retry finds it by its ids.
func TestCommitterFinishesAGroupWhoseCallerLeft(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	c := eventstore.NewCommitter(s, eventstore.CommitterOptions{Concurrency: 1})
	started, release := make(chan struct{}, 1), make(chan struct{})
	callerCtx, hangUp := context.WithCancel(context.Background())
	ctx := eventstore.WithCaller(context.WithoutCancel(callerCtx), callerCtx)
	res := execAsync(ctx, c, op("midway@bank", uuid.Nil, blocking(started, release)))
	<-started
	hangUp()
	if r := <-res; !errors.Is(r.err, context.Canceled) {
		t.Fatalf("the caller that hung up: %v, want context.Canceled at once", r.err)
	}
	close(release)
	deadline := time.Now().Add(10 * time.Second)
	for len(load(t, s, "midway@bank")) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the command whose group had begun never committed")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
