package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
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
	for _, p := range cfg.Platforms {
		usedBy[p.Plugin] = append(usedBy[p.Plugin], p.Name)
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
		desc, protocol, err := inspect(filepath.Join(dir, file))
		if err != nil {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t%s\tnot a working plugin: %s\n", name, used, firstLine(err.Error()))
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", name, desc.Name, desc.Version, protocol, used, desc.Description)
	}
	return tw.Flush()
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
