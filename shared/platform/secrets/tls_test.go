package secrets

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	amqp "github.com/rabbitmq/amqp091-go"
)

// privateCA writes a CA certificate of the test's own and returns its path.
func privateCA(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "upi test CA"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestPostgresTLSOptions: the URL options docs/deployment.md gives verify the server's certificate
// against the CA named, and its host name; disable means no TLS at all.
func TestPostgresTLSOptions(t *testing.T) {
	ca := privateCA(t)
	cfg, err := pgxpool.ParseConfig("postgres://upi:pw@db.internal:5432/upi?sslmode=verify-full&sslrootcert=" + ca)
	if err != nil {
		t.Fatal(err)
	}
	tls := cfg.ConnConfig.TLSConfig
	if tls == nil || tls.ServerName != "db.internal" || tls.RootCAs == nil || tls.InsecureSkipVerify {
		t.Fatalf("verify-full: %+v", tls)
	}
	if len(cfg.ConnConfig.Fallbacks) != 0 {
		t.Fatalf("verify-full falls back to plaintext: %d fallbacks", len(cfg.ConnConfig.Fallbacks))
	}
	if _, err := pgxpool.ParseConfig("postgres://upi:pw@db/upi?sslmode=verify-full&sslrootcert=/nonexistent"); err == nil {
		t.Fatal("a missing CA file accepted")
	}
	plain, err := pgxpool.ParseConfig("postgres://upi:pw@db/upi?sslmode=disable")
	if err != nil || plain.ConnConfig.TLSConfig != nil {
		t.Fatalf("disable: %v %+v", err, plain.ConnConfig.TLSConfig)
	}
}

// TestRabbitMQTLSOptions: amqps:// is TLS on 5671 (the client then dials with the system's trust store,
// which SSL_CERT_FILE extends).
func TestRabbitMQTLSOptions(t *testing.T) {
	u, err := amqp.ParseURI("amqps://upi:pw@mq.internal/")
	if err != nil || u.Scheme != "amqps" || u.Port != 5671 {
		t.Fatalf("amqps: %+v %v", u, err)
	}
}
