package downstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"upi/api-gateway/internal/app"
	"upi/shared/contract"
)

// fakeService answers a command with its body echoed (201, a Location naming its key); a command whose
// body is "hold" is answered once release is closed. It records each request it receives.
type fakeService struct {
	t       *testing.T
	release chan struct{}
	// batch answers a batch request; nil: each item as a single command.
	batch func(w http.ResponseWriter, r *http.Request)

	mu       sync.Mutex
	requests []string      // "POST /v1/payments" or "POST /internal/commands (n items)"
	arrived  chan struct{} // a value for each request received
}

func newFakeService(t *testing.T) (*fakeService, *httptest.Server) {
	f := &fakeService{t: t, release: make(chan struct{}), arrived: make(chan struct{}, 100)}
	srv := httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeService) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if r.URL.Path == contract.PathCommandBatch {
		var req contract.BatchRequest
		if err := json.Unmarshal(body, &req); err != nil {
			f.t.Errorf("batch body: %v", err)
		}
		f.record(fmt.Sprintf("%s %s (%d items)", r.Method, r.URL.Path, len(req.Items)))
		if f.batch != nil {
			f.batch(w, r)
			return
		}
		res := contract.BatchResponse{}
		for _, it := range req.Items {
			res.Results = append(res.Results, contract.BatchResult{Status: http.StatusCreated,
				Header: map[string]string{"Content-Type": "application/json", "Location": "/v1/things/" + it.IdempotencyKey},
				Body:   it.Body})
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(res)
		return
	}
	f.record(r.Method + " " + r.URL.Path)
	if string(body) == "hold" {
		<-f.release
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Location", "/v1/things/"+r.Header.Get(contract.HeaderIdempotencyKey))
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write(body)
}

func (f *fakeService) record(s string) {
	f.mu.Lock()
	f.requests = append(f.requests, s)
	f.mu.Unlock()
	f.arrived <- struct{}{}
}

func (f *fakeService) seen() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requests...)
}

func newTestBatcher(url string, concurrency int) *Batcher {
	c := NewClient(prometheus.NewRegistry(), nil)
	e := c.Endpoint(Service{Name: "command-service", BaseURL: url}, http.MethodPost)
	return c.NewBatcher(e, concurrency, prometheus.NewRegistry())
}

func command(key, body string) app.Call {
	return app.Call{Path: "/v1/payments", Client: "psp-alpha", RequestID: "req-" + key, Key: key, Body: []byte(body), Timeout: 5 * time.Second}
}

// queued is the number of commands waiting in b.
func (b *Batcher) queued() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.queue)
}

// A command that finds the service idle goes at once, as its own request: one after another, each is sent
// alone, the moment it is called.
func TestBatcherSendsALoneCommandAtOnce(t *testing.T) {
	f, srv := newFakeService(t)
	b := newTestBatcher(srv.URL, 1)
	for i := range 20 {
		key := fmt.Sprintf("k%d", i)
		start := time.Now()
		resp, err := b.Call(context.Background(), command(key, `{"n":1}`))
		if err != nil || resp.Status != http.StatusCreated || string(resp.Body) != `{"n":1}` || resp.Header.Get("Location") != "/v1/things/"+key {
			t.Fatalf("call %d: %v %+v", i, err, resp)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("a lone command took %s", d)
		}
	}
	for i, r := range f.seen() {
		if r != "POST /v1/payments" {
			t.Fatalf("request %d was %q, want each command alone", i, r)
		}
	}
}

// Commands that arrive while every place is taken wait, and are not sent on any timer: they go together, in
// one batch, as soon as a request returns, and each caller gets its own answer.
func TestBatcherSendsWhatWaitedTogetherWhenARequestReturns(t *testing.T) {
	f, srv := newFakeService(t)
	b := newTestBatcher(srv.URL, 1)

	held := make(chan error, 1)
	go func() {
		_, err := b.Call(context.Background(), command("first", "hold"))
		held <- err
	}()
	<-f.arrived
	const n = 5
	type answer struct {
		resp *app.Response
		err  error
	}
	answers := make([]answer, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			resp, err := b.Call(context.Background(), command(fmt.Sprintf("k%d", i), fmt.Sprintf(`{"n":%d}`, i)))
			answers[i] = answer{resp, err}
		})
	}
	for b.queued() < n {
		time.Sleep(time.Millisecond)
	}
	// Nothing goes while the place is taken, however long that is.
	time.Sleep(200 * time.Millisecond)
	if got := f.seen(); len(got) != 1 {
		t.Fatalf("requests while the first was under way: %q", got)
	}
	close(f.release)
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if got := f.seen(); len(got) != 2 || got[1] != fmt.Sprintf("POST %s (%d items)", contract.PathCommandBatch, n) {
		t.Fatalf("requests = %q, want the first alone and then one batch of %d", got, n)
	}
	for i, a := range answers {
		key := fmt.Sprintf("k%d", i)
		if a.err != nil || a.resp.Status != http.StatusCreated || string(a.resp.Body) != fmt.Sprintf(`{"n":%d}`, i) ||
			a.resp.Header.Get("Location") != "/v1/things/"+key {
			t.Fatalf("command %d answered %v %+v", i, a.err, a.resp)
		}
	}
}

// hold takes b's only place with a command the service holds, and queues n more behind it; it returns
// the queued commands' errors once the service released the first.
func holdAndQueue(t *testing.T, f *fakeService, b *Batcher, n int, timeout time.Duration) []error {
	t.Helper()
	go func() { _, _ = b.Call(context.Background(), command("first", "hold")) }()
	<-f.arrived
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			c := command(fmt.Sprintf("k%d", i), `{}`)
			c.Timeout = timeout
			_, errs[i] = b.Call(context.Background(), c)
		})
	}
	for b.queued() < n {
		time.Sleep(time.Millisecond)
	}
	close(f.release)
	wg.Wait()
	return errs
}

// A batch that gets no answer fails each of its commands as a lone one would: unavailable, or timed out.
func TestBatcherFailsEachCommandOfAFailedBatch(t *testing.T) {
	t.Run("connection broken", func(t *testing.T) {
		f, srv := newFakeService(t)
		f.batch = func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) }
		for i, err := range holdAndQueue(t, f, newTestBatcher(srv.URL, 1), 3, 5*time.Second) {
			if !errors.Is(err, app.ErrUnavailable) {
				t.Fatalf("command %d: %v, want unavailable", i, err)
			}
		}
	})
	t.Run("no answer in time", func(t *testing.T) {
		f, srv := newFakeService(t)
		stop := make(chan struct{})
		defer close(stop)
		f.batch = func(http.ResponseWriter, *http.Request) { <-stop }
		for i, err := range holdAndQueue(t, f, newTestBatcher(srv.URL, 1), 3, 300*time.Millisecond) {
			if !errors.Is(err, app.ErrTimeout) {
				t.Fatalf("command %d: %v, want timed out", i, err)
			}
		}
	})
	t.Run("route unknown: each alone", func(t *testing.T) {
		f, srv := newFakeService(t)
		f.batch = func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"status":404,"code":"NOT_FOUND"}`))
		}
		for i, err := range holdAndQueue(t, f, newTestBatcher(srv.URL, 1), 3, 5*time.Second) {
			if err != nil {
				t.Fatalf("command %d: %v", i, err)
			}
		}
		if got := f.seen(); len(got) != 5 || strings.Count(strings.Join(got, ","), "POST /v1/payments") != 4 {
			t.Fatalf("requests = %q, want the batch then each command alone", got)
		}
	})
}
