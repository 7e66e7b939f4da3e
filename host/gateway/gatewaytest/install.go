// Package gatewaytest runs a real gateway host for end-to-end tests and the
// benchmarks: the binaries built as `make build` builds them, an
// installation in a folder (config file, plugin dir, state dir, admin
// address), the `gateway run` process, and its admin endpoint decoded into
// gateway.Status. Its functions return errors rather than failing a test,
// so that the benchmark driver (a program) uses them as the tests do.
package gatewaytest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/plughost/gateway/host/gateway"
	"github.com/plughost/gateway/host/supervisor"
	"github.com/plughost/gateway/shared/kit/fakekit"
)

// Install is one gateway installation in a folder.
type Install struct {
	// Dir is the installation's folder; the config file's relative paths
	// resolve against it.
	Dir string
	// Config is the config file, Dir/config.hcl.
	Config string
	// PluginDir is where AddPlugin puts plugin binaries, Dir/plugins.
	PluginDir string
	// Admin is the admin endpoint's address, a free loopback port.
	Admin string

	client *http.Client
}

// NewInstall makes an installation in dir, which must exist.
func NewInstall(dir string) (*Install, error) {
	addr, err := fakekit.FreeAddr()
	if err != nil {
		return nil, err
	}
	in := &Install{Dir: dir, Config: filepath.Join(dir, "config.hcl"), PluginDir: filepath.Join(dir, "plugins"), Admin: addr}
	if err := os.MkdirAll(in.PluginDir, 0o755); err != nil {
		return nil, fmt.Errorf("making the plugin dir: %w", err)
	}
	// No keep-alive: polling the endpoint adds no open file to the host.
	in.client = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	return in, nil
}

// AddPlugin copies the binary at src into the plugin dir as
// gateway-plugin-NAME, atomically (the host never sees half a binary), and
// returns its path.
func (in *Install) AddPlugin(src, name string) (string, error) {
	dst := filepath.Join(in.PluginDir, "gateway-plugin-"+name)
	b, err := os.ReadFile(src)
	if err != nil {
		return "", fmt.Errorf("installing plugin %s: %w", name, err)
	}
	tmp := dst + ".tmp"
	if err := os.WriteFile(tmp, b, 0o755); err != nil {
		return "", fmt.Errorf("installing plugin %s: %w", name, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return "", fmt.Errorf("installing plugin %s: %w", name, err)
	}
	return dst, nil
}

// WriteConfig writes the config file, atomically: a host reloading
// meanwhile never reads half a file.
func (in *Install) WriteConfig(text string) error {
	tmp := in.Config + ".tmp"
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		return fmt.Errorf("writing the config file: %w", err)
	}
	if err := os.Rename(tmp, in.Config); err != nil {
		return fmt.Errorf("writing the config file: %w", err)
	}
	return nil
}

// Start runs `gateway run -config CONFIG EXTRA...` in Dir with the gateway
// binary bin, its output going to out, environ added to this process's
// environment.
func (in *Install) Start(bin string, out io.Writer, environ []string, extra ...string) (*Process, error) {
	cmd := exec.Command(bin, append([]string{"run", "-config", in.Config}, extra...)...)
	cmd.Dir = in.Dir
	cmd.Env = append(os.Environ(), environ...)
	if out != nil {
		cmd.Stdout, cmd.Stderr = out, out
	}
	return StartProcess(cmd)
}

// get fetches path from the admin endpoint and decodes its JSON into v,
// returning the HTTP status.
func (in *Install) get(path string, v any) (int, error) {
	resp, err := in.client.Get("http://" + in.Admin + path)
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	if v == nil {
		return resp.StatusCode, nil
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return resp.StatusCode, fmt.Errorf("decoding %s: %w", path, err)
	}
	return resp.StatusCode, nil
}

// Status fetches /v1/status.
func (in *Install) Status() (gateway.Status, error) {
	var st gateway.Status
	_, err := in.get("/v1/status", &st)
	return st, err
}

// Ready reports whether /readyz answers 200.
func (in *Install) Ready() bool {
	code, err := in.get("/readyz", nil)
	return err == nil && code == http.StatusOK
}

// Platform returns the platform called name in st.
func Platform(st gateway.Status, name string) (supervisor.Status, bool) {
	for _, p := range st.Platforms {
		if p.Name == name {
			return p, true
		}
	}
	return supervisor.Status{}, false
}

// InState is a WaitPlatform condition: the platform is in state.
func InState(state supervisor.State) func(supervisor.Status) bool {
	return func(p supervisor.Status) bool { return p.State == state }
}

// WaitPlatform polls /v1/status until platform name satisfies ok and
// returns it; after timeout it returns the last status seen and an error.
func (in *Install) WaitPlatform(name string, timeout time.Duration, ok func(supervisor.Status) bool) (supervisor.Status, error) {
	var last supervisor.Status
	err := fakekit.Poll(timeout, func() bool {
		st, err := in.Status()
		if err != nil {
			return false
		}
		p, found := Platform(st, name)
		if found {
			last = p
		}
		return found && ok(p)
	})
	if err != nil {
		return last, fmt.Errorf("platform %q did not reach the expected state within %s; last: %+v", name, timeout, last)
	}
	return last, nil
}

// Build builds the gateway and plugin binaries into dir, in parallel, with
// the version stamped in as `make build` does; targets maps a binary's name
// to its package, relative to the module root ("./plugins/http"), optionally
// preceded by build flags ("-tags=gateway_protocol1 ./plugins/http"). A
// target whose folder does not exist yet is skipped. It returns the built
// binaries by name.
func Build(dir string, race bool, targets map[string]string) (map[string]string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return nil, err
	}
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	bins := map[string]string{}
	for name, target := range targets {
		fields := strings.Fields(target)
		if len(fields) == 0 {
			return nil, fmt.Errorf("building %s: no package given", name)
		}
		src, flags := fields[len(fields)-1], fields[:len(fields)-1]
		if _, err := os.Stat(filepath.Join(root, src)); err != nil {
			continue // a plugin not written yet
		}
		out := filepath.Join(dir, name)
		wg.Go(func() {
			args := []string{"build", "-ldflags", LDFlags("test", "test"), "-o", out}
			if race {
				args = append(args, "-race")
			}
			args = append(args, flags...)
			cmd := exec.Command("go", append(args, src)...)
			cmd.Dir = root
			b, err := cmd.CombinedOutput()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("building %s: %w\n%s", src, err, b))
				return
			}
			bins[name] = out
		})
	}
	wg.Wait()
	return bins, errors.Join(errs...)
}

// LDFlags are the linker flags that stamp a version and commit into the
// host and every plugin, as the Makefile does.
func LDFlags(version, commit string) string {
	return "-X github.com/plughost/gateway/host/version.Version=" + version +
		" -X github.com/plughost/gateway/host/version.Commit=" + commit +
		" -X github.com/plughost/gateway/shared.Version=" + version
}

// ModuleRoot returns the folder of the module's go.mod.
func ModuleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("finding the module root: %w", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out))), nil
}
