package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// verdict says whether a row met its goal.
type verdict int

const (
	// info rows have no goal.
	info verdict = iota
	met
	missed
	// failed rows could not be measured.
	failed
)

func (v verdict) String() string {
	switch v {
	case met:
		return "yes"
	case missed:
		return "NO"
	case failed:
		return "ERROR"
	}
	return "–"
}

// row is one line of the results table.
type row struct {
	Figure   string
	How      string
	Result   string
	Baseline string
	Goal     string
	Verdict  verdict
}

// table collects rows as the sections finish.
type table struct {
	rows []row
}

func (t *table) add(r row) {
	t.rows = append(t.rows, r)
	fmt.Fprintf(stderr, "  → %s: %s (baseline %s; %s) %s\n", r.Figure, r.Result, r.Baseline, r.Goal, r.Verdict)
}

// fail records a section that could not be measured.
func (t *table) fail(figure string, err error) {
	t.add(row{Figure: figure, Result: "error: " + oneLine(err.Error()), Baseline: "–", Goal: "–", Verdict: failed})
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 160 {
		s = s[:157] + "..."
	}
	return s
}

// print writes the table as aligned text.
func (t *table) print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FIGURE\tRESULT median [spread]\tBASELINE\tRATIO / GOAL\tMET?")
	for _, r := range t.rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Figure, r.Result, r.Baseline, r.Goal, r.Verdict)
	}
	tw.Flush()
	fmt.Fprintln(w)
	fmt.Fprintln(w, "How each figure was measured:")
	for _, r := range t.rows {
		if r.How != "" {
			fmt.Fprintf(w, "  %-28s %s\n", r.Figure+":", r.How)
		}
	}
}

// markdown writes the table as a markdown document.
func (t *table) markdown(w io.Writer, header string) {
	fmt.Fprintln(w, header)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| figure | how | result median [spread] | baseline | ratio / goal | met? |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	esc := func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
	for _, r := range t.rows {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", esc(r.Figure), esc(r.How), esc(r.Result), esc(r.Baseline), esc(r.Goal), r.Verdict)
	}
}

// sample is a set of measurements of one figure, one per run.
type sample []float64

func (s sample) sorted() []float64 {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

// median of the sample; NaN when empty.
func (s sample) median() float64 {
	if len(s) == 0 {
		return math.NaN()
	}
	c := s.sorted()
	n := len(c)
	if n%2 == 1 {
		return c[n/2]
	}
	return (c[n/2-1] + c[n/2]) / 2
}

func (s sample) min() float64 { return slices.Min(s) }
func (s sample) max() float64 { return slices.Max(s) }

// format prints "median [min–max]" with f formatting each value.
func (s sample) format(f func(float64) string) string {
	if len(s) == 0 {
		return "no data"
	}
	if len(s) == 1 {
		return f(s[0]) + " (1 run)"
	}
	return fmt.Sprintf("%s [%s–%s]", f(s.median()), f(s.min()), f(s.max()))
}

// Formatters for common units.
func fmtMs(v float64) string {
	switch {
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f ms", v)
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.1f ms", v)
	}
	return fmt.Sprintf("%.2f ms", v)
}

func fmtRate(v float64) string {
	if v >= 1000 {
		return fmt.Sprintf("%.0f/s", v)
	}
	return fmt.Sprintf("%.1f/s", v)
}

func fmtMiB(v float64) string { return fmt.Sprintf("%.1f MiB", v) }
func fmtKiB(v float64) string { return fmt.Sprintf("%.1f KiB", v) }
func fmtX(v float64) string   { return fmt.Sprintf("%.2f", v) }
func fmtUs(v float64) string  { return fmt.Sprintf("%.0f µs", v) }

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// judge returns met when ok, missed otherwise.
func judge(ok bool) verdict {
	if ok {
		return met
	}
	return missed
}
