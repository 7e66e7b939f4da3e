package store

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(helperEnv); dir != "" {
		killHelper(dir) // never returns: the parent SIGKILLs it
		return
	}
	goleak.VerifyTestMain(m)
}
