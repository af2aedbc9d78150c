package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/huly-net/huly-net/go/network"
)

// printJSON writes v as one line of JSON.
func (a *app) printJSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode output: %w", err)
	}
	b = append(b, '\n')
	if _, err := a.stdout.Write(b); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// table writes aligned columns; the first row is the header.
func (a *app) table(rows [][]string) error {
	tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
	for _, r := range rows {
		if _, err := io.WriteString(tw, strings.Join(r, "\t")+"\n"); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// endpointText shows an endpoint reference the way an operator reads it:
// "HOST:PORT (routed)"; "-" for none, and the raw string when it does not
// parse (a peer may send references this version does not know).
func endpointText(ref string) string {
	if ref == "" {
		return "-"
	}
	er, err := network.ParseEndpointRef(ref)
	if err != nil {
		return ref
	}
	if er.Kind == network.RefNoConnect || er.Host == "" {
		return "- (" + er.Kind.String() + ")"
	}
	return net.JoinHostPort(er.Host, strconv.Itoa(er.Port)) + " (" + er.Kind.String() + ")"
}

// list shows a list of strings in one column; "-" when empty.
func list(s []string) string {
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, ",")
}

// uniqueSorted drops duplicates (a 0.7 server lists a kind once per agent).
func uniqueSorted(s []string) []string {
	seen := make(map[string]bool, len(s))
	out := make([]string, 0, len(s))
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	sort.Strings(out)
	return out
}
