// Command bench is `make bench`: it runs the real gateway (bin/gateway and
// bin/plugins/*, built by `make build`) as a subprocess and measures its
// throughput, latency, start-up, recovery, lock takeover, memory and
// durable commits, each against a baseline measured in the same run, then
// soaks it under load while its plugin is killed at random. It prints one
// table and writes it to bench/RESULTS.md.
//
//	go run ./bench                       # everything (what make bench runs)
//	go run ./bench -soak 20s -quick      # a quick check
//	go run ./bench -only throughput,latency
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

// environment is where the binaries are and where runs put their files.
type environment struct {
	root      string // module root
	gateway   string // bin/gateway
	pluginDir string // bin/plugins, absolute
	tmp       string // this run's temp dir
}

var env environment

// stderr is where progress goes; the table goes to stdout.
var stderr = os.Stderr

// options are the command-line flags.
type options struct {
	quick   bool
	soak    time.Duration
	clients int
	only    map[string]bool
	out     string
}

// sections in the order they run; latency uses the throughput's result.
var sections = []string{"throughput", "latency", "firstbyte", "coldstart", "recovery", "takeover", "memory", "commits", "gobench", "soak"}

// runner carries what sections share.
type runner struct {
	opts options
	t    *table
	// gwMax is the gateway's closed-loop throughput, for the latency and
	// soak rates.
	gwMax float64
}

func main() {
	if addr := os.Getenv(bareEnv); addr != "" {
		if err := serveBare(addr); err != nil {
			fmt.Fprintln(os.Stderr, "bare server:", err)
			os.Exit(1)
		}
		return
	}
	os.Exit(realMain())
}

func realMain() int {
	var o options
	var only, binDir string
	flag.BoolVar(&o.quick, "quick", false, "fewer and shorter runs: a smoke check, not figures to quote")
	flag.DurationVar(&o.soak, "soak", 150*time.Second, "soak duration; 0 skips the soak")
	flag.IntVar(&o.clients, "c", 16, "concurrent clients of the closed-loop throughput run")
	flag.StringVar(&only, "only", "", "comma-separated sections to run: "+strings.Join(sections, ","))
	flag.StringVar(&o.out, "out", "", "markdown output (default bench/RESULTS.md for a full run, none otherwise)")
	flag.StringVar(&binDir, "bin", "bin", "folder holding gateway and plugins/ (relative to the module root)")
	flag.Parse()

	if only != "" {
		o.only = map[string]bool{}
		for _, s := range strings.Split(only, ",") {
			s = strings.TrimSpace(s)
			if !slices.Contains(sections, s) {
				fmt.Fprintf(os.Stderr, "unknown section %q; sections: %s\n", s, strings.Join(sections, ","))
				return 2
			}
			o.only[s] = true
		}
	}
	if err := setupEnv(binDir); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	defer os.RemoveAll(env.tmp)
	defer killAll()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sigs
		killAll()
		os.RemoveAll(env.tmp)
		os.Exit(130)
	}()

	full := o.only == nil && !o.quick
	if o.out == "" && full {
		o.out = filepath.Join(env.root, "bench", "RESULTS.md")
	}
	r := &runner{opts: o, t: &table{}}
	began := time.Now()
	for _, s := range sections {
		if o.only != nil && !o.only[s] {
			continue
		}
		if s == "soak" && o.soak <= 0 {
			continue
		}
		fmt.Fprintf(os.Stderr, "== %s (%s elapsed)\n", s, time.Since(began).Round(time.Second))
		r.run(s)
		for e, n := range takeErrors() {
			fmt.Fprintf(stderr, "    error ×%d: %s\n", n, oneLine(e))
		}
	}
	took := time.Since(began).Round(time.Second)

	header := fmt.Sprintf("# gateway benchmarks\n\n%s · nproc %d · %s/%s · %s · `%s` · took %s",
		time.Now().Format("2006-01-02 15:04 MST"), nproc(), runtime.GOOS, runtime.GOARCH, runtime.Version(),
		strings.Join(append([]string{"go run ./bench"}, os.Args[1:]...), " "), took)
	fmt.Println()
	fmt.Println(strings.ReplaceAll(strings.TrimPrefix(header, "# gateway benchmarks\n\n"), "`", ""))
	fmt.Println()
	r.t.print(os.Stdout)
	if o.out != "" {
		f, err := os.Create(o.out)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		r.t.markdown(f, header)
		fmt.Fprint(f, resultsNotes)
		f.Close()
		fmt.Printf("\nwritten to %s\n", o.out)
	}
	for _, row := range r.t.rows {
		if row.Verdict == failed {
			return 1
		}
	}
	return 0
}

// resultsNotes follows the table in RESULTS.md.
const resultsNotes = `
Every figure is measured against the real binaries (bin/gateway, bin/plugins/*) run as
subprocesses on loopback, next to a baseline measured in the same run. "Spread" is the
minimum–maximum over the runs. The machine is shared: compare ratios, not absolute times.
Regenerate with ` + "`make bench`" + ` (about 5–6 minutes on 2 cores, including a 150 s soak).
`

func (r *runner) run(section string) {
	var err error
	switch section {
	case "throughput":
		err = r.throughput()
	case "latency":
		err = r.latency()
	case "firstbyte":
		err = r.firstByte()
	case "coldstart":
		err = r.coldStart()
	case "recovery":
		err = r.recovery()
	case "takeover":
		err = r.takeover()
	case "memory":
		err = r.memory()
	case "commits":
		err = r.commits()
	case "gobench":
		err = r.goBenchmarks()
	case "soak":
		err = r.soakRun()
	}
	if err != nil {
		r.t.fail(section, err)
	}
}

// runs returns n, or fewer under -quick.
func (r *runner) runs(n int) int {
	if r.opts.quick {
		return max(1, (n+1)/2)
	}
	return n
}

// dur returns d, or a third of it under -quick.
func (r *runner) dur(d time.Duration) time.Duration {
	if r.opts.quick {
		return d / 3
	}
	return d
}

// setupEnv finds the module root and the built binaries.
func setupEnv(binDir string) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	if !filepath.IsAbs(binDir) {
		binDir = filepath.Join(root, binDir)
	}
	env.root = root
	env.gateway = filepath.Join(binDir, "gateway")
	env.pluginDir = filepath.Join(binDir, "plugins")
	for _, p := range []string{env.gateway, filepath.Join(env.pluginDir, "gateway-plugin-http")} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%s is missing: run `make build` first (make bench does)", p)
		}
	}
	env.tmp, err = os.MkdirTemp("", "gateway-bench-")
	return err
}

// moduleRoot walks up from the working directory to go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory: run from the repository")
		}
		dir = parent
	}
}

// nproc is what `nproc` prints: the CPUs this process may use.
func nproc() int {
	if out, err := exec.Command("nproc").Output(); err == nil {
		var n int
		if _, err := fmt.Sscan(string(out), &n); err == nil {
			return n
		}
	}
	return runtime.NumCPU()
}
