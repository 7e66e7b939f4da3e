// Package pgtest runs a throwaway PostgreSQL server for tests and benches:
// Debian's postgresql binaries (installed with apt-get when missing), one
// cluster per test run made by initdb in a temporary folder, listening only
// on a unix socket in that folder, and removed at the end.
//
// initdb and postgres refuse to run as root: when the test runs as root
// the server runs as the "postgres" system user that Debian's package
// creates.
package pgtest

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"
)

// Options tune a Server.
type Options struct {
	// Durable keeps fsync on, as in production, for benches; tests run
	// with fsync off (a crash of the test machine loses nothing of value).
	Durable bool
}

// Server is a running throwaway PostgreSQL cluster.
type Server struct {
	dir  string // the temporary folder: data/, the socket, the log
	cmd  *exec.Cmd
	done chan struct{}
	dbs  atomic.Int64
	stop sync.Once
}

// Port is the (socket-only) port: it names the socket file.
const Port = 5432

// binDir finds Debian's PostgreSQL binaries, installing the package when
// they are missing.
func binDir() (string, error) {
	find := func() string {
		if p, err := exec.LookPath("initdb"); err == nil {
			if real, err := filepath.EvalSymlinks(p); err == nil {
				p = real
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(p), "postgres")); err == nil {
				return filepath.Dir(p)
			}
		}
		dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
		sort.Strings(dirs)
		for i := len(dirs) - 1; i >= 0; i-- {
			if _, err := os.Stat(filepath.Join(dirs[i], "initdb")); err == nil {
				return dirs[i]
			}
		}
		return ""
	}
	if d := find(); d != "" {
		return d, nil
	}
	fmt.Fprintln(os.Stderr, "pgtest: initdb not found: installing Debian's postgresql")
	install := exec.Command("sh", "-c", "apt-get update -qq && apt-get install -y -qq postgresql")
	install.Stdout, install.Stderr = os.Stderr, os.Stderr
	if err := install.Run(); err != nil {
		return "", fmt.Errorf("installing postgresql (apt-get install -y postgresql): %w", err)
	}
	if d := find(); d != "" {
		return d, nil
	}
	return "", errors.New("postgresql installed, but initdb is still not found")
}

// credential is who the server runs as: the postgres user when root.
func credential() (*syscall.Credential, int, int, error) {
	if os.Geteuid() != 0 {
		return nil, os.Getuid(), os.Getgid(), nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, 0, 0, fmt.Errorf("running PostgreSQL as root is refused, and there is no postgres user: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, uid, gid, nil
}

// Start initialises and starts a new cluster. Stop removes it.
func Start(opts Options) (*Server, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	cred, uid, gid, err := credential()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir, done: make(chan struct{})}
	fail := func(err error) (*Server, error) {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		return fail(err)
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return fail(fmt.Errorf("initdb: %w: %s", err, out))
	}
	fsync := "off"
	if opts.Durable {
		fsync = "on"
	}
	logf, err := os.Create(filepath.Join(dir, "postgres.log"))
	if err != nil {
		return fail(err)
	}
	defer logf.Close()
	s.cmd = exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-k", dir, "-p", strconv.Itoa(Port),
		"-c", "listen_addresses=", "-c", "fsync="+fsync, "-c", "max_connections=300",
		"-c", "shared_buffers=32MB", "-c", "log_min_messages=warning")
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	// The server dies with the test process, even a SIGKILLed one
	// (Go sets the death signal after switching user).
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT}
	if err := s.cmd.Start(); err != nil {
		return fail(fmt.Errorf("starting postgres: %w", err))
	}
	go func() { _ = s.cmd.Wait(); close(s.done) }()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		conn, err := pgx.Connect(ctx, s.DSN("postgres"))
		if err == nil {
			_ = conn.Close(ctx)
			return s, nil
		}
		select {
		case <-s.done:
			log, _ := os.ReadFile(filepath.Join(dir, "postgres.log"))
			return fail(fmt.Errorf("postgres exited at start: %s", log))
		case <-ctx.Done():
			s.Stop()
			return nil, fmt.Errorf("postgres did not accept connections within 30s: %w", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop shuts the server down at once and removes its folder.
func (s *Server) Stop() {
	s.stop.Do(func() {
		_ = s.cmd.Process.Signal(syscall.SIGQUIT) // immediate shutdown
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.done
		}
		_ = os.RemoveAll(s.dir)
	})
}

// SocketPath is the server's unix socket, for a test proxy in front of it.
func (s *Server) SocketPath() string {
	return filepath.Join(s.dir, ".s.PGSQL."+strconv.Itoa(Port))
}

// DSN is the connection string of database db.
func (s *Server) DSN(db string) string {
	return fmt.Sprintf("host=%s port=%d user=postgres dbname=%s sslmode=disable", s.dir, Port, db)
}

// NewDatabase creates an empty database and returns its DSN: each test
// gets its own.
func (s *Server) NewDatabase(tb testing.TB) string {
	tb.Helper()
	return s.DSN(s.CreateDatabase(tb))
}

// DSNVia is the DSN of database db through a TCP address (a test proxy in
// front of SocketPath).
func (s *Server) DSNVia(addr, db string) string {
	host, port, _ := strings.Cut(addr, ":")
	return fmt.Sprintf("host=%s port=%s user=postgres dbname=%s sslmode=disable connect_timeout=2", host, port, db)
}

// CreateDatabase creates an empty database and returns its name.
func (s *Server) CreateDatabase(tb testing.TB) string {
	tb.Helper()
	name := fmt.Sprintf("test_%d", s.dbs.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		tb.Fatalf("pgtest: connecting: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		tb.Fatalf("pgtest: creating database: %v", err)
	}
	return name
}

// Main runs a package's tests with a server in *srv, stopped after them,
// then checks for leaked goroutines (goleak, the server's own watcher
// aside): call it from TestMain. A server that cannot start fails the run;
// it is never skipped. When benchmarks run (-test.bench), the server is
// durable (fsync on), as in production.
func Main(m *testing.M, srv **Server, opts ...goleak.Option) {
	flag.Parse()
	durable := false
	if f := flag.Lookup("test.bench"); f != nil && f.Value.String() != "" {
		durable = true
	}
	s, err := Start(Options{Durable: durable})
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgtest:", err)
		os.Exit(1)
	}
	*srv = s
	code := m.Run()
	if code == 0 {
		opts = append(opts, goleak.IgnoreAnyFunction("github.com/plughost/gateway/host/store/pgtest.Start.func2"))
		if err := goleak.Find(opts...); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	s.Stop()
	os.Exit(code)
}
