package httpapi_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"upi/shared/contract"
)

// BenchmarkGatewayCost measures what the gateway itself costs per request, with no database behind it:
// the real router over HTTP and a real Redis, in front of a stub command service that answers at once.
// "direct" is the same client calling the stub without the gateway, so the gateway's own CPU per request
// is the difference of the two cpu-µs/op figures (the load client and the stub are in both). Each
// sub-benchmark also reports the Redis commands the gateway sent per request (redis-trips/op) and the
// Redis server's CPU per request (from INFO, so run it on a quiet Redis):
//
//	go test -run '^$' -bench BenchmarkGatewayCost -benchtime 20000x ./internal/httpapi
func BenchmarkGatewayCost(b *testing.B) {
	const paymentBody = `{"payer_vpa":"alice@okbank","payee_vpa":"bob@okbank","amount_paise":100,"note":"lunch"}`
	answer := []byte(`{"payment_id":"0b4f8f5e-6a3c-4c1e-9d7a-2f1e3b4c5d6e","payer_vpa":"alice@okbank","payee_vpa":"bob@okbank",` +
		`"amount_paise":100,"currency":"INR","note":"lunch","status":"PENDING","created_at":"2026-01-01T00:00:00Z",` +
		`"updated_at":"2026-01-01T00:00:00Z","position":"AAAAAAAAAAcAAAAAAAAACQ"}` + "\n")
	stub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Location", "/v1/payments/0b4f8f5e-6a3c-4c1e-9d7a-2f1e3b4c5d6e")
		if r.Method == http.MethodPost {
			w.WriteHeader(http.StatusAccepted)
		}
		_, _ = w.Write(answer)
	}))
	b.Cleanup(stub.Close)
	g := newGateway(b, options{commandURL: stub.URL, queryURL: stub.URL})
	trips := countTrips(g)
	// INFO goes through a client of its own, so it is not counted as the gateway's.
	admin := redis.NewClient(g.rdb.Options())
	b.Cleanup(func() { admin.Close() })
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 64}}
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	post := func(url, key string) *http.Request {
		r, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(paymentBody))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Authorization", "Bearer "+alphaKey)
		r.Header.Set(contract.HeaderClientID, "psp-alpha")
		r.Header.Set(contract.HeaderIdempotencyKey, key)
		return r
	}
	cases := []struct {
		name string
		next func(i int64) *http.Request
		want int
	}{
		{"direct", func(i int64) *http.Request { return post(stub.URL+"/v1/payments", fmt.Sprintf("d-%s-%d", run, i)) }, http.StatusAccepted},
		{"payment", func(i int64) *http.Request { return post(g.url+"/v1/payments", fmt.Sprintf("p-%s-%d", run, i)) }, http.StatusAccepted},
		{"replay", func(i int64) *http.Request { return post(g.url+"/v1/payments", "replayed-"+run) }, http.StatusAccepted},
		{"read", func(i int64) *http.Request {
			r, _ := http.NewRequest(http.MethodGet, g.url+"/v1/payments/"+paymentID, nil)
			r.Header.Set("Authorization", "Bearer "+alphaKey)
			return r
		}, http.StatusOK},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			// Warm up: connections, the script cache, and (for replay) the stored response.
			for i := range int64(benchClients) {
				resp, err := client.Do(c.next(-1 - i))
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			redisCPU0 := redisServerCPU(b, admin)
			trips.Store(0)
			cpu0 := processCPU()
			elapsed := drive(b, client, c.next, c.want)
			cpu := processCPU() - cpu0
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
			b.ReportMetric(float64(trips.Load())/float64(b.N), "redis-trips/op")
			b.ReportMetric(float64((redisServerCPU(b, admin)-redisCPU0).Microseconds())/float64(b.N), "redis-cpu-µs/op")
		})
	}
}

// drive sends b.N requests from benchClients concurrent clients and returns the time they took.
func drive(b *testing.B, client *http.Client, next func(i int64) *http.Request, want int) time.Duration {
	var counter atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range benchClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := counter.Add(1)
				if i > int64(b.N) {
					return
				}
				resp, err := client.Do(next(i))
				if err != nil {
					failed.Store(err.Error())
					return
				}
				// Read to the end, or the transport closes the connection instead of reusing it.
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != want {
					failed.Store(fmt.Sprintf("status %d", resp.StatusCode))
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if msg := failed.Load(); msg != nil {
		b.Fatalf("request failed: %v", msg)
	}
	return elapsed
}

// processCPU is the CPU time (user and system) this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// redisServerCPU is the CPU time the Redis server has used, from INFO cpu.
func redisServerCPU(b *testing.B, rdb *redis.Client) time.Duration {
	info, err := rdb.Info(context.Background(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var total float64
	for _, line := range strings.Split(info, "\r\n") {
		name, v, ok := strings.Cut(line, ":")
		if ok && (name == "used_cpu_sys" || name == "used_cpu_user") {
			f, _ := strconv.ParseFloat(v, 64)
			total += f
		}
	}
	return time.Duration(total * float64(time.Second))
}
