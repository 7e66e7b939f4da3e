package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/plughost/gateway/host/access"
)

func usageCmd(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("usage", stderr)
	cfgFlag := configFlag(fs)
	asJSON := fs.Bool("json", false, "print the JSON of the admin endpoint")
	since := fs.String("since", "24h", "how far back: a duration (24h, 7d is 168h) or an RFC 3339 time")
	top := fs.Int("top", access.DefaultUsageTop, "how many users to list, by tokens (0: all)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if _, err := access.ParseSince(*since, time.Now()); err != nil {
		return exitf(2, "-since: %v", err)
	}
	if *top < 0 {
		return exitf(2, "-top must be 0 (all users) or more, not %d", *top)
	}
	cfg, err := loadConfigForControl(*cfgFlag, stderr)
	if err != nil {
		return err
	}
	q := url.Values{"since": {*since}, "top": {strconv.Itoa(*top)}}
	var raw json.RawMessage
	if err := callAdmin(cfg, http.MethodGet, "/v1/usage?"+q.Encode(), nil, &raw); err != nil {
		return err
	}
	if *asJSON {
		_, _ = stdout.Write(raw)
		return nil
	}
	var u access.Usage
	if err := json.Unmarshal(raw, &u); err != nil {
		return exitf(1, "reading the admin endpoint's answer: %v", err)
	}
	printUsage(stdout, u)
	return nil
}

func printUsage(w io.Writer, u access.Usage) {
	fmt.Fprintf(w, "usage from %s to %s: %d turns, %d tokens (%d prompt, %d completion)\n\n",
		fmtTime(u.Since), fmtTime(u.Until), u.Total.Turns, u.Total.TotalTokens, u.Total.PromptTokens, u.Total.CompletionTokens)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PLATFORM\tAGENT\tTURNS\tPROMPT\tCOMPLETION\tTOTAL")
	for _, a := range u.ByAgent {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\n", a.Platform, a.Agent, a.Turns, a.PromptTokens, a.CompletionTokens, a.TotalTokens)
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PLATFORM\tAGENT\tUSER ID\tTURNS\tPROMPT\tCOMPLETION\tTOTAL")
	for _, x := range u.Users {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\n", x.Platform, x.Agent, x.UserID, x.Turns, x.PromptTokens, x.CompletionTokens, x.TotalTokens)
	}
	_ = tw.Flush()
	if u.UsersOmitted > 0 {
		fmt.Fprintf(w, "(%d more users; -top 0 lists all)\n", u.UsersOmitted)
	}
}
