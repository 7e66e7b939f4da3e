package agent

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(killHelperEnv); dir != "" {
		hostKillHelper(dir, os.Getenv(killHelperURLEnv)) // never returns: SIGKILLed
		return
	}
	goleak.VerifyTestMain(m)
}
