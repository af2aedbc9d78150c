package main

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/huly-net/huly-net/go/internal/version"
)

func (a *app) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print hulyctl's version",
		Args:  exactArgs(0),
		RunE: action(func(*cobra.Command, []string) error {
			if a.json {
				return a.printJSON(map[string]string{"version": version.String(), "go": runtime.Version()})
			}
			_, err := fmt.Fprintf(a.stdout, "hulyctl %s (%s)\n", version.String(), runtime.Version())
			if err != nil {
				return fmt.Errorf("write output: %w", err)
			}
			return nil
		}),
	}
}
