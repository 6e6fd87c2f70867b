// Package db holds the schema of the system: numbered SQL migrations in migrations/, embedded so that
// tests, `make migrate` and the services all apply and check exactly the same files.
package db

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx", used by goose
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed migrations/*.sql
var files embed.FS

// Migrations is the migration folder as a file system.
func Migrations() fs.FS {
	sub, err := fs.Sub(files, "migrations")
	if err != nil {
		panic(err) // the folder is embedded at build time; absent only if the build is broken
	}
	return sub
}

// Migrate creates the database named in url if it does not exist, then applies every pending migration.
// Concurrent callers are serialised by a session advisory lock.
func Migrate(ctx context.Context, url string) error {
	if err := EnsureDatabase(ctx, url); err != nil {
		return err
	}
	sqlDB, err := sql.Open("pgx", url)
	if err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	defer sqlDB.Close()

	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return fmt.Errorf("migration locker: %w", err)
	}
	provider, err := goose.NewProvider(goose.DialectPostgres, sqlDB, Migrations(), goose.WithSessionLocker(locker))
	if err != nil {
		return fmt.Errorf("migration provider: %w", err)
	}
	if _, err := provider.Up(ctx); err != nil {
		return fmt.Errorf("apply migrations: %w", err)
	}
	return nil
}

// LatestVersion is the number of the newest migration this build carries.
func LatestVersion() int64 {
	entries, err := fs.ReadDir(Migrations(), ".")
	if err != nil {
		panic(fmt.Sprintf("read embedded migrations: %v", err))
	}
	var latest int64
	for _, e := range entries {
		v, err := goose.NumericComponent(e.Name())
		if err != nil {
			panic(fmt.Sprintf("migration %s: %v", e.Name(), err))
		}
		latest = max(latest, v)
	}
	return latest
}

// ErrSchemaTooOld means the database has not been migrated to what this build needs.
var ErrSchemaTooOld = errors.New("database schema is older than this build needs")

// RequireSchema fails unless the database behind pool has at least the migrations this build carries.
func RequireSchema(ctx context.Context, pool *pgxpool.Pool) error {
	want := LatestVersion()
	var have int64
	err := pool.QueryRow(ctx,
		`select coalesce(max(version_id), 0) from goose_db_version where is_applied`).Scan(&have)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P01" { // undefined_table: never migrated
		have = 0
	} else if err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if have < want {
		return fmt.Errorf("%w: database is at migration %d, this build needs %d; run `make migrate`",
			ErrSchemaTooOld, have, want)
	}
	return nil
}

// EnsureDatabase creates the database named in url when it does not exist yet, connecting to the
// server's `postgres` database to do so.
func EnsureDatabase(ctx context.Context, url string) error {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return fmt.Errorf("parse database url: %w", err)
	}
	name := cfg.Database
	if name == "" {
		return errors.New("database url names no database")
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err == nil {
		return conn.Close(ctx)
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "3D000" { // invalid_catalog_name
		return fmt.Errorf("connect to database %q: %w", name, err)
	}
	admin := cfg.Copy()
	admin.Database = "postgres"
	conn, err = pgx.ConnectConfig(ctx, admin)
	if err != nil {
		return fmt.Errorf("connect to server to create database %q: %w", name, err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "create database "+pgx.Identifier{name}.Sanitize())
	if errors.As(err, &pgErr) && pgErr.Code == "42P04" { // duplicate_database: created concurrently
		return nil
	}
	if err != nil {
		return fmt.Errorf("create database %q: %w", name, err)
	}
	return nil
}
