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
	"google.golang.org/grpc/health/grpc_health_v1"

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
	conn   *shared.GRPCClient
	// health is go-plugin's gRPC health service in the plugin, for
	// liveness pings: it answers only while the plugin process runs.
	health grpc_health_v1.HealthClient
	runner *procRunner
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
		GRPCDialOptions:  shared.GRPCDialOptions(),
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
	conn, ok := raw.(*shared.GRPCClient)
	if !ok {
		client.Kill()
		return nil, fmt.Errorf("plugin %s: unexpected client type %T", opts.path, raw)
	}
	p := &process{client: client, conn: conn, runner: pr}
	if gc, ok := rpc.(*plugin.GRPCClient); ok {
		p.health = grpc_health_v1.NewHealthClient(gc.Conn)
	}
	if pr != nil {
		p.pid = pr.pid
	}
	return p, nil
}

// ping asks the plugin's health service whether it is serving; ctx bounds
// the wait. A frozen (SIGSTOPped, deadlocked) plugin misses it.
func (p *process) ping(ctx context.Context) error {
	if p.health == nil {
		return nil
	}
	resp, err := p.health.Check(ctx, &grpc_health_v1.HealthCheckRequest{Service: plugin.GRPCServiceName})
	if err != nil {
		return err
	}
	if resp.GetStatus() != grpc_health_v1.HealthCheckResponse_SERVING {
		return fmt.Errorf("plugin health is %s", resp.GetStatus())
	}
	return nil
}

// killWait bounds how long the plugin process may take to exit once asked
// (go-plugin's Kill) and again once SIGKILLed.
const killWait = 2 * time.Second

// stop asks the plugin to stop gracefully (its Stop call gets grace), then
// kills it. go-plugin's Kill waits on a shutdown RPC with no deadline, which
// a frozen plugin never answers, so it runs aside: once killWait passes the
// process is SIGKILLed, whatever Kill is doing. stop returns within about
// grace + 2*killWait.
// A zero grace (a plugin known not to answer) SIGKILLs it at once.
func (p *process) stop(grace time.Duration) {
	if grace > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), grace)
		_ = p.conn.Stop(ctx)
		cancel()
	} else if p.runner != nil {
		_ = p.runner.Kill(context.Background())
	}
	killed := make(chan struct{})
	go func() { p.client.Kill(); close(killed) }()
	select {
	case <-killed:
		return
	case <-time.After(killWait):
	}
	if p.runner != nil {
		_ = p.runner.Kill(context.Background())
	}
	select {
	case <-killed:
	case <-time.After(killWait):
		// The process is SIGKILLed; what is left (go-plugin's log copier
		// on a pipe a grandchild holds) ends on its own.
	}
}

// Inspect starts the plugin binary at path just long enough to ask it to
// describe itself, for `gateway plugins` and `gateway validate`.
func Inspect(ctx context.Context, path string, logger hclog.Logger) (shared.Description, error) {
	p, err := startProcess(startOptions{path: path, logger: logger, logLevel: "warn"})
	if err != nil {
		return shared.Description{}, err
	}
	defer p.stop(time.Second)
	d, err := p.conn.Describe(ctx)
	if err != nil {
		return shared.Description{}, fmt.Errorf("plugin %s: describe: %w", path, err)
	}
	return d, nil
}
