//go:build linux

package main

import (
	"net"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sys/unix"
)

// deadPeerTimeouts makes every connection of this process to PostgreSQL (the pool's, the worker locks'
// and the LISTEN sessions, all made from the pool's config) notice within about 5 s that the network
// between them is gone, instead of the kernel's default of many minutes: TCP keepalives after 2 s idle,
// every second, 3 unanswered (an idle session, such as a worker lock's or a LISTEN), and a 5 s limit on
// data left unacknowledged (a query sent into the cut). The statement then fails, the runner lets go and
// reconnects: a consumer cut off from the database comes back within seconds of the network, and while it
// is cut its worker lock is dropped by PostgreSQL's own keepalives, so a standby takes over.
func deadPeerTimeouts(c *pgxpool.Config) {
	d := &net.Dialer{
		Timeout:         5 * time.Second,
		KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: 2 * time.Second, Interval: time.Second, Count: 3},
		Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, 5000)
			})
			if err != nil {
				return err
			}
			return serr
		},
	}
	c.ConnConfig.DialFunc = d.DialContext
}
