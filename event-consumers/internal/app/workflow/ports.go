package workflow

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"

	"upi/shared/contract"
)

// Steps runs batches of workflow steps on the command service (contract.PathSteps). RunSteps returns one
// result per step, in order, or an error when the call as a whole failed: one that wraps ErrUnavailable
// is about the service's state and is retried as it is; any other means a bug on one side of the
// contract.
type Steps interface {
	RunSteps(ctx context.Context, steps []contract.Step) ([]contract.StepResult, error)
}

// ErrUnavailable marks a call to the command service that failed for a reason worth retrying as it is:
// the service unreachable, overloaded, or its database unavailable.
var ErrUnavailable = errors.New("command service unavailable")

// ErrRefused marks a call to the command service refused as a whole for what it asked (a 4xx): the steps
// some event called for break the contract, and sending them again cannot help.
var ErrRefused = errors.New("command service refused the steps")

// Parking keeps the steps that kept failing for a lasting reason, so that they stop holding back the
// payments behind them and are retried later.
type Parking interface {
	// Park records st as parked for reason; retry is the step to send when it is retried (st itself, or
	// its compensation). Parking a step again counts one more attempt.
	Park(ctx context.Context, st, retry contract.Step, reason string) error
	// Resolve marks a parked step done, saying how (resolution).
	Resolve(ctx context.Context, p ParkedStep, resolution string) error
	// Postpone records a failed retry of a parked step: one more attempt, the reason, and the next attempt
	// not before `after` from now.
	Postpone(ctx context.Context, p ParkedStep, reason string, after time.Duration) error
	// Parked returns up to limit steps still parked and due for a retry, the longest due first, each with
	// the step to send now.
	Parked(ctx context.Context, limit int) ([]ParkedRetry, error)
	// Open counts the steps still parked.
	Open(ctx context.Context) (int, error)
}

// ParkedStep names a parked step: its saga's key (contract.Step.Key: the refund's id for a refund step)
// and the step that was parked.
type ParkedStep struct {
	Key  uuid.UUID
	Step contract.StepName
}

// ParkedRetry is a parked step with the step to send when it is retried.
type ParkedRetry struct {
	ParkedStep
	Retry contract.Step
	// Attempts is how many times the step has failed so far (its tries before parking count as one).
	Attempts int
}
