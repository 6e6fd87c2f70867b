//go:build !linux

package main

import (
	"net"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// deadPeerTimeouts: keepalives only where TCP_USER_TIMEOUT is not available (deadpeer_linux.go).
func deadPeerTimeouts(c *pgxpool.Config) {
	d := &net.Dialer{
		Timeout:         5 * time.Second,
		KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: 2 * time.Second, Interval: time.Second, Count: 3},
	}
	c.ConnConfig.DialFunc = d.DialContext
}
