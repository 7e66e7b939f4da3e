package supervisor

import "github.com/hashicorp/go-hclog"

// liveLevelLogger is the logger handed to go-plugin for a plugin's output.
// go-plugin reads its logger's level once, when the plugin starts, and then
// drops every plugin line below it for the plugin's life, so a reload that
// lowers the level would never show a running plugin's debug lines. This
// wrapper reports Trace to go-plugin; the wrapped logger still filters each
// line at its current level, and the plugin filters at the source too (the
// host sends it the level with SetLogLevel).
type liveLevelLogger struct{ hclog.Logger }

func (l liveLevelLogger) GetLevel() hclog.Level { return hclog.Trace }

func (l liveLevelLogger) Named(name string) hclog.Logger {
	return liveLevelLogger{l.Logger.Named(name)}
}

func (l liveLevelLogger) ResetNamed(name string) hclog.Logger {
	return liveLevelLogger{l.Logger.ResetNamed(name)}
}

func (l liveLevelLogger) With(args ...any) hclog.Logger {
	return liveLevelLogger{l.Logger.With(args...)}
}
