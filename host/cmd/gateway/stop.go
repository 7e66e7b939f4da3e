package main

import (
	"context"
	"fmt"
	"io"
	"syscall"
	"time"

	"github.com/plughost/gateway/host/pidlock"
)

func stopCmd(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("stop", stderr)
	cfgFlag := configFlag(fs)
	timeout := fs.Duration("timeout", 0, "how long to wait for the gateway to exit (default shutdown_timeout + 10s)")
	force := fs.Bool("force", false, "SIGKILL the gateway if it has not exited by the timeout")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfigForControl(*cfgFlag, stderr)
	if err != nil {
		return err
	}
	if *timeout <= 0 {
		*timeout = cfg.Gateway.ShutdownTimeout + 10*time.Second
	}
	st, err := pidlock.Probe(cfg.Gateway.StateDir)
	if err != nil {
		return exitf(1, "%v", err)
	}
	if st.State != pidlock.Running {
		fmt.Fprintln(stdout, "not running")
		return nil
	}
	if err := pidlock.Stop(context.Background(), cfg.Gateway.StateDir, *timeout, *force, newLogger(cfg.Gateway, stderr)); err != nil {
		return exitf(1, "%v", err)
	}
	fmt.Fprintf(stdout, "stopped gateway pid %d\n", st.PID)
	return nil
}

func reloadCmd(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("reload", stderr)
	cfgFlag := configFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfigForControl(*cfgFlag, stderr)
	if err != nil {
		return err
	}
	pid, err := pidlock.Signal(cfg.Gateway.StateDir, syscall.SIGHUP)
	if err != nil {
		return exitf(1, "%v", err)
	}
	fmt.Fprintf(stdout, "asked gateway pid %d to reload; `gateway status` shows the result\n", pid)
	return nil
}
