package config

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestRedisAUTHAndTLSOptions: against a Redis that requires a password (as compose runs it), the URL
// with the password is served and one without is refused; rediss:// turns TLS on.
func TestRedisAUTHAndTLSOptions(t *testing.T) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("no redis-server on the PATH")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	srv := exec.Command(bin, "--bind", "127.0.0.1", "--port", fmt.Sprint(port), "--save", "", "--appendonly", "no",
		"--dir", t.TempDir(), "--requirepass", "Zq8-long-random-password")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Process.Kill(); _ = srv.Wait() })

	ping := func(url string) error {
		opts, err := RedisOptions(url)
		if err != nil {
			return err
		}
		rdb := redis.NewClient(opts)
		defer rdb.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return rdb.Ping(ctx).Err()
	}
	base := fmt.Sprintf("127.0.0.1:%d/0", port)
	deadline := time.Now().Add(10 * time.Second)
	for ping("redis://:Zq8-long-random-password@"+base) != nil {
		if time.Now().After(deadline) {
			t.Fatal("redis-server with a password never answered")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for url, want := range map[string]string{"redis://" + base: "NOAUTH", "redis://:wrong@" + base: "WRONGPASS"} {
		if err := ping(url); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %s", url, err, want)
		}
	}
	opts, err := RedisOptions("rediss://:pw@redis.internal:6380/0")
	if err != nil || opts.TLSConfig == nil || opts.TLSConfig.ServerName != "redis.internal" {
		t.Fatalf("rediss: %v %+v", err, opts)
	}
}
