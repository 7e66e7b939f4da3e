package pgstore_test

import (
	"context"
	"testing"

	"github.com/plughost/gateway/host/store"
	"github.com/plughost/gateway/host/store/pgstore"
	"github.com/plughost/gateway/host/store/pgtest"
	"github.com/plughost/gateway/host/store/storetest"
)

var pg *pgtest.Server

func TestMain(m *testing.M) {
	pgtest.Main(m, &pg)
}

func openPG(t *testing.T, dsn string) *pgstore.Store {
	t.Helper()
	s, err := pgstore.Open(context.Background(), dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// The PostgreSQL store passes the suite the bbolt store passes.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) func() store.Backend {
		dsn := pg.NewDatabase(t)
		return func() store.Backend { return openPG(t, dsn) }
	})
}
