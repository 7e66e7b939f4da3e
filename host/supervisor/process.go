package supervisor

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/hashicorp/go-plugin/runner"

	"github.com/plughost/gateway/shared"
)

// DefaultStartTimeout bounds a plugin's start-up handshake.
const DefaultStartTimeout = 10 * time.Second

// ErrChecksum is returned when a plugin binary does not match its sha256.
var ErrChecksum = errors.New("plugin binary does not match its sha256")

// passedEnv are the host environment variables a plugin inherits. Nothing
// else is passed: the host's environment holds other platforms' tokens and
// provider API keys, and a plugin gets its secrets from its own config
// block. NOTIFY_SOCKET and friends stay with the host.
var passedEnv = []string{"PATH", "HOME", "USER", "TMPDIR", "TZ", "LANG", "LC_ALL",
	"SSL_CERT_FILE", "SSL_CERT_DIR", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
	"http_proxy", "https_proxy", "no_proxy", "GODEBUG", "GOTRACEBACK"}

func pluginEnv() []string {
	var env []string
	for _, k := range passedEnv {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// process is one started plugin process and the host's client for it.
type process struct {
	client *plugin.Client
	conn   shared.PluginConn
	pid    int
}

// startOptions configure startProcess.
type startOptions struct {
	path         string
	sha256       string // hex; empty for none
	logLevel     string
	startTimeout time.Duration
	logger       hclog.Logger
}

// startProcess starts the plugin at opts.path and completes the go-plugin
// handshake (gRPC only, AutoMTLS). Whatever it started, a failing call kills.
func startProcess(opts startOptions) (*process, error) {
	if opts.sha256 != "" {
		sum, err := hex.DecodeString(opts.sha256)
		if err != nil {
			return nil, fmt.Errorf("sha256 %q is not hex: %w", opts.sha256, err)
		}
		ok, err := (&plugin.SecureConfig{Checksum: sum, Hash: sha256.New()}).Check(opts.path)
		if err != nil {
			return nil, fmt.Errorf("checking sha256 of %s: %w", opts.path, err)
		}
		if !ok {
			return nil, fmt.Errorf("%s: %w", opts.path, ErrChecksum)
		}
	}
	timeout := opts.startTimeout
	if timeout <= 0 {
		timeout = DefaultStartTimeout
	}
	var pr *procRunner
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  shared.Handshake,
		VersionedPlugins: shared.VersionedPlugins(nil),
		RunnerFunc: func(_ hclog.Logger, spec *exec.Cmd, _ string) (runner.Runner, error) {
			// go-plugin hands us a spec with the environment it needs
			// (handshake, mTLS cert, socket dir); we add the binary.
			cmd := exec.Command(opts.path)
			cmd.Env = append(append(pluginEnv(), spec.Env...), shared.EnvLogLevel+"="+opts.logLevel)
			var err error
			pr, err = newProcRunner(cmd)
			return pr, err
		},
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		SkipHostEnv:      true, // see pluginEnv
		StartTimeout:     timeout,
		Logger:           liveLevelLogger{opts.logger},
	})
	rpc, err := client.Client()
	if err != nil {
		client.Kill()
		return nil, fmt.Errorf("starting plugin %s: %w", opts.path, err)
	}
	raw, err := rpc.Dispense(shared.PluginName)
	if err != nil {
		client.Kill()
		return nil, fmt.Errorf("plugin %s: %w", opts.path, err)
	}
	conn, ok := raw.(shared.PluginConn)
	if !ok {
		client.Kill()
		return nil, fmt.Errorf("plugin %s: unexpected client type %T", opts.path, raw)
	}
	p := &process{client: client, conn: conn}
	if pr != nil {
		p.pid = pr.pid
	}
	return p, nil
}

// stop asks the plugin to stop gracefully, then kills it: go-plugin's Kill
// waits up to two seconds for the process to exit before SIGKILL.
func (p *process) stop(grace time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	_ = p.conn.Stop(ctx)
	cancel()
	p.client.Kill()
}

// Inspect starts the plugin binary at path just long enough to ask it to
// describe itself, for `gateway plugins` and `gateway validate`.
func Inspect(ctx context.Context, path string, logger hclog.Logger) (shared.Description, error) {
	d, _, err := InspectProtocol(ctx, path, logger)
	return d, err
}

// InspectProtocol is Inspect that also returns the protocol version the
// plugin negotiated.
func InspectProtocol(ctx context.Context, path string, logger hclog.Logger) (shared.Description, int, error) {
	p, err := startProcess(startOptions{path: path, logger: logger, logLevel: "warn"})
	if err != nil {
		return shared.Description{}, 0, err
	}
	defer p.stop(time.Second)
	d, err := p.conn.Describe(ctx)
	if err != nil {
		return shared.Description{}, 0, fmt.Errorf("plugin %s: describe: %w", path, err)
	}
	return d, p.conn.Protocol(), nil
}
