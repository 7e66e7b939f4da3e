package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/plughost/gateway/host/config"
	"github.com/plughost/gateway/host/gateway"
	"github.com/plughost/gateway/host/logsink"
	"github.com/plughost/gateway/host/pidlock"
)

func runCmd(args []string, _, stderr io.Writer) error {
	fs := newFlagSet("run", stderr)
	cfgFlag := configFlag(fs)
	replace := fs.Bool("replace", false, "stop the running gateway first, then take over (for upgrades)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgFlag)
	if err != nil {
		return err
	}
	// Logging never blocks the host: a stuck stderr (a pipe nobody reads)
	// drops lines, counted, instead of stalling the loops that log.
	sink := logsink.New(stderr, logsink.Options{JSON: cfg.Gateway.LogFormat == "json"})
	defer sink.Close(2 * time.Second)
	logger := newLogger(cfg.Gateway, sink)
	if *replace {
		timeout := cfg.Gateway.ShutdownTimeout + 10*time.Second
		if err := pidlock.Stop(context.Background(), cfg.Gateway.StateDir, timeout, false, logger); err != nil {
			return exitf(1, "replacing the running gateway: %v", err)
		}
	}
	path := configPath(*cfgFlag)
	err = gateway.Run(context.Background(), gateway.Options{
		Config:      cfg,
		Logger:      logger,
		Argv:        os.Args,
		DroppedLogs: sink.Dropped,
		Reload: func() (*config.Config, error) {
			next, diags := config.Load(path)
			if diags.HasErrors() {
				return nil, errors.New(config.FormatDiagnostics(diags))
			}
			return next, nil
		},
	})
	var held *pidlock.HeldError
	if errors.As(err, &held) {
		fmt.Fprintln(stderr, held.Error())
		return &exitError{code: 1}
	}
	if err != nil {
		return exitf(1, "%v", err)
	}
	return nil
}
