package testenv

import (
	"os"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// localRabbitMQ is the broker `make run` relays to by default.
const localRabbitMQ = "amqp://guest:guest@127.0.0.1:5672/"

var (
	rabbitOnce sync.Once
	rabbitURL  string
	rabbitErr  error
)

// RabbitMQ returns the URL of a RabbitMQ broker: TEST_RABBITMQ_URL when set, otherwise the local one when
// it answers; otherwise the test is skipped, or fails under CI. The broker is shared: a test isolates
// itself by naming its own exchange and queues (see UniqueName), never by resetting the broker.
func RabbitMQ(t testing.TB) string {
	t.Helper()
	rabbitOnce.Do(func() {
		rabbitURL = os.Getenv("TEST_RABBITMQ_URL")
		if rabbitURL == "" {
			rabbitURL = localRabbitMQ
		}
		var conn *amqp.Connection
		conn, rabbitErr = amqp.DialConfig(rabbitURL, amqp.Config{Dial: amqp.DefaultDial(5 * time.Second)})
		if rabbitErr == nil {
			conn.Close()
		}
	})
	if rabbitErr != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("rabbitmq is required under CI and is unavailable: %v", rabbitErr)
		}
		t.Skipf("rabbitmq unavailable (set TEST_RABBITMQ_URL or run one on 127.0.0.1:5672): %v", rabbitErr)
	}
	return rabbitURL
}

// UniqueName returns prefix followed by random characters: an exchange or queue name no other test uses.
func UniqueName(prefix string) string { return prefix + randomHex(6) }
