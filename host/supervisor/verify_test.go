package supervisor

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// markerScript is a "plugin" that records that it ran, then exits.
func markerScript(t *testing.T, path, marker string) []byte {
	t.Helper()
	src := []byte("#!/bin/sh\necho ran > '" + marker + "'\n")
	if err := os.WriteFile(path, src, 0o755); err != nil {
		t.Fatal(err)
	}
	return src
}

func waitFile(path string, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(path); err == nil {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// A binary swapped in at the plugin's path between its checks and its start
// must not run: the file checked is the file executed.
func TestInspectExecutesTheFileItVerified(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "plugins")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "gateway-plugin-pinned")
	good := markerScript(t, path, filepath.Join(root, "good-ran"))
	evil := filepath.Join(root, "evil")
	markerScript(t, evil, filepath.Join(root, "evil-ran"))
	sum := sha256.Sum256(good)

	afterVerify = func(string) {
		if err := os.Rename(evil, path); err != nil {
			t.Error(err)
		}
	}
	defer func() { afterVerify = nil }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := Inspect(ctx, Binary{Path: path, Dir: dir, SHA256: hex.EncodeToString(sum[:])}, hclog.NewNullLogger())
	if err == nil {
		t.Fatal("a script that never shakes hands was accepted as a plugin")
	}
	if !waitFile(filepath.Join(root, "good-ran"), 5*time.Second) {
		t.Fatal("the verified binary did not run")
	}
	if _, err := os.Stat(filepath.Join(root, "evil-ran")); err == nil {
		t.Fatal("the binary swapped in after verification ran")
	}
}

// Inspect (validate, plugins) makes the same checks as a platform's start:
// an insecure or mismatching binary is never executed.
func TestInspectRefusesWhatRunRefuses(t *testing.T) {
	for _, tc := range []struct {
		name    string
		dirMode os.FileMode
		sha     string
		want    func(error) bool
	}{
		{"plugin_dir writable by others", 0o777, "", isInsecure},
		{"sha256 mismatch", 0o755, strings.Repeat("0", 64), func(err error) bool { return errors.Is(err, ErrChecksum) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, "plugins")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "gateway-plugin-x")
			marker := filepath.Join(root, "ran")
			markerScript(t, path, marker)
			if err := os.Chmod(dir, tc.dirMode); err != nil {
				t.Fatal(err)
			}
			_, err := Inspect(context.Background(), Binary{Path: path, Dir: dir, SHA256: tc.sha}, hclog.NewNullLogger())
			if !tc.want(err) {
				t.Fatalf("err = %v", err)
			}
			if waitFile(marker, 300*time.Millisecond) {
				t.Fatal("the refused binary ran")
			}
		})
	}
}
