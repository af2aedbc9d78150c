// Package example is the command line every example shares: --network,
// Ctrl-C/SIGTERM, a 30 s bound, and an exit status. The examples' own code
// is their run function.
package example

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// Main parses --network, runs run against that network server with output
// to stdout, and exits 1 with the error (prefixed with name) if it fails.
func Main(name string, run func(ctx context.Context, addr string, out io.Writer) error) {
	addr := flag.String("network", "127.0.0.1:3737", "network server HOST:PORT")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := run(ctx, *addr, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		stop()
		cancel()
		os.Exit(1)
	}
}
