// Command bankload is a bank's workload against a running stack, through the public API only, for the
// fault scenarios of scripts/compose-faults.sh: it opens persons and merchants, funds the persons, then
// pays at a steady rate for a while, retrying every request that may be retried with the same
// Idempotency-Key, and at the end checks what a bank would:
//
//   - every acknowledged payment (202) is found and ends COMPLETED or FAILED: nothing acknowledged is lost;
//   - every payment whose answer was lost (a cut connection, a 503) is settled by asking again with its
//     key: no payment is left in doubt;
//   - every balance is exactly its deposits less its completed payments out plus those in, and the
//     balances add up to the deposits: money is conserved;
//   - no 5xx other than 503 (which the API documents as retryable) was ever answered.
//
// It prints one VERDICT line and exits 1 when any check fails. `bankload verify` reads the state a run
// saved (-state) and checks that every payment and balance is still as it was (after `down` and `up`).
//
//	go run . run -url http://localhost:8080 -name kill-gateway -duration 60s -rate 20 -state /tmp/s.json
//	go run . verify -url http://localhost:8080 -state /tmp/s.json
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type account struct {
	VPA     string `json:"vpa"`
	Person  bool   `json:"person"`
	Deposit int64  `json:"deposit"`
	Balance int64  `json:"balance"` // as verified at the end of the run
}

type payment struct {
	Key    string `json:"key"`
	ID     string `json:"id"`
	Payer  string `json:"payer"`
	Payee  string `json:"payee"`
	Amount int64  `json:"amount"`
	Status string `json:"status"`
	acked  bool
}

type state struct {
	Run      string     `json:"run"`
	Accounts []*account `json:"accounts"`
	Payments []*payment `json:"payments"`
}

type counters struct {
	requests, retries, s503, s429, s409, other5xx, netErrs, unexpected atomic.Int64
}

type client struct {
	base, key string
	http      *http.Client
	c         counters
	mu        sync.Mutex
	notes     []string // the first few unexpected answers, for the verdict
	lastOK    atomic.Int64
	outageMu  sync.Mutex
	outage    time.Duration // the longest time between two successful answers while the load ran
	maxPos    atomic.Int64
}

func (c *client) note(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.notes) < 8 {
		c.notes = append(c.notes, fmt.Sprintf(format, args...))
	}
}

func (c *client) ok() {
	now := time.Now().UnixNano()
	prev := c.lastOK.Swap(now)
	if prev != 0 {
		if gap := time.Duration(now - prev); gap > 0 {
			c.outageMu.Lock()
			if gap > c.outage {
				c.outage = gap
			}
			c.outageMu.Unlock()
		}
	}
}

// do sends one request and returns the status and body, or an error for a transport failure.
func (c *client) do(ctx context.Context, method, path string, body any, idemKey string) (int, map[string]any, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, method, c.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if idemKey != "" {
		req.Header.Set("Idempotency-Key", idemKey)
	}
	c.c.requests.Add(1)
	resp, err := c.http.Do(req)
	if err != nil {
		c.c.netErrs.Add(1)
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		c.c.netErrs.Add(1)
		return 0, nil, err
	}
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	switch {
	case resp.StatusCode == 503:
		c.c.s503.Add(1)
	case resp.StatusCode == 429:
		c.c.s429.Add(1)
	case resp.StatusCode == 409:
		c.c.s409.Add(1)
	case resp.StatusCode >= 500:
		c.c.other5xx.Add(1)
		c.note("%s %s: HTTP %d %s", method, path, resp.StatusCode, strings.TrimSpace(string(raw)))
	case resp.StatusCode < 300:
		c.ok()
		if p, ok := m["position"].(string); ok {
			c.observePos(p)
		} else if p, ok := m["position"].(float64); ok {
			c.observePos(strconv.FormatInt(int64(p), 10))
		}
	}
	return resp.StatusCode, m, nil
}

// observePos keeps the largest position seen, when positions are plain integers; other forms are left to
// the server's own ordering and the balance read waits with the newest one seen verbatim.
func (c *client) observePos(p string) {
	if n, err := strconv.ParseInt(p, 10, 64); err == nil {
		for {
			cur := c.maxPos.Load()
			if n <= cur || c.maxPos.CompareAndSwap(cur, n) {
				return
			}
		}
	}
}

// retryable: the answers after which the same request, with the same key, is sent again.
func retryable(status int, err error) bool {
	return err != nil || status == 503 || status == 429 || status == 409 || status >= 500
}

// send repeats a request until an answer that is not retryable, or until ctx ends (then the last error).
func (c *client) send(ctx context.Context, method, path string, body any, idemKey string) (int, map[string]any, error) {
	backoff := 50 * time.Millisecond
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			c.c.retries.Add(1)
		}
		status, m, err := c.do(ctx, method, path, body, idemKey)
		if !retryable(status, err) {
			return status, m, nil
		}
		if ctx.Err() != nil {
			if err == nil {
				err = fmt.Errorf("HTTP %d", status)
			}
			return status, m, err
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff + rand.N(backoff)):
		}
		backoff = min(backoff*2, time.Second)
	}
}

func str(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

func main() {
	if len(os.Args) < 2 || (os.Args[1] != "run" && os.Args[1] != "verify") {
		fmt.Fprintln(os.Stderr, "usage: bankload run|verify [flags]  (bankload run -h)")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	base := fs.String("url", "http://localhost:8080", "the gateway's base URL")
	key := fs.String("key", "alpha-secret", "API key")
	name := fs.String("name", "load", "the scenario's name, for the verdict line")
	duration := fs.Duration("duration", 60*time.Second, "how long payments are sent")
	rate := fs.Float64("rate", 20, "payments started per second")
	workers := fs.Int("workers", 8, "payments in flight at most")
	persons := fs.Int("persons", 40, "paying accounts")
	merchants := fs.Int("merchants", 10, "merchant accounts paid")
	settle := fs.Duration("settle", 3*time.Minute, "longest wait for the last payments and balances after the load")
	statePath := fs.String("state", "", "where to save the run's state (run) or read it (verify)")
	_ = fs.Parse(os.Args[2:])

	c := &client{base: strings.TrimRight(*base, "/"), key: *key, http: &http.Client{
		Transport: &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second},
	}}
	var failures []string
	var st *state
	start := time.Now()
	if os.Args[1] == "verify" {
		st = load(*statePath)
		failures = verifyKept(c, st, *settle)
	} else {
		st = &state{Run: fmt.Sprintf("%x", time.Now().UnixNano())[6:]}
		failures = run(c, st, *duration, *rate, *workers, *persons, *merchants, *settle)
		if *statePath != "" {
			save(*statePath, st)
		}
	}
	failures = append(failures, c.notes...)
	if n := c.c.other5xx.Load(); n > 0 {
		failures = append(failures, fmt.Sprintf("%d answers were a 5xx other than 503", n))
	}
	if n := c.c.unexpected.Load(); n > 0 {
		failures = append(failures, fmt.Sprintf("%d unexpected answers", n))
	}

	completed, failed := 0, 0
	for _, p := range st.Payments {
		switch p.Status {
		case "COMPLETED":
			completed++
		case "FAILED":
			failed++
		}
	}
	verdict := "PASS"
	if len(failures) > 0 {
		verdict = "FAIL"
		for i, f := range failures {
			if i == 12 {
				fmt.Printf("  ... and %d more\n", len(failures)-i)
				break
			}
			fmt.Println("  - " + f)
		}
	}
	fmt.Printf("VERDICT %s: %s payments=%d completed=%d failed=%d requests=%d retries=%d 503s=%d 429s=%d 409s=%d other5xx=%d conn_errors=%d longest_gap=%.1fs took=%.0fs\n",
		*name, verdict, len(st.Payments), completed, failed, c.c.requests.Load(), c.c.retries.Load(), c.c.s503.Load(),
		c.c.s429.Load(), c.c.s409.Load(), c.c.other5xx.Load(), c.c.netErrs.Load(), c.outage.Seconds(), time.Since(start).Seconds())
	if verdict != "PASS" {
		os.Exit(1)
	}
}

func run(c *client, st *state, duration time.Duration, rate float64, workers, persons, merchants int, settle time.Duration) []string {
	var failures []string
	// Setup may meet a fault too: it retries like the rest, for at most settle.
	sctx, cancel := context.WithTimeout(context.Background(), settle)
	defer cancel()
	for i := 0; i < persons+merchants; i++ {
		a := &account{Person: i < persons}
		body := map[string]any{"holder_name": "Load " + strconv.Itoa(i)}
		if a.Person {
			a.VPA = fmt.Sprintf("p%d.%s@loadbank", i, st.Run)
			a.Deposit = 200000
		} else {
			a.VPA = fmt.Sprintf("m%d.%s@loadshop", i, st.Run)
			body["type"], body["mcc"] = "ENTITY", "5411"
		}
		body["vpa"] = a.VPA
		status, m, err := c.send(sctx, "POST", "/v1/accounts", body, "open-"+a.VPA)
		if err != nil || status != 201 {
			return append(failures, fmt.Sprintf("open %s: HTTP %d %v %v", a.VPA, status, err, m))
		}
		if a.Deposit > 0 {
			status, m, err = c.send(sctx, "POST", "/v1/accounts/"+a.VPA+"/deposits",
				map[string]any{"amount_paise": a.Deposit, "reference": "load-" + st.Run}, "fund-"+a.VPA)
			if err != nil || status != 201 {
				return append(failures, fmt.Sprintf("deposit %s: HTTP %d %v %v", a.VPA, status, err, m))
			}
		}
		st.Accounts = append(st.Accounts, a)
	}
	fmt.Printf("bankload %s: %d persons funded, %d merchants; paying %.0f/s for %s\n", st.Run, persons, merchants, rate, duration)

	// The load: one payment started every 1/rate, at most `workers` in flight. A payment is acknowledged
	// by a 202; until then it is retried with its key (for as long as the load runs and settle after).
	pctx, pcancel := context.WithTimeout(context.Background(), duration+settle)
	defer pcancel()
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, workers)
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	end := time.Now().Add(duration)
	var maxAck time.Duration
	for n := 0; time.Now().Before(end); n++ {
		<-tick.C
		sem <- struct{}{}
		payer := st.Accounts[rand.N(persons)]
		payee := st.Accounts[persons+rand.N(merchants)]
		if rand.N(4) == 0 { // a quarter of the payments go from person to person
			payee = st.Accounts[rand.N(persons)]
			for payee == payer {
				payee = st.Accounts[rand.N(persons)]
			}
		}
		p := &payment{Key: fmt.Sprintf("pay-%s-%d", st.Run, n), Payer: payer.VPA, Payee: payee.VPA, Amount: 100 + rand.Int64N(900)}
		mu.Lock()
		st.Payments = append(st.Payments, p)
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			t0 := time.Now()
			if pay(pctx, c, p) {
				mu.Lock()
				maxAck = max(maxAck, time.Since(t0))
				mu.Unlock()
				// A third of the payers look their payment up, as an app would (the read side's share).
				if rand.N(3) == 0 {
					c.send(pctx, "GET", "/v1/payments/"+p.ID, nil, "") //nolint:errcheck // checked at the end
				}
			}
		}()
	}
	wg.Wait()
	fmt.Printf("bankload %s: %d payments sent, slowest acknowledgement (with its retries) %.1fs\n", st.Run, len(st.Payments), maxAck.Seconds())
	return append(failures, settleAll(c, st, settle)...)
}

// pay sends a payment until it is answered for good; it reports whether it was acknowledged (202).
func pay(ctx context.Context, c *client, p *payment) bool {
	status, m, err := c.send(ctx, "POST", "/v1/payments",
		map[string]any{"payer_vpa": p.Payer, "payee_vpa": p.Payee, "amount_paise": p.Amount, "note": "load"}, p.Key)
	switch {
	case err != nil:
		return false // in doubt: settled later with the same key
	case status == 202:
		p.ID, p.acked = str(m, "payment_id"), true
		return true
	default:
		c.c.unexpected.Add(1)
		c.note("payment %s: HTTP %d %v", p.Key, status, m)
		p.Status = "REJECTED"
		return false
	}
}

// settleAll asks again for every payment in doubt, waits for each to end, then checks the balances.
func settleAll(c *client, st *state, settle time.Duration) []string {
	var failures []string
	ctx, cancel := context.WithTimeout(context.Background(), settle)
	defer cancel()
	inDoubt := 0
	for _, p := range st.Payments {
		if p.ID == "" && p.Status == "" {
			inDoubt++
			if !pay(ctx, c, p) && p.Status == "" {
				failures = append(failures, fmt.Sprintf("payment %s: still no answer after %s", p.Key, settle))
			}
		}
	}
	// Every acknowledged payment must be found and end COMPLETED or FAILED.
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, p := range st.Payments {
		if p.ID == "" {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			last := ""
			for ctx.Err() == nil {
				status, m, err := c.send(ctx, "GET", "/v1/payments/"+p.ID+"?wait=5s", nil, "")
				if err != nil {
					break
				}
				if status == 404 {
					// Not in the read model yet: the consumers may be catching up after a fault. Lost
					// only if it is still not there when settle ends.
					last = fmt.Sprintf("HTTP 404 %v", m)
					time.Sleep(time.Second)
					continue
				}
				if status != 200 {
					mu.Lock()
					failures = append(failures, fmt.Sprintf("acknowledged payment %s (%s): HTTP %d %v", p.ID, p.Key, status, m))
					mu.Unlock()
					return
				}
				if s := str(m, "status"); s == "COMPLETED" || s == "FAILED" {
					p.Status = s
					return
				}
			}
			mu.Lock()
			failures = append(failures, fmt.Sprintf("payment %s (%s) not terminal after %s %s", p.ID, p.Key, settle, last))
			mu.Unlock()
		}()
	}
	wg.Wait()
	if inDoubt > 0 {
		fmt.Printf("bankload %s: %d payments were in doubt at the end of the load and were settled by their keys\n", st.Run, inDoubt)
	}
	return append(failures, checkBalances(ctx, c, st, false)...)
}

// checkBalances compares every balance with its deposits and completed payments, and their sum with
// the deposits. kept: compare with the balances a previous run saved instead of setting them.
func checkBalances(ctx context.Context, c *client, st *state, kept bool) []string {
	var failures []string
	want := map[string]int64{}
	var deposits, total int64
	for _, a := range st.Accounts {
		want[a.VPA] += a.Deposit
		deposits += a.Deposit
	}
	for _, p := range st.Payments {
		if p.Status == "COMPLETED" {
			want[p.Payer] -= p.Amount
			want[p.Payee] += p.Amount
		}
	}
	q := ""
	if pos := c.maxPos.Load(); pos > 0 {
		q = "?min_position=" + strconv.FormatInt(pos, 10)
	}
	for _, a := range st.Accounts {
		var got int64 = -1
		// The projection may trail the last payment by a moment: read until it agrees or settle ends.
		for ctx.Err() == nil {
			status, m, err := c.send(ctx, "GET", "/v1/accounts/"+a.VPA+"/balance"+q, nil, "")
			if err != nil || status != 200 {
				failures = append(failures, fmt.Sprintf("balance of %s: HTTP %d %v %v", a.VPA, status, err, m))
				break
			}
			b, _ := m["balance_paise"].(float64)
			got = int64(b)
			if got == want[a.VPA] {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		total += got
		if got != want[a.VPA] {
			failures = append(failures, fmt.Sprintf("balance of %s is %d, its deposits and completed payments make %d", a.VPA, got, want[a.VPA]))
		}
		if kept && got != a.Balance {
			failures = append(failures, fmt.Sprintf("balance of %s was %d before, %d now", a.VPA, a.Balance, got))
		}
		a.Balance = got
	}
	if total != deposits {
		failures = append(failures, fmt.Sprintf("money not conserved: the balances add up to %d, the deposits to %d", total, deposits))
	} else {
		fmt.Printf("bankload %s: %d balances checked; they add up to the deposits, %d paise\n", st.Run, len(st.Accounts), deposits)
	}
	return failures
}

// verifyKept checks that every payment a previous run saved is still there with its status, and every
// balance is what it was.
func verifyKept(c *client, st *state, settle time.Duration) []string {
	var failures []string
	ctx, cancel := context.WithTimeout(context.Background(), settle)
	defer cancel()
	ids := make([]*payment, 0, len(st.Payments))
	for _, p := range st.Payments {
		if p.ID != "" {
			ids = append(ids, p)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i].Key < ids[j].Key })
	for _, p := range ids {
		status, m, err := c.send(ctx, "GET", "/v1/payments/"+p.ID, nil, "")
		if err != nil || status != 200 || str(m, "status") != p.Status {
			failures = append(failures, fmt.Sprintf("payment %s was %s, now HTTP %d %v %v", p.ID, p.Status, status, str(m, "status"), err))
			if len(failures) > 5 {
				break
			}
		}
	}
	fmt.Printf("bankload %s: %d payments found as they were\n", st.Run, len(ids)-len(failures))
	return append(failures, checkBalances(ctx, c, st, true)...)
}

func save(path string, st *state) {
	b, _ := json.MarshalIndent(st, "", " ")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
}

func load(path string) *state {
	b, err := os.ReadFile(path)
	if err == nil {
		st := &state{}
		if err = json.Unmarshal(b, st); err == nil {
			return st
		}
	}
	fmt.Fprintln(os.Stderr, errors.Join(errors.New("bankload verify: cannot read -state"), err))
	os.Exit(2)
	return nil
}
