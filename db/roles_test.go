package db_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"upi/db"
)

// migratedDatabase makes a database of its own with every migration applied, dropped when the test ends.
func migratedDatabase(t *testing.T) string {
	t.Helper()
	url := emptyDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := db.Migrate(ctx, url); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return url
}

// emptyDatabase makes a database of its own, with no migration applied, dropped when the test ends. It
// takes TEST_DATABASE_URL, else the local server `make run` uses; without one it skips, except under CI,
// where it fails. (This package cannot use testenv, which imports it.)
func emptyDatabase(t *testing.T) string {
	t.Helper()
	base := os.Getenv("TEST_DATABASE_URL")
	if base == "" {
		base = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("postgres is required under CI: %v", err)
		}
		t.Skipf("postgres unavailable (set TEST_DATABASE_URL): %v", err)
	}
	defer admin.Close(ctx)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "upi_roles_" + hex.EncodeToString(b)
	cfg := admin.Config().Copy()
	cfg.Database = name
	url := fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", cfg.User, cfg.Host, cfg.Port, name)
	if cfg.Password != "" {
		url = fmt.Sprintf("postgres://%s:%s@%s:%d/%s?sslmode=disable", cfg.User, cfg.Password, cfg.Host, cfg.Port, name)
	}
	if _, err := admin.Exec(ctx, "create database "+name); err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Logf("drop %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "drop database if exists "+name+" with (force)"); err != nil {
			t.Logf("drop %s: %v", name, err)
		}
	})
	return url
}

const (
	insertEvent = `insert into events (event_id, aggregate_id, aggregate_type, event_type, version, payload)
		values (gen_random_uuid(), 'role-test@bank', 'account', 'AccountOpened', 1, '{}')`
	insertAccount = `insert into accounts (vpa, owner_client_id, holder_name, balance_paise, version, created_at,
		updated_at, tx_id, global_position) values ('a@bank', 'c', 'A', 0, 1, now(), now(), '1', 1)`
)

// queueDelivery is how the consumers and the command service queue a delivery: its row and its pending row.
const queueDelivery = `with d as (
		insert into webhook_deliveries (endpoint_id, event_id, event_type, resource_id, body, event_created_at)
		values (gen_random_uuid(), gen_random_uuid(), 'payment.created', 'r', '{}', now())
		returning endpoint_id, resource_id, delivery_id)
	insert into webhook_pending (endpoint_id, resource_id, delivery_id) select endpoint_id, resource_id, delivery_id from d`

// rebuildSwap is what `event-consumers rebuild` does to a projection's table.
const rebuildSwap = `create schema rebuild_t; create schema rebuild_t_old;
	create table rebuild_t.accounts (like public.accounts including all);
	alter table public.accounts set schema rebuild_t_old; alter table rebuild_t.accounts set schema public;
	drop schema rebuild_t_old cascade; drop schema rebuild_t cascade`

// A projection rebuilt by the consumers stays readable by the query service.
func TestRebuiltProjectionStaysReadable(t *testing.T) {
	url := migratedDatabase(t)
	ctx := context.Background()
	consumers, err := db.Open(ctx, url, "roles-test", "upi_consumers", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer consumers.Close()
	if _, err := consumers.Exec(ctx, rebuildSwap); err != nil {
		t.Fatalf("rebuild swap as upi_consumers: %v", err)
	}
	query, err := db.Open(ctx, url, "roles-test", "upi_query", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer query.Close()
	if _, err := query.Exec(ctx, `select * from accounts`); err != nil {
		t.Fatalf("upi_query reads the rebuilt accounts: %v", err)
	}
}

// Statements that change the log or its protection, refused to every service role.
var tamper = []string{
	`update events set payload = '{"forged": true}'`,
	`delete from events`,
	`truncate events`,
	`alter table events disable trigger user`,
	`alter table events disable trigger events_refuse_update_delete`,
	`drop trigger events_refuse_update_delete on events`,
	`drop table events`,
	`set session_replication_role = replica`,
}

func TestRolesHaveOnlyTheirRights(t *testing.T) {
	url := migratedDatabase(t)
	ctx := context.Background()
	owner, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer owner.Close()
	if _, err := owner.Exec(ctx, insertEvent); err != nil {
		t.Fatalf("owner appends: %v", err)
	}

	cases := []struct {
		role    string
		allowed []string
		denied  []string
	}{
		{
			role: "upi_command",
			allowed: []string{
				`select count(*) from events`, strings.Replace(insertEvent, "1, '{}'", "2, '{}'", 1),
				`insert into snapshots (aggregate_id, aggregate_type, version, schema_version, state)
					values ('x', 'account', 1, 1, '{}') on conflict (aggregate_id) do update set version = 2`,
				`select * from snapshots`, `insert into rrn_blocks values ('612101', 0) on conflict (prefix) do update set next_tail = rrn_blocks.next_tail + 1`, `select pg_notify('events', '')`,
				`select coalesce(max(version_id), 0) from goose_db_version`,
				`update webhook_endpoints set status = 'DISABLED'`, `select * from webhook_deliveries`,
				queueDelivery,
			},
			denied: append([]string{
				`select * from accounts`, `select * from payments`, `select * from projection_checkpoints`,
				`select * from workflow_parked`, insertAccount, `select * from consumer_quarantine`,
				// Webhooks: the command service writes endpoints and queues redeliveries, nothing more.
				`select * from webhook_attempts`, `update webhook_deliveries set state = 'SUCCEEDED'`,
				`select * from webhook_pending`, `delete from webhook_pending`,
			}, tamper...),
		},
		{
			role: "upi_consumers",
			allowed: []string{
				`select count(*) from events`, insertAccount,
				`insert into payment_account_owners values ('a@bank', 'c')`,
				`insert into projection_checkpoints (name) values ('event-feed') on conflict do nothing`,
				`update projection_checkpoints set global_position = global_position where name = 'accounts'`,
				`select * from projection_checkpoints for update`,
				`insert into workflow_parked (payment_id, step, cause_event_id, reason, retry_step)
					values (gen_random_uuid(), 'debit', gen_random_uuid(), 'r', 'debit')`,
				`update workflow_parked set status = 'resolved'`,
				`insert into consumer_quarantine (consumer, event_id, aggregate_id, tx_id, global_position, event_type)
					values ('accounts', gen_random_uuid(), 'a@bank', '1', 1, 'FundsDeposited')`,
				`update consumer_quarantine set release_requested_at = now()`,
				// What a checkpoint reset of a projection does.
				`truncate accounts, account_transactions`,
				`truncate payments, payment_events, payment_account_owners, refunds, collect_requests`,
				`delete from payment_events`, `listen events`,
				`select coalesce(max(version_id), 0) from goose_db_version`,
				// What a rebuild does.
				rebuildSwap,
				`update webhook_deliveries set state = 'SUCCEEDED'`, `update webhook_endpoints set failing_since = now()`,
				queueDelivery,
				`select * from webhook_pending`, `update webhook_pending set attempts = 1`, `delete from webhook_pending`,
			},
			denied: append([]string{
				insertEvent, `select * from snapshots`, `select * from rrn_blocks`,
				`insert into webhook_endpoints (endpoint_id, client_id, url) values (gen_random_uuid(), 'c', 'https://x')`,
			}, tamper...),
		},
		{
			role: "upi_query",
			allowed: []string{
				`select * from accounts`, `select * from account_transactions`, `select * from payments`,
				`select * from payment_events`, `select * from payment_account_owners`,
				`select * from projection_checkpoints`, `listen checkpoints`,
				`select coalesce(max(version_id), 0) from goose_db_version`,
				`select * from webhook_endpoints`, `select * from webhook_deliveries`, `select * from webhook_attempts`,
				`select * from webhook_pending`,
			},
			denied: append([]string{
				`select * from events`, `select count(*) from events`, insertEvent, `select * from snapshots`,
				insertAccount, `update projection_checkpoints set global_position = 0`,
				`select * from workflow_parked`, `select * from rrn_blocks`, `select * from consumer_quarantine`,
				`update webhook_endpoints set status = 'DISABLED'`, `select * from webhook_secret_rotations`,
				`delete from webhook_pending`,
			}, tamper...),
		},
	}
	for _, c := range cases {
		t.Run(c.role, func(t *testing.T) {
			pool, err := db.Open(ctx, url, "roles-test", c.role, 2)
			if err != nil {
				t.Fatalf("open as %s: %v", c.role, err)
			}
			defer pool.Close()
			var current string
			if err := pool.QueryRow(ctx, `select current_user`).Scan(&current); err != nil || current != c.role {
				t.Fatalf("current_user = %q (%v), want %s", current, err, c.role)
			}
			for _, stmt := range c.allowed {
				if err := inRolledBackTx(ctx, pool, stmt); err != nil {
					t.Errorf("%s should be allowed: %s: %v", c.role, stmt, err)
				}
			}
			for _, stmt := range c.denied {
				err := inRolledBackTx(ctx, pool, stmt)
				if !isDenied(err) {
					t.Errorf("%s should be refused (42501 or must be owner): %s: got %v", c.role, stmt, err)
				}
			}
		})
	}
}

// With the append-only triggers disabled by the owner, the service roles still cannot change the log:
// the refusal comes from the grants, not from the trigger alone.
func TestRolesCannotChangeEventsEvenWithoutTheTrigger(t *testing.T) {
	url := migratedDatabase(t)
	ctx := context.Background()
	owner, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer owner.Close(ctx)
	if _, err := owner.Exec(ctx, insertEvent); err != nil {
		t.Fatal(err)
	}
	if _, err := owner.Exec(ctx, `alter table events disable trigger user`); err != nil {
		t.Fatal(err)
	}
	// The control: with the triggers off, the owner could change the log (rolled back).
	if err := inRolledBackTx(ctx, owner, `delete from events`); err != nil {
		t.Fatalf("control: the owner's delete should pass with the triggers disabled: %v", err)
	}
	for _, role := range []string{"upi_command", "upi_consumers", "upi_query"} {
		pool, err := db.Open(ctx, url, "roles-test", role, 2)
		if err != nil {
			t.Fatalf("open as %s: %v", role, err)
		}
		for _, stmt := range []string{`update events set version = version + 100`, `delete from events`,
			`truncate events`, `alter table events enable trigger user`} {
			if err := inRolledBackTx(ctx, pool, stmt); !isDenied(err) {
				t.Errorf("%s: %s should be refused: got %v", role, stmt, err)
			}
		}
		pool.Close()
	}
	var n int
	if err := owner.QueryRow(ctx, `select count(*) from events`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("events after the attempts: %d (%v), want 1", n, err)
	}
}

func TestOpenRefusesARoleTheLoginIsNotMemberOf(t *testing.T) {
	url := migratedDatabase(t)
	ctx := context.Background()
	owner, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer owner.Close(ctx)
	var super bool
	if err := owner.QueryRow(ctx, `select rolsuper from pg_roles where rolname = current_user`).Scan(&super); err != nil {
		t.Fatal(err)
	}
	if !super {
		t.Skip("needs a superuser to make a login")
	}
	login := "upi_roles_login_" + hex.EncodeToString([]byte(t.Name()))[:8]
	if _, err := owner.Exec(ctx, "create role "+login+" login"); err != nil {
		t.Fatal(err)
	}
	defer owner.Exec(context.Background(), "drop role "+login) //nolint:errcheck
	cfg := owner.Config()
	loginURL := fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", login, cfg.Host, cfg.Port, cfg.Database)
	if _, err := db.Open(ctx, loginURL, "roles-test", "upi_command", 1); err == nil {
		t.Fatal("a login that is not a member of upi_command could open the pool as it")
	}
	if _, err := owner.Exec(ctx, "grant upi_query to "+login); err != nil {
		t.Fatal(err)
	}
	defer owner.Exec(context.Background(), "revoke upi_query from "+login) //nolint:errcheck
	pool, err := db.Open(ctx, loginURL, "roles-test", "upi_query", 1)
	if err != nil {
		t.Fatalf("a member of upi_query should open as it: %v", err)
	}
	pool.Close()
}

type beginner interface {
	Begin(context.Context) (pgx.Tx, error)
}

func inRolledBackTx(ctx context.Context, b beginner, stmt string) error {
	tx, err := b.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	_, err = tx.Exec(ctx, stmt)
	return err
}

// isDenied reports a refusal for lack of rights: insufficient_privilege (42501), which PostgreSQL also
// uses for "must be owner" and for SET of a superuser-only setting.
func isDenied(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "42501"
}
