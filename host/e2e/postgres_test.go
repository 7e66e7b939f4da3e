package e2e

import (
	"sync"
	"testing"

	"github.com/plughost/gateway/host/store/pgtest"
)

// The run's PostgreSQL server, started by the first test that needs one
// and stopped by TestMain.
var (
	pgOnce   sync.Once
	pgServer *pgtest.Server
	pgErr    error
)

// postgres returns the run's server, starting it on first use. A server
// that cannot start fails the test; it is never skipped.
func postgres(t *testing.T) *pgtest.Server {
	t.Helper()
	pgOnce.Do(func() { pgServer, pgErr = pgtest.Start(pgtest.Options{}) })
	if pgErr != nil {
		t.Fatalf("starting PostgreSQL for the test: %v", pgErr)
	}
	return pgServer
}

func stopPostgres() {
	if pgServer != nil {
		pgServer.Stop()
	}
}
