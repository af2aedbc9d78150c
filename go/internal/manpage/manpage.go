// Package manpage writes manual pages (man(7) roff) for the huly-net
// commands: hulyctl's from its cobra commands, the daemons' from their
// flags and HULY_* variables, so the pages cannot drift from --help.
package manpage

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// Page is one manual page.
type Page struct {
	Name        string // command name, e.g. "huly-bridge" or "hulyctl-agents"
	Section     string // "1" when empty
	Summary     string // the NAME line's description
	Synopsis    string // e.g. "huly-bridge [flags]"
	Description string // paragraphs separated by blank lines; indented lines stay as they are
	Options     []Option
	Environment []Item
	Sections    []Item // further sections: title → body
	SeeAlso     []string
	Version     string
}

// Option is one flag.
type Option struct {
	Names string // "--network HOST:PORT" or "-o, --output FORMAT"
	Usage string
}

// Item is a titled entry.
type Item struct {
	Title, Body string
}

// Write renders the page.
func (p Page) Write(w io.Writer) error {
	bw := bufio.NewWriter(w)
	sec := p.Section
	if sec == "" {
		sec = "1"
	}
	fmt.Fprintf(bw, ".TH %s %s \"\" %s \"huly-net manual\"\n", strings.ToUpper(esc(p.Name)), sec, quote("huly-net "+p.Version))
	fmt.Fprintf(bw, ".SH NAME\n%s \\- %s\n", esc(p.Name), esc(p.Summary))
	if p.Synopsis != "" {
		fmt.Fprintf(bw, ".SH SYNOPSIS\n.B %s\n", esc(p.Synopsis))
	}
	if p.Description != "" {
		fmt.Fprint(bw, ".SH DESCRIPTION\n")
		paragraphs(bw, p.Description)
	}
	if len(p.Options) > 0 {
		fmt.Fprint(bw, ".SH OPTIONS\n")
		for _, o := range p.Options {
			fmt.Fprintf(bw, ".TP\n.B %s\n%s\n", esc(o.Names), esc(o.Usage))
		}
	}
	if len(p.Environment) > 0 {
		fmt.Fprint(bw, ".SH ENVIRONMENT\n")
		for _, e := range p.Environment {
			fmt.Fprintf(bw, ".TP\n.B %s\n%s\n", esc(e.Title), esc(e.Body))
		}
	}
	for _, s := range p.Sections {
		fmt.Fprintf(bw, ".SH %s\n", esc(strings.ToUpper(s.Title)))
		paragraphs(bw, s.Body)
	}
	if len(p.SeeAlso) > 0 {
		refs := make([]string, len(p.SeeAlso))
		for i, r := range p.SeeAlso {
			refs[i] = ".BR " + esc(r) + " (1)"
			if i < len(p.SeeAlso)-1 {
				refs[i] += " ,"
			}
		}
		fmt.Fprintf(bw, ".SH SEE ALSO\n%s\n", strings.Join(refs, "\n"))
	}
	return bw.Flush()
}

// paragraphs writes text: blank lines separate paragraphs; a paragraph with
// indented lines is kept as written (a table or an example).
func paragraphs(w io.Writer, text string) {
	for _, para := range strings.Split(strings.TrimSpace(text), "\n\n") {
		lines := strings.Split(para, "\n")
		literal := false
		for _, l := range lines {
			if strings.HasPrefix(l, " ") {
				literal = true
			}
		}
		if literal {
			fmt.Fprint(w, ".PP\n.nf\n")
			for _, l := range lines {
				fmt.Fprintln(w, esc(l))
			}
			fmt.Fprint(w, ".fi\n")
			continue
		}
		fmt.Fprintf(w, ".PP\n%s\n", esc(strings.Join(lines, " ")))
	}
}

// esc makes text safe in roff: backslashes, dashes, and a leading dot or
// quote that would start a request.
func esc(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

func quote(s string) string { return `"` + strings.ReplaceAll(esc(s), `"`, `\(dq`) + `"` }
