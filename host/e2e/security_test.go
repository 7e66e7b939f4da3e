package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// hostileScript is a "plugin" another user planted: it records that it ran.
func hostileScript(t *testing.T, path, marker string) {
	t.Helper()
	if err := os.WriteFile(path, []byte("#!/bin/sh\necho pwned > '"+marker+"'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
}

// `gateway validate` and `gateway plugins` run plugins, so they refuse what
// `run` refuses: a binary in a plugin_dir another user can write to never
// executes, whichever command finds it.
func TestValidateAndPluginsRefuseInsecurePlugins(t *testing.T) {
	e := newEnv(t)
	marker := filepath.Join(e.dir, "ran")
	hostileScript(t, filepath.Join(e.pluginDir, "gateway-plugin-web"), marker)
	if err := os.Chmod(e.pluginDir, 0o777); err != nil {
		t.Fatal(err)
	}
	e.writeConfig(`platform "web" { plugin = "web" }`)

	out, stderr, code := e.gw("plugins")
	if code != 0 || !strings.Contains(out, "writable by group or others") {
		t.Errorf("plugins: exit %d, want 0 naming the insecure plugin_dir:\n%s%s", code, out, stderr)
	}
	_, stderr, code = e.gw("validate")
	if code != 1 || !strings.Contains(stderr, "writable by group or others") {
		t.Errorf("validate: exit %d, want 1 naming the insecure plugin_dir:\n%s", code, stderr)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("a plugin from a plugin_dir writable by others was executed")
	}

	// A pinned plugin whose file does not match is not run either.
	if err := os.Chmod(e.pluginDir, 0o755); err != nil {
		t.Fatal(err)
	}
	e.writeConfig(`platform "web" {
  plugin = "web"
  sha256 = "` + strings.Repeat("ab", 32) + `"
}`)
	_, stderr, code = e.gw("validate")
	if code != 1 || !strings.Contains(stderr, "does not match its sha256") {
		t.Errorf("validate: exit %d, want 1 naming the checksum:\n%s", code, stderr)
	}
	out, _, _ = e.gw("plugins")
	if !strings.Contains(out, "does not match its sha256") {
		t.Errorf("plugins does not report the mismatch:\n%s", out)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("a plugin that does not match its sha256 was executed")
	}
}

// The state dir is refused when someone other than root or the gateway's
// user could change it, and no file in it is opened through a link.
func TestRunRefusesAnUntrustedStateDir(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, state string)
		want  string
	}{
		{"writable by others", func(t *testing.T, state string) {
			mkdir(t, state, 0o777)
		}, "writable by group or others"},
		{"owned by another user", func(t *testing.T, state string) {
			mkdir(t, state, 0o700)
			// As root, "another user" must be made: chown to nobody.
			if err := os.Chown(state, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}, "owned by uid 65534"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.writeConfig("")
			state := filepath.Join(e.dir, "state")
			tc.setup(t, state)
			_, stderr, code := e.gw("run")
			if code == 0 || !strings.Contains(stderr, tc.want) || !strings.Contains(stderr, state) {
				t.Fatalf("exit %d, want a refusal naming %s and %q:\n%s", code, state, tc.want, stderr)
			}
			if _, err := os.Lstat(filepath.Join(state, "gateway.lock")); err == nil {
				t.Fatal("the gateway created its lock file in the refused state dir")
			}
		})
	}
}

func TestRunNeverFollowsLinksInTheStateDir(t *testing.T) {
	for _, name := range []string{"gateway.lock", "sessions.db"} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			e.writeConfig("")
			state := filepath.Join(e.dir, "state")
			mkdir(t, state, 0o700)
			target := filepath.Join(e.dir, "outside", "victim")
			mkdir(t, filepath.Dir(target), 0o700)
			if err := os.Symlink(target, filepath.Join(state, name)); err != nil {
				t.Fatal(err)
			}
			h := e.start()
			code := h.waitExit(20 * time.Second)
			if code == 0 {
				t.Fatalf("run exited 0 with %s a link", name)
			}
			if _, err := os.Lstat(target); err == nil {
				t.Fatalf("the gateway created the link's target outside the state dir")
			}
		})
	}
}

// admin = "PATH" never deletes what is at PATH unless it is a stale socket.
func TestRunKeepsAFileAtTheAdminPath(t *testing.T) {
	e := newEnv(t)
	e.admin = filepath.Join(e.dir, "precious.txt")
	if err := os.WriteFile(e.admin, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.writeConfig("")
	_, stderr, code := e.gw("run")
	if code == 0 || !strings.Contains(stderr, "is not a socket") {
		t.Fatalf("exit %d, want a refusal saying the path is not a socket:\n%s", code, stderr)
	}
	if b, err := os.ReadFile(e.admin); err != nil || string(b) != "keep me" {
		t.Fatalf("the file at the admin path was changed: %q %v", b, err)
	}
}

func mkdir(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Mkdir(path, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // past the umask
		t.Fatal(err)
	}
}
