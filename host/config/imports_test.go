package config_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestOnlyTheWiringImportsConfig keeps the host's seams: the packages under
// host/ take their own small settings types (supervisor.RestartPolicy,
// provider.Config, agent.Config), and only the config package itself, the
// wiring in host/gateway and the CLI know the HCL structs.
func TestOnlyTheWiringImportsConfig(t *testing.T) {
	const module = "github.com/plughost/gateway/"
	allowed := map[string]bool{
		module + "host/config":      true,
		module + "host/gateway":     true,
		module + "host/cmd/gateway": true,
	}
	out, err := exec.Command("go", "list", "-deps",
		"-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}{{range .TestImports}} {{.}}{{end}}",
		module+"host/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	checked := 0
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		pkg, imports, _ := strings.Cut(line, " ")
		if !strings.HasPrefix(pkg, module+"host/") {
			continue
		}
		checked++
		for imp := range strings.FieldsSeq(imports) {
			if imp == module+"host/config" && !allowed[pkg] {
				t.Errorf("%s imports host/config: give it its own settings type and convert in host/gateway", pkg)
			}
		}
	}
	if checked < 10 {
		t.Fatalf("go list listed only %d packages under host/: the check saw nothing", checked)
	}
}
