package supervisor

import (
	"context"
	"encoding/json"
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
	conn   shared.PluginConn
	// health is go-plugin's gRPC health service in the plugin, for
	// liveness pings: it answers only while the plugin process runs.
	health grpc_health_v1.HealthClient
	runner *procRunner
	pid    int
}

// startOptions configure startProcess.
type startOptions struct {
	binary       Binary
	logLevel     string
	startTimeout time.Duration
	logger       hclog.Logger
}

// startProcess starts the plugin at path and completes the go-plugin
// handshake (gRPC only, AutoMTLS). Whatever it started, a failing call kills.
func startProcess(opts startOptions) (*process, error) {
	path := opts.binary.Path
	bin, err := openBinary(opts.binary)
	if err != nil {
		return nil, err
	}
	// The child has its own copy once started; ours is not needed after.
	defer bin.Close()
	if afterVerify != nil {
		afterVerify(path)
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
			// The verified file itself is executed, passed to the child as
			// fd 3 (so a script plugin's interpreter can open it too): a
			// binary swapped in at path after the checks never runs.
			cmd := exec.Command(verifiedExe)
			cmd.Args[0] = path
			cmd.ExtraFiles = []*os.File{bin}
			cmd.Env = append(append(pluginEnv(), spec.Env...), shared.EnvLogLevel+"="+opts.logLevel)
			var err error
			pr, err = newProcRunner(cmd, path)
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
		return nil, fmt.Errorf("starting plugin %s: %w", path, err)
	}
	raw, err := rpc.Dispense(shared.PluginName)
	if err != nil {
		client.Kill()
		return nil, fmt.Errorf("plugin %s: %w", path, err)
	}
	conn, ok := raw.(shared.PluginConn)
	if !ok {
		client.Kill()
		return nil, fmt.Errorf("plugin %s: unexpected client type %T", path, raw)
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

// verifiedExe is how a child names the verified binary it inherits as fd 3.
const verifiedExe = "/proc/self/fd/3"

// Inspect starts the plugin binary just long enough to ask it to describe
// itself, for `gateway plugins`, `gateway validate` and reload. It goes
// through the same checks as a platform's start.
func Inspect(ctx context.Context, b Binary, logger hclog.Logger) (shared.Description, error) {
	path := b.Path
	p, err := startProcess(startOptions{binary: b, logger: logger, logLevel: "warn"})
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

// ErrNotDecoded is returned by Check when the decode func failed, so the
// plugin was not asked to check its config.
var ErrNotDecoded = errors.New("config block not decoded")

// Check starts the plugin like Inspect, decodes the platform's config block
// against the schema it describes, and has the plugin check the result
// (Configure, without Run), for `gateway validate`: a config the plugin
// would refuse at run time is reported before then. A refusal is a
// *shared.FatalError; a decode failure ErrNotDecoded.
func Check(ctx context.Context, b Binary, decode func([]shared.Attribute) (json.RawMessage, error), logger hclog.Logger) (shared.Description, error) {
	p, err := startProcess(startOptions{binary: b, logger: logger, logLevel: "warn"})
	if err != nil {
		return shared.Description{}, err
	}
	defer p.stop(time.Second)
	d, err := p.conn.Describe(ctx)
	if err != nil {
		return shared.Description{}, fmt.Errorf("plugin %s: describe: %w", b.Path, err)
	}
	raw, err := decode(d.Schema)
	if err != nil {
		return d, fmt.Errorf("%w: %w", ErrNotDecoded, err)
	}
	if err := p.conn.Configure(ctx, shared.Config{Raw: raw}); err != nil {
		var fatal *shared.FatalError
		if errors.As(err, &fatal) {
			return d, err
		}
		return d, fmt.Errorf("plugin %s: checking its config: %w", b.Path, err)
	}
	return d, nil
}
