package pgstore_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/plughost/gateway/host/store"
	"github.com/plughost/gateway/host/store/pgstore"
)

// Two hosts writing the same conversation at once keep one transcript in
// order, nothing lost or duplicated, and each sees the other's turns.
func TestTwoHostsShareOneConversation(t *testing.T) {
	dsn := pg.NewDatabase(t)
	a, b := openPG(t, dsn), openPG(t, dsn)
	ctx := context.Background()
	const each = 50
	var wg sync.WaitGroup
	errc := make(chan error, 2*each)
	for h, s := range []*pgstore.Store{a, b} {
		wg.Go(func() {
			for i := range each {
				now := time.Now()
				errc <- s.AppendTurn(ctx, "shared", 0, store.Message{Role: "user", Content: fmt.Sprintf("h%d-%d", h, i), Time: now},
					store.Message{Role: "assistant", Content: fmt.Sprintf("re h%d-%d", h, i), Time: now})
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			t.Fatal(err)
		}
	}
	sess, hist, err := b.History("shared", 1000)
	if err != nil || sess.Messages != 4*each || len(hist) != 4*each {
		t.Fatalf("session %+v with %d messages, %v", sess, len(hist), err)
	}
	for i := 0; i < len(hist); i += 2 {
		if hist[i].Role != "user" || hist[i+1].Content != "re "+hist[i].Content {
			t.Fatalf("turn at %d split: %q then %q", i, hist[i].Content, hist[i+1].Content)
		}
	}
}

// Migrations run once however many hosts start together; a schema newer
// than the build is refused with a message saying so.
func TestMigrations(t *testing.T) {
	dsn := pg.NewDatabase(t)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			s, err := pgstore.Open(context.Background(), dsn, nil)
			if err != nil {
				t.Error(err)
				return
			}
			_ = s.Close()
		})
	}
	wg.Wait()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n, v int
	if err := conn.QueryRow(context.Background(), "SELECT count(*), max(version) FROM gateway_schema").Scan(&n, &v); err != nil || n != pgstore.SchemaVersion || v != pgstore.SchemaVersion {
		t.Fatalf("schema rows = %d, version %d, %v", n, v, err)
	}
	if _, err := conn.Exec(context.Background(), "INSERT INTO gateway_schema (version) VALUES ($1)", pgstore.SchemaVersion+1); err != nil {
		t.Fatal(err)
	}
	_, err = pgstore.Open(context.Background(), dsn, nil)
	if err == nil || !strings.Contains(err.Error(), "newer than this gateway knows") {
		t.Fatalf("open of a newer schema = %v", err)
	}
}

// A bad DSN or an unreachable server fails Open with a message that names
// the problem and never the password.
func TestOpenErrorsHideThePassword(t *testing.T) {
	_, err := pgstore.Open(context.Background(), "postgres://u:s3cret@%zz", nil)
	if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "not a valid PostgreSQL connection string") {
		t.Fatalf("bad dsn = %v", err)
	}
	_, err = pgstore.Open(context.Background(), "host=/nonexistent-dir port=5432 user=u password=s3cret dbname=x", &pgstore.Options{ConnectTimeout: 2 * time.Second})
	if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "connecting to PostgreSQL") {
		t.Fatalf("unreachable = %v", err)
	}
}
