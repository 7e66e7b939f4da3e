package config

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// FormatDiagnostics renders diags one per line, as
// "FILE:LINE:COL: SUMMARY: DETAIL" ("warning: " before the summary of a
// warning), without a trailing newline. It never prints source snippets,
// so a sensitive value in the file cannot leak through a diagnostic.
func FormatDiagnostics(diags hcl.Diagnostics) string {
	lines := make([]string, 0, len(diags))
	for _, diag := range diags {
		var b strings.Builder
		if r := diag.Subject; r != nil && r.Filename != "" {
			b.WriteString(r.Filename)
			if r.Start.Line > 0 {
				fmt.Fprintf(&b, ":%d:%d", r.Start.Line, r.Start.Column)
			}
			b.WriteString(": ")
		}
		if diag.Severity == hcl.DiagWarning {
			b.WriteString("warning: ")
		}
		b.WriteString(diag.Summary)
		if diag.Detail != "" {
			b.WriteString(": ")
			b.WriteString(diag.Detail)
		}
		lines = append(lines, strings.ReplaceAll(b.String(), "\n", " "))
	}
	return strings.Join(lines, "\n")
}

// sortDiagnostics orders diags as they appear in the file, so a user reads
// them top to bottom; those without a position come first.
func sortDiagnostics(diags hcl.Diagnostics) {
	slices.SortStableFunc(diags, func(a, b *hcl.Diagnostic) int {
		if a.Subject == nil || b.Subject == nil {
			return cmp.Compare(boolInt(a.Subject != nil), boolInt(b.Subject != nil))
		}
		return cmp.Or(
			cmp.Compare(a.Subject.Filename, b.Subject.Filename),
			cmp.Compare(a.Subject.Start.Byte, b.Subject.Start.Byte),
		)
	})
}

// boolInt is 1 for true, 0 for false.
func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
