// Command gateway is the chat gateway host: it runs platform plugins and
// connects their conversations to LLM agents.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// exitError ends the program with a code and, unless empty, a one-line reason.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func exitf(code int, format string, args ...any) error {
	return &exitError{code: code, msg: fmt.Sprintf(format, args...)}
}

type command struct {
	name  string
	usage string
	run   func(args []string, stdout, stderr io.Writer) error
}

var commands = []command{
	{"run", "run the gateway in the foreground (SIGTERM stops, SIGHUP reloads)", runCmd},
	{"validate", "check the config file and every platform's config block", validateCmd},
	{"status", "show the running gateway's state", statusCmd},
	{"stop", "stop the running gateway and wait until it has exited", stopCmd},
	{"reload", "make the running gateway reload its config", reloadCmd},
	{"service-unit", "print a systemd unit for this installation", serviceUnitCmd},
	{"plugins", "list the plugin binaries in plugin_dir", pluginsCmd},
	{"pairing", "list, approve or revoke who may DM the agent (list, approve CODE, revoke PLATFORM USER_ID)", pairingCmd},
	{"usage", "show token usage per platform, agent and user", usageCmd},
	{"version", "print version information", versionCmd},
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: gateway COMMAND [flags]")
	fmt.Fprintln(w)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-13s %s\n", c.name, c.usage)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "The config file is -config FILE, else $GATEWAY_CONFIG, else ./config.hcl.")
}

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

func realMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	name := args[0]
	if name == "-h" || name == "-help" || name == "--help" || name == "help" {
		usage(stdout)
		return 0
	}
	for _, c := range commands {
		if c.name != name {
			continue
		}
		err := c.run(args[1:], stdout, stderr)
		if err == nil {
			return 0
		}
		var ee *exitError
		if errors.As(err, &ee) {
			if ee.msg != "" {
				fmt.Fprintln(stderr, "gateway: "+ee.msg)
			}
			return ee.code
		}
		fmt.Fprintln(stderr, "gateway: "+err.Error())
		return 1
	}
	fmt.Fprintf(stderr, "gateway: unknown command %q\n\n", name)
	usage(stderr)
	return 2
}
