package downstream

import (
	"context"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A name with several addresses (a scaled service) is dialled at each address in turn, and an address
// where nothing listens is passed over.
func TestSpreadDialerTakesTheAddressesInTurn(t *testing.T) {
	first, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	port := first.Addr().(*net.TCPAddr).Port
	second, err := net.Listen("tcp", net.JoinHostPort("127.0.0.2", strconv.Itoa(port)))
	if err != nil {
		t.Skipf("no second loopback address here: %v", err)
	}
	defer second.Close()

	var mu sync.Mutex
	accepted := map[string]int{}
	for _, l := range []net.Listener{first, second} {
		go acceptEach(l, func() {
			mu.Lock()
			accepted[l.Addr().String()]++
			mu.Unlock()
		})
	}

	d := newSpreadDialer(&net.Dialer{Timeout: time.Second})
	// 127.0.0.3 has no listener on the port: refused at once, and the next address is dialled instead.
	d.lookupHost = func(context.Context, string) ([]string, error) {
		return []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"}, nil
	}
	for range 12 {
		c, err := d.DialContext(context.Background(), "tcp", net.JoinHostPort("command-service", strconv.Itoa(port)))
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		c.Close()
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		mu.Lock()
		a, b := accepted[first.Addr().String()], accepted[second.Addr().String()]
		mu.Unlock()
		if a+b == 12 || time.Now().After(deadline) {
			if a < 4 || b < 4 {
				t.Fatalf("connections were not spread: %d to the first address, %d to the second", a, b)
			}
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Each name takes its own addresses in turn, whatever other names are dialled between: a service dialled
// every other time still has its connections spread.
func TestSpreadDialerKeepsATurnPerName(t *testing.T) {
	counted := func() (port int, accepted func() (int, int)) {
		first, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { first.Close() })
		port = first.Addr().(*net.TCPAddr).Port
		second, err := net.Listen("tcp", net.JoinHostPort("127.0.0.2", strconv.Itoa(port)))
		if err != nil {
			t.Skipf("no second loopback address here: %v", err)
		}
		t.Cleanup(func() { second.Close() })
		var mu sync.Mutex
		n := [2]int{}
		for i, l := range []net.Listener{first, second} {
			go acceptEach(l, func() {
				mu.Lock()
				n[i]++
				mu.Unlock()
			})
		}
		return port, func() (int, int) { mu.Lock(); defer mu.Unlock(); return n[0], n[1] }
	}
	commandPort, _ := counted()
	queryPort, queryAccepted := counted()
	d := newSpreadDialer(&net.Dialer{Timeout: time.Second})
	d.lookupHost = func(context.Context, string) ([]string, error) { return []string{"127.0.0.1", "127.0.0.2"}, nil }
	dial := func(host string, port int) {
		c, err := d.DialContext(context.Background(), "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			t.Fatalf("dial %s: %v", host, err)
		}
		c.Close()
	}
	for range 8 {
		dial("command-service", commandPort)
		dial("query-service", queryPort)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		a, b := queryAccepted()
		if a+b == 8 || time.Now().After(deadline) {
			if a != 4 || b != 4 {
				t.Fatalf("query-service's connections: %d to the first address, %d to the second; want 4 and 4", a, b)
			}
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A name with one address, or an address given as an IP, is dialled as the plain dialer would.
func TestSpreadDialerOneAddress(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	d := newSpreadDialer(&net.Dialer{Timeout: time.Second})
	c, err := d.DialContext(context.Background(), "tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	c, err = d.DialContext(context.Background(), "tcp", net.JoinHostPort("localhost", strconv.Itoa(l.Addr().(*net.TCPAddr).Port)))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

// A name dialled while it had one address (the connections of a service not yet scaled) is looked up again
// every rebalance: idle connections are closed, to be made again over all its replicas, once it has
// several, and never while it has one.
func TestSpreadDialerRebalancesWhenANameGainsReplicas(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go acceptEach(l, func() {})
	var (
		mu     sync.Mutex
		addrs  = []string{"127.0.0.1"}
		closes atomic.Int32
	)
	d := newSpreadDialer(&net.Dialer{Timeout: time.Second})
	d.rebalance = 20 * time.Millisecond
	d.lookupHost = func(context.Context, string) ([]string, error) {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(addrs), nil
	}
	d.closeIdle = func() { closes.Add(1) }

	c, err := d.DialContext(context.Background(), "tcp", net.JoinHostPort("localhost", strconv.Itoa(l.Addr().(*net.TCPAddr).Port)))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	time.Sleep(10 * d.rebalance)
	if n := closes.Load(); n != 0 {
		t.Fatalf("one address: idle connections closed %d times, want none", n)
	}

	mu.Lock()
	addrs = append(addrs, "127.0.0.2") // scaled to two replicas, with no dial since
	mu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for closes.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the name gained a replica, but idle connections were never closed to spread them")
		}
		time.Sleep(d.rebalance)
	}
}

// acceptEach accepts l's connections until it is closed, calling accepted for each and closing it.
func acceptEach(l net.Listener, accepted func()) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		accepted()
		c.Close()
	}
}
