package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/huly-net/huly-net/go/internal/manpage"
	"github.com/huly-net/huly-net/go/internal/version"
)

func (a *app) manCommand() *cobra.Command {
	return &cobra.Command{
		Use:    "man DIR",
		Short:  "Write the manual pages of hulyctl and its commands into DIR",
		Hidden: true,
		Args:   exactArgs(1),
		// No network, no logger: the pages are made from the commands.
		PersistentPreRunE: func(*cobra.Command, []string) error { return nil },
		RunE: action(func(cmd *cobra.Command, args []string) error {
			return writeManPages(cmd.Root(), args[0])
		}),
	}
}

// writeManPages writes hulyctl.1 and hulyctl-COMMAND.1 for every visible
// command.
func writeManPages(root *cobra.Command, dir string) error {
	var cmds []*cobra.Command
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Hidden || (c != root && !c.IsAvailableCommand()) {
			return
		}
		cmds = append(cmds, c)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	for _, c := range cmds {
		name := strings.ReplaceAll(c.CommandPath(), " ", "-")
		page := manpage.Page{
			Name: name, Summary: c.Short, Synopsis: c.UseLine(), Version: version.String(),
			Description: c.Long,
			Sections:    []manpage.Item{{Title: "Exit status", Body: "0 on success, 1 when the command failed (the network is unreachable, a request failed), 2 for a usage error."}},
		}
		if page.Description == "" {
			page.Description = c.Short + "."
		}
		if c.Example != "" {
			page.Sections = append([]manpage.Item{{Title: "Examples", Body: c.Example}}, page.Sections...)
		}
		c.NonInheritedFlags().VisitAll(func(f *pflag.Flag) { page.Options = append(page.Options, manOption(f)) })
		c.InheritedFlags().VisitAll(func(f *pflag.Flag) { page.Options = append(page.Options, manOption(f)) })
		if c == root {
			page.Environment = []manpage.Item{{Title: "HULY_NETWORK", Body: "the network server, as --network"}}
			for _, sub := range cmds[1:] {
				page.SeeAlso = append(page.SeeAlso, strings.ReplaceAll(sub.CommandPath(), " ", "-"))
			}
		} else {
			page.SeeAlso = []string{"hulyctl"}
		}
		f, err := os.Create(filepath.Join(dir, name+".1"))
		if err != nil {
			return err
		}
		err = page.Write(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("write %s.1: %w", name, err)
		}
	}
	return nil
}

func manOption(f *pflag.Flag) manpage.Option {
	names := "--" + f.Name
	if f.Shorthand != "" {
		names = "-" + f.Shorthand + ", " + names
	}
	if t := f.Value.Type(); t != "bool" {
		names += " " + strings.ToUpper(t)
	}
	usage := f.Usage
	if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "[]" {
		usage += " (default " + f.DefValue + ")"
	}
	return manpage.Option{Names: names, Usage: usage}
}
