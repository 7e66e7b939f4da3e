package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPluginsListsBinaries(t *testing.T) {
	e := newEnv(t)
	e.install("http", "http")
	e.install("http", "web2") // one binary under two names is two plugins
	e.install("stdoutjunk", "junk")
	e.writeConfig(`platform "web" { plugin = "http" }`)
	out, stderr, code := e.gw("plugins")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 {
		t.Fatalf("want a header and 3 plugins:\n%s", out)
	}
	for _, want := range []string{"http ", "web2 ", "junk "} {
		found := false
		for _, l := range lines[1:] {
			if strings.HasPrefix(l, want) {
				found = true
				// The plugin's version comes from the build (-X), as the host's.
				if f := strings.Fields(l); want != "junk " && (len(f) < 3 || f[2] != "test") {
					t.Errorf("plugin line %q does not show the version the build stamped (test)", l)
				}
			}
		}
		if !found {
			t.Errorf("no line for %q:\n%s", want, out)
		}
	}
	if !strings.Contains(out, "HTTP API") || !strings.Contains(out, "not a working plugin") {
		t.Errorf("descriptions or the broken plugin's error missing:\n%s", out)
	}
}

func TestVersion(t *testing.T) {
	out, err := exec.Command(bins["gateway"], "version").Output()
	code := 0
	if err != nil {
		code = -1
	}
	if code != 0 || !strings.HasPrefix(string(out), "gateway ") || !strings.Contains(string(out), "plugin protocol versions: [1 2]") {
		t.Fatalf("version: exit %d %q", code, string(out))
	}
}

func TestRunRefusesBadConfigWithPositions(t *testing.T) {
	e := newEnv(t)
	e.writeConfig(`
cache {
  max_agents = "many"
}
`)
	h := e.start()
	if code := h.waitExit(10 * time.Second); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if !strings.Contains(h.log.String(), "config.hcl:11:3: ") {
		t.Fatalf("no file:line:col in:\n%s", h.log.String())
	}
	if _, err := os.Stat(filepath.Join(e.dir, "state")); err == nil {
		t.Fatal("a refused config still created the state dir")
	}
}

func TestRunMissingConfigFile(t *testing.T) {
	e := newEnv(t)
	h := e.start() // the config file was never written
	if code := h.waitExit(10 * time.Second); code != 1 || !strings.Contains(h.log.String(), e.Config) {
		t.Fatalf("exit %d, log:\n%s", code, h.log.String())
	}
}

func TestRunStateDirThatCannotBeCreated(t *testing.T) {
	e := newEnv(t)
	blocker := filepath.Join(e.dir, "state")
	if err := os.WriteFile(blocker, []byte("a file, not a folder"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.writeConfig("")
	h := e.start()
	if code := h.waitExit(10 * time.Second); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if out := h.log.String(); !strings.Contains(out, blocker) || strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Fatalf("want one line naming %s, got:\n%s", blocker, out)
	}
}
