package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"text/tabwriter"

	"github.com/plughost/gateway/host/access"
)

const pairingUsage = `Usage:
  gateway pairing list [-json]               codes waiting for approval, and approved users
  gateway pairing approve CODE               approve the user a code was sent to
  gateway pairing revoke PLATFORM USER_ID    withdraw a user's approval`

func pairingCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, pairingUsage)
		return &exitError{code: 2}
	}
	fs := newFlagSet("pairing "+args[0], stderr)
	cfgFlag := configFlag(fs)
	asJSON := false
	if args[0] == "list" {
		fs.BoolVar(&asJSON, "json", false, "print the JSON of the admin endpoint")
	}
	pos, err := parseWithArgs(fs, args[1:])
	if err != nil {
		return err
	}
	want := map[string]int{"list": 0, "approve": 1, "revoke": 2}
	n, ok := want[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "gateway pairing: unknown subcommand %q\n%s\n", args[0], pairingUsage)
		return &exitError{code: 2}
	}
	if len(pos) != n {
		fmt.Fprintln(stderr, pairingUsage)
		return &exitError{code: 2}
	}
	cfg, err := loadConfigForControl(*cfgFlag, stderr)
	if err != nil {
		return err
	}
	switch args[0] {
	case "approve":
		var a access.Approval
		if err := callAdmin(cfg, http.MethodPost, "/v1/pairing/approve", access.ApproveRequest{Code: pos[0]}, &a); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "approved user %s%s on %s; they were told so in their DM\n", a.UserID, named(a.UserName), a.Platform)
	case "revoke":
		if err := callAdmin(cfg, http.MethodPost, "/v1/pairing/revoke", access.RevokeRequest{Platform: pos[0], UserID: pos[1]}, nil); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "revoked user %s on %s: their next DM gets a pairing code again\n", pos[1], pos[0])
	default:
		var raw json.RawMessage
		if err := callAdmin(cfg, http.MethodGet, "/v1/pairing", nil, &raw); err != nil {
			return err
		}
		if asJSON {
			_, _ = stdout.Write(raw)
			return nil
		}
		var p access.Pairing
		if err := json.Unmarshal(raw, &p); err != nil {
			return exitf(1, "reading the admin endpoint's answer: %v", err)
		}
		printPairing(stdout, p)
	}
	return nil
}

func named(name string) string {
	if name == "" {
		return ""
	}
	return " (" + name + ")"
}

func printPairing(w io.Writer, p access.Pairing) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PENDING CODE\tPLATFORM\tUSER ID\tNAME\tEXPIRES")
	for _, c := range p.Pending {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.Code, c.Platform, c.UserID, orDash(c.UserName), fmtTime(c.Expires))
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "APPROVED\tPLATFORM\tUSER ID\tNAME")
	for _, u := range p.Approved {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", fmtTime(u.Approved), u.Platform, u.UserID, orDash(u.UserName))
	}
	_ = tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
