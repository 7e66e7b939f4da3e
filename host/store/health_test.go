package store

import (
	"path/filepath"
	"testing"
)

// The bbolt store reports the free space of its file system too.
func TestHealthIsOKWithFreeSpace(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), FileName))
	defer s.Close()
	h := s.Health()
	if h.State != StateOK || h.LastError != "" || h.FreeBytes == 0 {
		t.Fatalf("fresh store health = %+v", h)
	}
}
