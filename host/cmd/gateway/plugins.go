package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/plughost/gateway/host/supervisor"
	"github.com/plughost/gateway/shared"
)

const pluginPrefix = "gateway-plugin-"

func pluginsCmd(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("plugins", stderr)
	cfgFlag := configFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgFlag)
	if err != nil {
		return err
	}
	dir := cfg.Gateway.PluginDir
	entries, err := os.ReadDir(dir)
	if err != nil {
		return exitf(1, "reading plugin_dir: %v", err)
	}
	usedBy := map[string][]string{}
	pinned := map[string]string{} // plugin → the sha256 a platform pins it to
	for _, p := range cfg.Platforms {
		usedBy[p.Plugin] = append(usedBy[p.Plugin], p.Name)
		if p.SHA256 != "" && pinned[p.Plugin] == "" {
			pinned[p.Plugin] = p.SHA256
		}
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PLUGIN\tDESCRIBES AS\tVERSION\tPROTOCOL\tPLATFORMS\tDESCRIPTION")
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), pluginPrefix) && !e.IsDir() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	for _, file := range names {
		name := strings.TrimPrefix(file, pluginPrefix)
		used := strings.Join(usedBy[name], ",")
		if used == "" {
			used = "-"
		}
		desc, err := inspect(supervisor.Binary{Path: filepath.Join(dir, file), Dir: dir, SHA256: pinned[name]})
		if err != nil {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t%s\tnot a working plugin: %s\n", name, used, firstLine(err.Error()))
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", name, desc.Name, desc.Version, shared.ProtocolVersion, used, desc.Description)
	}
	return tw.Flush()
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
