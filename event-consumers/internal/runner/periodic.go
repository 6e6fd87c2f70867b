package runner

import (
	"context"
	"time"
)

// Periodic runs job every `every` (the first time at once) while this process holds the job's worker
// lock, checked before each round, so that across replicas one process at a time runs it: the retry of
// parked workflow steps and collect expiry are not made twice as often, nor raced, by a second replica. A
// standby tries the lock every LockRetry and takes over when the holder's session ends (its process died,
// or its connection). Periodic returns when ctx ends.
func (r *Runner) Periodic(ctx context.Context, name string, every time.Duration, job func(context.Context)) {
	log := r.log.With("job", name)
	active := r.m.jobActive.WithLabelValues(name)
	for ctx.Err() == nil {
		lock, err := acquireLock(ctx, r.connect, log, "job:"+name, r.opts.LockRetry)
		if err != nil {
			return // ctx ended
		}
		log.Info("periodic job active on this replica")
		active.Set(1)
		err = runHolding(ctx, lock, every, job)
		lock.release()
		active.Set(0)
		if ctx.Err() == nil {
			log.Warn("periodic job lost its lock; standing by", "err", err)
		}
	}
}

// runHolding runs job every `every` for as long as lock is held: the lock's session is asked before each
// round, so a session that died (and so let a standby take the job) runs no more rounds. It returns why
// the lock was lost, or nil when ctx ended.
func runHolding(ctx context.Context, lock *workerLock, every time.Duration, job func(context.Context)) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := lock.check(ctx); err != nil {
			return err
		}
		job(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
