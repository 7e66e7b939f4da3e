package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"time"

	"github.com/plughost/gateway/host/access"
	"github.com/plughost/gateway/host/admin"
	"github.com/plughost/gateway/host/config"
	"github.com/plughost/gateway/host/pidlock"
)

// parseWithArgs parses flags that may come before, between or after the
// positional arguments (`pairing approve CODE -config FILE`) and returns
// the positional ones.
func parseWithArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			return nil, &exitError{code: 0}
		}
		if err != nil {
			return nil, &exitError{code: 2}
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// callAdmin sends a request to the running gateway's admin endpoint and
// decodes a 2xx answer into out. An error answer becomes exit 1 with the
// endpoint's reason; a gateway that is not running, exit 1 saying so.
func callAdmin(cfg *config.Config, method, path string, in, out any) error {
	st, err := pidlock.Probe(cfg.Gateway.StateDir)
	if err != nil {
		return exitf(1, "%v", err)
	}
	if st.State != pidlock.Running {
		return exitf(1, "the gateway is not running (state_dir %s)", cfg.Gateway.StateDir)
	}
	addr := cfg.Gateway.Admin
	if st.Record != nil && st.Record.Admin != "" {
		addr = st.Record.Admin
	}
	client, base := admin.Client(addr, 10*time.Second)
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return exitf(1, "the gateway's admin endpoint %s does not answer: %v", addr, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return exitf(1, "reading the admin endpoint's answer: %v", err)
	}
	if resp.StatusCode/100 != 2 {
		var eb access.ErrorBody
		if json.Unmarshal(raw, &eb) == nil && eb.Error != "" {
			return exitf(1, "%s", eb.Error)
		}
		if resp.StatusCode == http.StatusNotFound {
			return exitf(1, "the running gateway does not serve %s (an older version?)", path)
		}
		return exitf(1, "the admin endpoint answered %s", resp.Status)
	}
	if out != nil {
		if rb, ok := out.(*json.RawMessage); ok {
			*rb = raw
			return nil
		}
		if err := json.Unmarshal(raw, out); err != nil {
			return exitf(1, "reading the admin endpoint's answer: %v", err)
		}
	}
	return nil
}

// fmtTime prints t for a table: UTC, to the second.
func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}
