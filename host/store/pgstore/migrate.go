package pgstore

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migrations are the schema's versions, in order: migration i+1 is
// migrations[i]. Never edit one that has shipped; append a new one.
var migrations = []string{
	// 1: sessions, transcripts, access policy, usage, cluster leases.
	`CREATE TABLE sessions (
		key      text PRIMARY KEY,
		model    text NOT NULL DEFAULT '',
		created  timestamptz NOT NULL,
		updated  timestamptz NOT NULL,
		epoch    bigint NOT NULL DEFAULT 0,
		messages bigint NOT NULL DEFAULT 0,
		-- next_seq numbers the session's messages, across epochs: taken
		-- under the session row's lock, so concurrent writers never collide.
		next_seq bigint NOT NULL DEFAULT 0
	);
	CREATE TABLE messages (
		key   text NOT NULL,
		epoch bigint NOT NULL,
		seq   bigint NOT NULL,
		body  text NOT NULL,
		PRIMARY KEY (key, epoch, seq)
	);
	CREATE TABLE pairing_codes (
		code    text PRIMARY KEY,
		expires timestamptz NOT NULL,
		body    text NOT NULL
	);
	CREATE TABLE pairing_users (
		platform text NOT NULL,
		user_id  text NOT NULL,
		body     text NOT NULL,
		PRIMARY KEY (platform, user_id)
	);
	CREATE TABLE usage (
		id    bigserial PRIMARY KEY,
		at_ns bigint NOT NULL,
		body  text NOT NULL
	);
	CREATE INDEX usage_at ON usage (at_ns, id);
	CREATE TABLE gateway_probe (id int PRIMARY KEY, at timestamptz NOT NULL);
	CREATE TABLE cluster_hosts (
		cluster text NOT NULL,
		host_id text NOT NULL,
		name    text NOT NULL,
		seen    timestamptz NOT NULL,
		PRIMARY KEY (cluster, host_id)
	);
	CREATE TABLE cluster_leases (
		cluster     text NOT NULL,
		unit        text NOT NULL,
		holder      text NOT NULL,
		holder_name text NOT NULL,
		epoch       bigint NOT NULL,
		expires     timestamptz NOT NULL,
		PRIMARY KEY (cluster, unit)
	);`,
	// 2: the inbox (protocol 2): messages taken, until answered, and the
	// platforms' cursors; identify slots of sharded platforms, shared by
	// a cluster's hosts.
	`CREATE TABLE inbox_taken (
		platform text NOT NULL,
		conv     text NOT NULL,
		id       text NOT NULL,
		taken    timestamptz NOT NULL,
		body     bytea,
		PRIMARY KEY (platform, conv, id)
	);
	CREATE INDEX inbox_taken_age ON inbox_taken (taken);
	CREATE INDEX inbox_pending ON inbox_taken (platform) WHERE body IS NOT NULL;
	CREATE TABLE inbox_cursors (
		platform text PRIMARY KEY,
		cursor   text NOT NULL
	);
	CREATE TABLE cluster_identify (
		cluster  text NOT NULL,
		platform text NOT NULL,
		bucket   int NOT NULL,
		next_at  timestamptz NOT NULL,
		PRIMARY KEY (cluster, platform, bucket)
	);`,
}

// SchemaVersion is the schema this build migrates to.
var SchemaVersion = len(migrations)

// migrateLock is the advisory lock key migrations run under.
const migrateLock = 0x67617465776179 // "gateway"

// migrate applies the migrations the database has not seen. A database
// migrated by a newer build is refused: this build would not know its schema.
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrating the store: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrateLock); err != nil {
		return fmt.Errorf("migrating the store: taking the migration lock: %w", err)
	}
	defer func() { _, _ = conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", migrateLock) }()
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS gateway_schema (
		version int PRIMARY KEY, applied timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("migrating the store: %w", err)
	}
	var have int
	if err := conn.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM gateway_schema").Scan(&have); err != nil {
		return fmt.Errorf("migrating the store: %w", err)
	}
	if have > len(migrations) {
		return fmt.Errorf("the store's schema is version %d, newer than this gateway knows (%d): run the newer gateway, or a database of its own", have, len(migrations))
	}
	for v := have + 1; v <= len(migrations); v++ {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, migrations[v-1]); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO gateway_schema (version) VALUES ($1)", v)
			return err
		})
		if err != nil {
			return fmt.Errorf("migrating the store to schema version %d: %w", v, err)
		}
	}
	return nil
}
