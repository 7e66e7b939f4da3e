package store_test

import (
	"path/filepath"
	"testing"

	"github.com/plughost/gateway/host/store"
	"github.com/plughost/gateway/host/store/storetest"
)

// The bbolt store passes the suite the PostgreSQL store passes.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) func() store.Backend {
		path := filepath.Join(t.TempDir(), store.FileName)
		return func() store.Backend {
			s, err := store.Open(path, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			return s
		}
	})
}
