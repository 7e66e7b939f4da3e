package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"text/tabwriter"
	"time"

	"github.com/plughost/gateway/host/admin"
	"github.com/plughost/gateway/host/gateway"
	"github.com/plughost/gateway/host/pidlock"
	"github.com/plughost/gateway/host/supervisor"
)

// Exit codes of `gateway status`.
const (
	statusRunning    = 0
	statusStale      = 1
	statusNotRunning = 3
)

func statusCmd(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("status", stderr)
	cfgFlag := configFlag(fs)
	asJSON := fs.Bool("json", false, "print the status JSON of the admin endpoint")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfigForControl(*cfgFlag, stderr)
	if err != nil {
		return err
	}
	st, err := pidlock.Probe(cfg.Gateway.StateDir)
	if err != nil {
		return exitf(statusNotRunning, "%v", err)
	}
	switch st.State {
	case pidlock.NotRunning:
		fmt.Fprintln(stdout, "not running")
		return &exitError{code: statusNotRunning}
	case pidlock.Stale:
		pid := "unknown"
		if st.Record != nil {
			pid = fmt.Sprint(st.Record.PID)
		}
		fmt.Fprintf(stdout, "not running (a stale PID file of pid %s was left in %s; the next start takes over)\n", pid, cfg.Gateway.StateDir)
		return &exitError{code: statusStale}
	}

	addr := cfg.Gateway.Admin
	if st.Record != nil && st.Record.Admin != "" {
		addr = st.Record.Admin
	}
	client, base := admin.Client(addr, 5*time.Second)
	resp, err := client.Get(base + "/v1/status")
	if err != nil {
		fmt.Fprintf(stdout, "running (pid %d), but its admin endpoint %s does not answer: %v\n", st.PID, addr, err)
		return nil
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stdout, "running (pid %d), but its admin endpoint answered %s\n", st.PID, resp.Status)
		return nil
	}
	if *asJSON {
		_, _ = stdout.Write(body)
		return nil
	}
	var doc gateway.Status
	if err := json.Unmarshal(body, &doc); err != nil {
		return exitf(1, "reading the admin endpoint's status: %v", err)
	}
	printStatus(stdout, doc)
	return nil
}

func printStatus(w io.Writer, doc gateway.Status) {
	fmt.Fprintf(w, "running: pid %d, version %s, up %s\n", doc.PID, doc.Version, (time.Duration(doc.UptimeS) * time.Second).String())
	fmt.Fprintf(w, "config:  %s\n", doc.Config)
	if doc.ReloadError != "" {
		fmt.Fprintf(w, "last reload failed: %s\n", doc.ReloadError)
	}
	if doc.Cluster != nil {
		fmt.Fprintf(w, "cluster: %s, this host %s (lease_ttl %s)\n", doc.Cluster.Name, doc.Cluster.Host, doc.Cluster.LeaseTTL)
	}
	fmt.Fprintf(w, "agents:  %d cached (max %d), %d evicted, %d closed\n\n", doc.Cache.Agents, doc.Cache.MaxAgents, doc.Cache.Evictions, doc.Cache.Closed)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PLATFORM\tPLUGIN\tSTATE\tRESTARTS\tPID\tERROR")
	for _, p := range doc.Platforms {
		msg := p.Error
		if p.Hint != "" {
			msg += " (" + p.Hint + ")"
		}
		pid := "-"
		if p.PID != 0 {
			pid = fmt.Sprint(p.PID)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", p.Name, p.Plugin, stateText(p), p.Restarts, pid, msg)
	}
	_ = tw.Flush()
	if len(doc.MCP) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MCP\tSTATE\tTOOLS\tRESTARTS\tPID\tERROR")
	for _, m := range doc.MCP {
		pid := "-"
		if m.PID != 0 {
			pid = fmt.Sprint(m.PID)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\n", m.Name, m.State, m.Tools, m.Restarts, pid, m.Error)
	}
	_ = tw.Flush()
}

// stateText is a platform's state as status prints it: a standby one names
// the host of the cluster that runs it.
func stateText(p supervisor.Status) string {
	if p.State != supervisor.StateStandby {
		return string(p.State)
	}
	return supervisor.StandbyText(p.HeldBy)
}
