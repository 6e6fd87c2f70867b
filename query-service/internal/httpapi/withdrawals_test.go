package httpapi_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"upi/shared/contract/projection"
	"upi/shared/platform/eventstore"
)

// withdrawal writes a withdrawal row as the accounts projection does: code "" for a completed one.
func (f *fixture) withdrawal(vpa, owner string, amount int64, code, rrn string) (uuid.UUID, eventstore.Position) {
	f.t.Helper()
	id := uuid.New()
	p := f.next()
	var codeArg, rrnArg *string
	if code != "" {
		codeArg = &code
	}
	if rrn != "" {
		rrnArg = &rrn
	}
	status := "COMPLETED"
	if code != "" {
		status = "FAILED"
	}
	f.exec(`insert into withdrawals (withdrawal_id, vpa, owner_client_id, amount_paise, reference, status, failure_code,
		rrn, created_at, updated_at, tx_id, global_position)
		values ($1, $2, $3, $4, 'cash-1', $5, $6, $7, now(), now(), $8::text::xid8, $9)`,
		id, vpa, owner, amount, status, codeArg, rrnArg, strconv.FormatUint(p.TxID, 10), p.GlobalPosition)
	return id, p
}

// A withdrawal is its account owner's alone; a failed one carries its code and the NPCI code.
func TestWithdrawalsAreVisibleToTheirOwnerOnly(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 100*time.Millisecond)
	f.account("alice@okbank", "psp-alpha", 0)
	done, at := f.withdrawal("alice@okbank", "psp-alpha", 2500, "", "612312000777")
	failed, _ := f.withdrawal("alice@okbank", "psp-alpha", 9000, "INSUFFICIENT_FUNDS", "")
	cp := f.advance(projection.Accounts)

	r := f.get("psp-alpha", "/v1/withdrawals/"+done.String())
	expect(t, r, 200, "")
	want := map[string]any{"withdrawal_id": done.String(), "vpa": "alice@okbank", "amount_paise": float64(2500),
		"reference": "cash-1", "status": "COMPLETED", "failure_code": nil, "npci_code": nil, "rrn": "612312000777",
		"position": at.Token()}
	for k, v := range want {
		if got, ok := r.body[k]; !ok || got != v {
			t.Errorf("%s = %v, want %v", k, got, v)
		}
	}
	if len(r.body) != 11 || r.header.Get("X-Projection-Position") != cp.Token() {
		t.Errorf("withdrawal %v at %s, want the contract's 11 fields at %s", r.body, r.header.Get("X-Projection-Position"), cp.Token())
	}
	r = f.get("psp-alpha", "/v1/withdrawals/"+failed.String())
	expect(t, r, 200, "")
	if r.body["status"] != "FAILED" || r.body["failure_code"] != "INSUFFICIENT_FUNDS" || r.body["npci_code"] != "Z9" {
		t.Errorf("failed withdrawal: %v", r.body)
	}
	if _, has := r.body["rrn"]; has {
		t.Errorf("a failed withdrawal shows an RRN: %v", r.body)
	}

	expect(t, f.get("psp-beta", "/v1/withdrawals/"+done.String()), 404, "WITHDRAWAL_NOT_FOUND")
	expect(t, f.get("psp-alpha", "/v1/withdrawals/"+uuid.NewString()), 404, "WITHDRAWAL_NOT_FOUND")
	expect(t, f.get("", "/v1/withdrawals/"+done.String()), 401, "UNAUTHENTICATED")
	expect(t, f.get("psp-alpha", "/v1/withdrawals/not-a-uuid"), 400, "VALIDATION")
	expect(t, f.get("psp-alpha", "/v1/withdrawals/"+done.String()+"?wait=31s"), 400, "VALIDATION")
	expect(t, f.get("psp-alpha", "/v1/withdrawals/"+done.String()+"?min_position=nonsense"), 400, "VALIDATION")
	// A non-owner is answered at once, whatever the wait: the row exists, it is just not theirs.
	start := time.Now()
	expect(t, f.get("psp-beta", "/v1/withdrawals/"+done.String()+"?wait=10s"), 404, "WITHDRAWAL_NOT_FOUND")
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("a non-owner waited %v", el)
	}
}

// ?wait= waits for the withdrawal to be projected (it is terminal once it is), and answers 404 if it
// never is within the wait.
func TestWithdrawalWaitAnswersWhenItIsProjected(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 100*time.Millisecond)
	f.account("alice@okbank", "psp-alpha", 0)
	f.advance(projection.Accounts)

	start := time.Now()
	expect(t, f.get("psp-alpha", "/v1/withdrawals/"+uuid.NewString()+"?wait=300ms"), 404, "WITHDRAWAL_NOT_FOUND")
	if el := time.Since(start); el < 250*time.Millisecond {
		t.Errorf("an unknown withdrawal answered after %v, before its wait", el)
	}

	id := uuid.New()
	done := make(chan response, 1)
	go func() { done <- f.get("psp-alpha", "/v1/withdrawals/"+id.String()+"?wait=20s") }()
	time.Sleep(300 * time.Millisecond)
	p := f.next()
	f.exec(`insert into withdrawals values ($1, 'alice@okbank', 'psp-alpha', 100, 'r', 'COMPLETED', null, '612312000001',
		now(), now(), $2::text::xid8, $3)`, id, strconv.FormatUint(p.TxID, 10), p.GlobalPosition)
	projectedAt := time.Now()
	f.advance(projection.Accounts)
	select {
	case r := <-done:
		if r.status != 200 || r.body["withdrawal_id"] != id.String() || r.body["status"] != "COMPLETED" {
			t.Fatalf("long-poll answered %d %v", r.status, r.body)
		}
		if el := time.Since(projectedAt); el > 2*time.Second {
			t.Errorf("long-poll answered %v after the withdrawal was projected", el)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("long-poll did not answer when the withdrawal was projected")
	}
}

// The transaction list shows a withdrawal with its id and RRN.
func TestTransactionsShowWithdrawals(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 100*time.Millisecond)
	f.account("alice@okbank", "psp-alpha", 500)
	id := uuid.New()
	f.exec(`insert into account_transactions (vpa, version, kind, amount_paise, balance_after_paise, reference, rrn, at,
		tx_id, global_position, withdrawal_id) values
		('alice@okbank', 2, 'DEPOSIT', 1000, 1000, 'top-up', null, now(), '201'::xid8, 201, null),
		('alice@okbank', 3, 'WITHDRAWAL', 500, 500, 'cash-1', '612312000002', now(), '202'::xid8, 202, $1)`, id)
	f.advance(projection.Accounts)
	r := f.get("psp-alpha", "/v1/accounts/alice@okbank/transactions")
	expect(t, r, 200, "")
	items, _ := r.body["items"].([]any)
	if len(items) != 2 {
		t.Fatalf("items %v", r.body)
	}
	w, _ := items[0].(map[string]any)
	if w["kind"] != "WITHDRAWAL" || w["withdrawal_id"] != id.String() || w["rrn"] != "612312000002" || w["reference"] != "cash-1" {
		t.Errorf("withdrawal movement %v", w)
	}
	if d, _ := items[1].(map[string]any); d["withdrawal_id"] != nil {
		t.Errorf("a deposit shows a withdrawal_id: %v", d)
	}
}

// Operators read every bank's settlement account, its shards summed, sorted by bank, with no client.
func TestSettlementAccountsSumTheShardsOfEachBank(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 100*time.Millisecond)
	expect(t, f.get("psp-alpha", "/ops/settlement-accounts"), 403, "FORBIDDEN") // a client's read: no
	r := f.getOps("/ops/settlement-accounts")
	expect(t, r, 200, "")
	if items, ok := r.body["items"].([]any); !ok || len(items) != 0 {
		t.Fatalf("no bank yet: %v", r.body)
	}

	shard := func(bank string, n int, balance, deposits, withdrawals int64) eventstore.Position {
		p := f.next()
		f.exec(`insert into settlement_accounts values ($1, $2, $3, $4, $5, $6, now(), $7::text::xid8, $8)`,
			bank, n, balance, deposits, withdrawals, deposits+withdrawals, strconv.FormatUint(p.TxID, 10), p.GlobalPosition)
		return p
	}
	shard("paybank", 3, -700, 1, 0)
	shard("okbank", 0, -10000, 2, 0)
	latest := shard("okbank", 7, 1500, 1, 2)
	shard("okbank", 12, -20, 1, 0)
	f.exec(`update settlement_accounts set tx_id = '1'::xid8, global_position = 1 where bank = 'okbank' and shard = 12`)
	cp := f.advance(projection.Accounts)

	r = f.getOps("/ops/settlement-accounts?min_position=" + cp.Token())
	expect(t, r, 200, "")
	if r.header.Get("X-Projection-Position") != cp.Token() || r.header.Get("X-Projection-Stale") != "" {
		t.Errorf("headers %v", r.header)
	}
	items, _ := r.body["items"].([]any)
	var got []string
	for _, it := range items {
		m := it.(map[string]any)
		got = append(got, strings.Join([]string{m["bank"].(string), strconv.FormatFloat(m["balance_paise"].(float64), 'f', 0, 64),
			strconv.FormatFloat(m["deposits"].(float64), 'f', 0, 64), strconv.FormatFloat(m["withdrawals"].(float64), 'f', 0, 64)}, " "))
		if len(m) != 6 || m["updated_at"] == "" {
			t.Errorf("item %v, want the contract's 6 fields", m)
		}
	}
	if strings.Join(got, "|") != "okbank -8520 4 2|paybank -700 1 0" {
		t.Errorf("settlement accounts %v", got)
	}
	if okbank, _ := items[0].(map[string]any); okbank["position"] != latest.Token() {
		t.Errorf("okbank's position %v, want its latest shard move's %s", okbank["position"], latest.Token())
	}
	expect(t, f.getOps("/ops/settlement-accounts?min_position=nonsense"), 400, "VALIDATION")
}
