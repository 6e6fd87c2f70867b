package app_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"upi/command-service/internal/app"
	"upi/command-service/internal/domain"
	"upi/shared/contract"
	"upi/shared/contract/events"
	"upi/shared/contract/ids"
	"upi/shared/contract/money"
	"upi/shared/contract/vpa"
	"upi/testenv"
)

// moneyEnv is a command service on a fresh database with one account, alice@okbank, of client psp-a.
type moneyEnv struct {
	pool *pgxpool.Pool
	svc  *app.Service
}

func newMoneyEnv(t *testing.T, terms app.MoneyTerms) moneyEnv {
	t.Helper()
	pool, _ := testenv.PostgresPool(t)
	svc := app.New(app.NewStore(pool), domain.Limits{}).WithMoneyTerms(terms)
	if _, _, err := svc.OpenAccount(context.Background(), app.Caller{ClientID: "psp-a", IdempotencyKey: "open"},
		contract.OpenAccount{VPA: vpa.MustParse("alice@okbank"), HolderName: "Alice"}); err != nil {
		t.Fatal(err)
	}
	return moneyEnv{pool: pool, svc: svc}
}

func paise(t *testing.T, n int64) money.Amount {
	t.Helper()
	a, err := money.NewAmount(n, 0)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func (e moneyEnv) deposit(t *testing.T, key, ref string, amount int64) (contract.Deposit, bool, error) {
	t.Helper()
	return e.svc.Deposit(context.Background(), app.Caller{ClientID: "psp-a", IdempotencyKey: key},
		contract.DepositCommand{VPA: vpa.MustParse("alice@okbank"), Amount: paise(t, amount), Reference: ref})
}

func (e moneyEnv) withdraw(t *testing.T, client, key string, amount int64) (contract.Withdrawal, bool, error) {
	t.Helper()
	return e.svc.Withdraw(context.Background(), app.Caller{ClientID: client, IdempotencyKey: key},
		contract.WithdrawCommand{VPA: vpa.MustParse("alice@okbank"), Amount: paise(t, amount), Reference: "payout-" + key})
}

// sums are what the log holds: the sum of every account's and settlement shard's last recorded balance.
func (e moneyEnv) sums(t *testing.T) (accounts, settlement int64) {
	t.Helper()
	err := e.pool.QueryRow(context.Background(), `
		select coalesce(sum(b) filter (where aggregate_type = 'account'), 0),
		       coalesce(sum(b) filter (where aggregate_type = 'settlement'), 0)
		from (select distinct on (aggregate_id) aggregate_type,
		             coalesce(payload->>'balance_after_paise', payload->>'balance_paise')::bigint as b
		      from events where aggregate_type in ('account', 'settlement') and event_type <> 'AccountOpened'
		      order by aggregate_id, version desc) last`).Scan(&accounts, &settlement)
	if err != nil {
		t.Fatal(err)
	}
	return accounts, settlement
}

// A deposit's money comes from its bank: the account and the bank's settlement shard move together, in one
// transaction. Its reference is taken once per account: the same reference and amount under any key replays
// the first; another amount is a conflict; another client is told the account does not exist.
func TestDepositHasTwoSidesAndAReferenceOnce(t *testing.T) {
	t.Parallel()
	e := newMoneyEnv(t, app.MoneyTerms{SettlementShards: 4})
	first, replayed, err := e.deposit(t, "k1", "neft-1", 5000)
	if err != nil || replayed {
		t.Fatalf("first deposit: %+v, replayed %v, %v", first, replayed, err)
	}
	var txs int
	if err := e.pool.QueryRow(context.Background(), `select count(distinct tx_id) from events
		where event_type in ('FundsDeposited', 'SettlementDebited')`).Scan(&txs); err != nil || txs != 1 {
		t.Fatalf("the deposit's two sides are in %d transactions (%v), want 1", txs, err)
	}
	if a, s := e.sums(t); a != 5000 || s != -5000 {
		t.Fatalf("accounts %d, settlement %d: want 5000 and -5000", a, s)
	}
	again, replayed, err := e.deposit(t, "another-key", "neft-1", 5000)
	if err != nil || !replayed || again.Position != first.Position {
		t.Fatalf("same reference and amount, another key: %+v, replayed %v, %v; want the first replayed", again, replayed, err)
	}
	if _, _, err := e.deposit(t, "k3", "neft-1", 6000); !errors.Is(err, app.ErrDepositReferenceConflict) {
		t.Fatalf("same reference, another amount: err = %v, want ErrDepositReferenceConflict", err)
	}
	_, _, err = e.svc.Deposit(context.Background(), app.Caller{ClientID: "psp-b", IdempotencyKey: "k1"},
		contract.DepositCommand{VPA: vpa.MustParse("alice@okbank"), Amount: paise(t, 5000), Reference: "neft-1"})
	if !errors.Is(err, domain.ErrAccountNotFound) {
		t.Fatalf("another client replaying the reference: err = %v, want ErrAccountNotFound", err)
	}
	if a, s := e.sums(t); a != 5000 || s != -5000 {
		t.Fatalf("after the repeats: accounts %d, settlement %d: want 5000 and -5000", a, s)
	}
}

// The daily cap refuses the deposit that would pass it, and nothing of it reaches the log.
func TestDepositDailyCapRefuses(t *testing.T) {
	t.Parallel()
	e := newMoneyEnv(t, app.MoneyTerms{DepositDailyCap: 10_000, SettlementShards: 2})
	if _, _, err := e.deposit(t, "k1", "r1", 9_000); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.deposit(t, "k2", "r2", 1_001); !errors.Is(err, domain.ErrDepositLimitExceeded) {
		t.Fatalf("deposit past the cap: err = %v", err)
	}
	if a, s := e.sums(t); a != 9_000 || s != -9_000 {
		t.Fatalf("accounts %d, settlement %d after a refused deposit", a, s)
	}
}

var rrnForm = regexp.MustCompile(`^[0-9]{12}$`)

// A withdrawal returns money to the bank's side with an RRN; one the balance does not cover fails with
// INSUFFICIENT_FUNDS, moves nothing and takes no RRN; only the owner may withdraw; a retry replays.
func TestWithdrawal(t *testing.T) {
	t.Parallel()
	e := newMoneyEnv(t, app.MoneyTerms{SettlementShards: 4})
	if _, _, err := e.deposit(t, "d", "r", 1000); err != nil {
		t.Fatal(err)
	}
	w, replayed, err := e.withdraw(t, "psp-a", "w1", 400)
	if err != nil || replayed || w.Status != contract.PaymentCompleted || !rrnForm.MatchString(w.RRN) || w.FailureCode != nil {
		t.Fatalf("withdrawal: %+v, replayed %v, %v", w, replayed, err)
	}
	if a, s := e.sums(t); a != 600 || s != -600 {
		t.Fatalf("accounts %d, settlement %d after the withdrawal: want 600 and -600", a, s)
	}
	again, replayed, err := e.withdraw(t, "psp-a", "w1", 400)
	if err != nil || !replayed || again.WithdrawalID != w.WithdrawalID || again.RRN != w.RRN {
		t.Fatalf("retry: %+v, replayed %v, %v", again, replayed, err)
	}
	failed, _, err := e.withdraw(t, "psp-a", "w2", 601)
	if err != nil || failed.Status != contract.PaymentFailed || failed.FailureCode == nil ||
		*failed.FailureCode != events.CodeInsufficientFunds || *failed.NPCICode != "Z9" || failed.RRN != "" {
		t.Fatalf("withdrawal past the balance: %+v, %v", failed, err)
	}
	if _, _, err := e.withdraw(t, "psp-b", "w3", 1); !errors.Is(err, domain.ErrAccountNotFound) {
		t.Fatalf("another client's withdrawal: err = %v", err)
	}
	if a, s := e.sums(t); a != 600 || s != -600 {
		t.Fatalf("accounts %d, settlement %d at the end: want 600 and -600", a, s)
	}
}

// Concurrent withdrawals and deposits, all at one bank, never overdraw an account and keep the two sides
// equal: every withdrawal that completed took its money, every one that failed took none.
func TestConcurrentWithdrawalsKeepBothSides(t *testing.T) {
	t.Parallel()
	e := newMoneyEnv(t, app.MoneyTerms{SettlementShards: 2})
	if _, _, err := e.deposit(t, "d", "r", 10_000); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	withdrawn := int64(0)
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w, _, err := e.withdraw(t, "psp-a", fmt.Sprintf("w%d", i), 500)
			if err != nil {
				t.Errorf("withdrawal %d: %v", i, err)
				return
			}
			if w.Status == contract.PaymentCompleted {
				mu.Lock()
				withdrawn += w.AmountPaise
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if withdrawn != 10_000 {
		t.Fatalf("withdrawals completed for %d, want exactly the 10000 deposited", withdrawn)
	}
	if a, s := e.sums(t); a != 0 || s != 0 {
		t.Fatalf("accounts %d, settlement %d: want 0 and 0", a, s)
	}
}

// RRNs come from reserved blocks: never repeated across allocators (replicas), and when an hour's space runs
// out the next hour's is used; past the borrowing window a debit is refused, never given a repeat.
func TestRRNsNeverRepeat(t *testing.T) {
	t.Parallel()
	pool, _ := testenv.PostgresPool(t)
	ctx := context.Background()
	seen := map[string]bool{}
	replicas := []*app.RRNs{
		app.NewRRNs(pool, app.RRNOptions{Block: 3, Tails: 10, BorrowHours: 1}),
		app.NewRRNs(pool, app.RRNOptions{Block: 4, Tails: 10, BorrowHours: 1}),
	}
	prefixes := map[string]bool{}
	given := 0
	for i := 0; ; i++ {
		l, err := replicas[i%2].Lease(ctx, 1)
		if errors.Is(err, app.ErrRRNSpaceExhausted) {
			break
		}
		if err != nil || i > 20 {
			t.Fatalf("lease %d: %v (the two hours hold 20)", i, err)
		}
		rrn, err := l.Take()
		if err != nil {
			t.Fatal(err)
		}
		if seen[rrn] || !rrnForm.MatchString(rrn) {
			t.Fatalf("rrn %q given twice or malformed", rrn)
		}
		seen[rrn], prefixes[rrn[:6]] = true, true
		given++
	}
	// A replica's unused block stays its own: the other runs out with up to a block less.
	if given < 20-4 || len(prefixes) != 2 {
		t.Fatalf("%d RRNs from %d hours before refusal; want at least 16, from the hour and the one it borrowed", given, len(prefixes))
	}
	// What a group does not take goes back, to be given next.
	fresh := app.NewRRNs(pool, app.RRNOptions{Block: 5})
	l, err := fresh.Lease(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	taken, _ := l.Take()
	l.Release()
	l2, _ := fresh.Lease(ctx, 1)
	next, _ := l2.Take()
	if next == taken || next[:6] != taken[:6] || next[6:] != fmt.Sprintf("%06d", mustAtoi(t, taken[6:])+1) {
		t.Fatalf("after a lease of 3 that used 1 (%s), the next RRN is %s, want the first one given back", taken, next)
	}
}

// A replayed or rejected debit takes no RRN: the RRNs the log holds are consecutive.
func TestReplaysAndRejectionsTakeNoRRN(t *testing.T) {
	t.Parallel()
	e := newMoneyEnv(t, app.MoneyTerms{SettlementShards: 1})
	if _, _, err := e.deposit(t, "d", "r", 300); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, _, err := e.svc.OpenAccount(ctx, app.Caller{ClientID: "psp-b", IdempotencyKey: "open"},
		contract.OpenAccount{VPA: vpa.MustParse("bob@okbank"), HolderName: "Bob"}); err != nil {
		t.Fatal(err)
	}
	var payments []uuid.UUID
	for i := range 5 {
		p, _, err := e.svc.InitiatePayment(ctx, app.Caller{ClientID: "psp-a", IdempotencyKey: fmt.Sprint("p", i)},
			contract.InitiatePayment{Payer: vpa.MustParse("alice@okbank"), Payee: vpa.MustParse("bob@okbank"), Amount: paise(t, 100)})
		if err != nil {
			t.Fatal(err)
		}
		payments = append(payments, uuid.MustParse(p.PaymentID))
	}
	var steps []contract.Step
	for _, id := range payments {
		// Each debit asked twice in the batch, and the last two are rejected for want of funds.
		steps = append(steps, contract.Step{PaymentID: id, Step: contract.StepDebit}, contract.Step{PaymentID: id, Step: contract.StepDebit})
	}
	if _, err := e.svc.Steps(ctx, app.Caller{ClientID: "wf"}, steps); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Steps(ctx, app.Caller{ClientID: "wf"}, steps); err != nil {
		t.Fatal(err)
	}
	w, _, err := e.withdraw(t, "psp-a", "w", 1)
	if err != nil || w.Status != contract.PaymentFailed {
		t.Fatalf("withdrawal from an empty account: %+v, %v", w, err)
	}
	rows, err := e.pool.Query(ctx, `select payload->>'rrn' from events where payload ? 'rrn' order by global_position`)
	if err != nil {
		t.Fatal(err)
	}
	var rrns []string
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			t.Fatal(err)
		}
		rrns = append(rrns, r)
	}
	if len(rrns) != 3 {
		t.Fatalf("%d RRNs in the log, want the 3 debits that moved money: %v", len(rrns), rrns)
	}
	for i, r := range rrns {
		if r[6:] != fmt.Sprintf("%06d", i) {
			t.Fatalf("RRNs %v are not consecutive: replays or rejections took some", rrns)
		}
	}
}

// The log refuses a second event with an RRN already given, whoever writes it.
func TestLogRefusesARepeatedRRN(t *testing.T) {
	t.Parallel()
	pool, _ := testenv.PostgresPool(t)
	insert := `insert into events (event_id, aggregate_id, aggregate_type, event_type, version, payload)
		values ($1, $2, 'account', 'AccountDebited', 1, '{"rrn": "612345000001"}')`
	ctx := context.Background()
	if _, err := pool.Exec(ctx, insert, uuid.New(), "a@x"); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, insert, uuid.New(), "b@x"); err == nil {
		t.Fatal("a second debit with the same RRN was stored")
	}
}

// Approving a collect request and starting its payment commit together: when the payment cannot start,
// no approval is left behind and the request can still be answered.
func TestCollectApprovalIsAllOrNothing(t *testing.T) {
	t.Parallel()
	pool, _ := testenv.PostgresPool(t)
	store := app.NewStore(pool)
	svc := app.New(store, domain.Limits{})
	ctx := context.Background()
	for _, a := range []struct{ client, vpa, kind, mcc string }{
		{"psp-a", "alice@okbank", "", ""}, {"psp-m", "shop@okbank", contract.AccountEntity, "5411"}} {
		if _, _, err := svc.OpenAccount(ctx, app.Caller{ClientID: a.client, IdempotencyKey: "open-" + a.vpa},
			contract.OpenAccount{VPA: vpa.MustParse(a.vpa), HolderName: "X", Type: a.kind, MCC: a.mcc}); err != nil {
			t.Fatal(err)
		}
	}
	col, _, err := svc.RequestCollect(ctx, app.Caller{ClientID: "psp-m", IdempotencyKey: "c"}, contract.RequestCollect{
		Payee: vpa.MustParse("shop@okbank"), Payer: vpa.MustParse("alice@okbank"), Amount: paise(t, 100), ExpiresIn: 600})
	if err != nil {
		t.Fatal(err)
	}
	cid := uuid.MustParse(col.CollectID)
	// Something already sits at the start of the payment's stream (as a forged or half-restored log
	// might have): the payment cannot be initiated.
	if _, err := pool.Exec(ctx, `insert into events (event_id, aggregate_id, aggregate_type, event_type, version, payload)
		values ($1, $2, 'payment', 'PaymentCompleted', 1, '{}')`, uuid.New(), ids.CollectPayment(cid).String()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.ApproveCollect(ctx, app.Caller{ClientID: "psp-a", IdempotencyKey: "a"}, cid); err == nil {
		t.Fatal("the approval succeeded although its payment could not start")
	}
	var approvals int
	if err := pool.QueryRow(ctx, `select count(*) from events where aggregate_id = $1 and event_type = 'CollectApproved'`,
		cid.String()).Scan(&approvals); err != nil || approvals != 0 {
		t.Fatalf("%d approvals left behind (%v), want none", approvals, err)
	}
	if d, _, err := svc.DeclineCollect(ctx, app.Caller{ClientID: "psp-a", IdempotencyKey: "d"}, cid); err != nil || d.Status != "DECLINED" {
		t.Fatalf("the request could not be declined after the failed approval: %+v, %v", d, err)
	}
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
