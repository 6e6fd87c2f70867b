package downstream

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// spreadDialer dials a service name that resolves to several addresses (its replicas: Docker's DNS
// answers every running container of a scaled compose service) starting at the name's next address in
// turn, so that the transport's connections, and so its calls, are spread over the replicas. Each name
// keeps its own turn: with one turn for all, a service dialled every other time (between two dials of
// another) would start at the same address each time. An address that does
// not answer within perAddress is passed over for the next one: a replica that is gone costs one short
// wait, not the call. A name with one address dials as before.
//
// Connections are kept alive, so a replica added later (or back from a crash) would get none while the
// pool has enough: its connections are made before the name had a second address and are never dialled
// again while calls keep them busy. So from the first dial of a name, every rebalance the dialer looks each
// name it has dialled up again, and when any has several addresses it calls closeIdle (the transport's
// CloseIdleConnections): the connections made again are spread anew. A deployment whose names each have
// one address (one replica a service) keeps its connections. Every 5 s: the transport reuses the idle
// connection returned last, so a client with few calls at a time keeps to one connection, and one replica,
// from one rebalance to the next.
type spreadDialer struct {
	dialer     *net.Dialer
	lookupHost func(ctx context.Context, host string) ([]string, error)
	perAddress time.Duration
	next       sync.Map // host -> *atomic.Uint64: the name's turn

	closeIdle func()
	rebalance time.Duration
	started   atomic.Bool
	names     sync.Map // host -> struct{}: the names dialled, looked up every rebalance
}

// rebalanceLoop runs for the life of the process: the gateway has one client.
func (s *spreadDialer) rebalanceLoop() {
	t := time.NewTicker(s.rebalance)
	defer t.Stop()
	for range t.C {
		if s.replicated() {
			s.closeIdle()
		}
	}
}

// replicated reports whether any name dialled now resolves to several addresses.
func (s *spreadDialer) replicated() bool {
	several := false
	s.names.Range(func(host, _ any) bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		ips, err := s.lookupHost(ctx, host.(string))
		cancel()
		several = err == nil && len(ips) > 1
		return !several
	})
	return several
}

func newSpreadDialer(d *net.Dialer) *spreadDialer {
	return &spreadDialer{dialer: d, lookupHost: net.DefaultResolver.LookupHost, perAddress: 500 * time.Millisecond,
		rebalance: 5 * time.Second}
}

func (s *spreadDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil || net.ParseIP(host) != nil {
		return s.dialer.DialContext(ctx, network, address)
	}
	if _, seen := s.names.LoadOrStore(host, struct{}{}); !seen && s.closeIdle != nil && s.started.CompareAndSwap(false, true) {
		go s.rebalanceLoop()
	}
	ips, err := s.lookupHost(ctx, host)
	if err != nil || len(ips) < 2 {
		return s.dialer.DialContext(ctx, network, address)
	}
	turn, _ := s.next.LoadOrStore(host, new(atomic.Uint64))
	start := int(turn.(*atomic.Uint64).Add(1) % uint64(len(ips)))
	var errs []error
	for i := range ips {
		ip := ips[(start+i)%len(ips)]
		actx, cancel := context.WithTimeout(ctx, s.perAddress)
		if i == len(ips)-1 {
			cancel()
			actx, cancel = ctx, func() {}
		}
		conn, err := s.dialer.DialContext(actx, network, net.JoinHostPort(ip, port))
		cancel()
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}
