// Command hulyctl is the operator's command line for a huly network: it
// lists agents, kinds and containers, gets containers and sends them
// requests, streams network events, hosts echo containers for tests and
// benchmarks, and measures a network with bench.
//
// Exit codes: 0 on success, 1 when the command failed (the network is
// unreachable, a request failed), 2 for a usage error (unknown command or
// flag, bad arguments). Errors are one line on stderr.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/huly-net/huly-net/go/client"
	"github.com/huly-net/huly-net/go/internal/logsetup"
	"github.com/huly-net/huly-net/go/internal/version"
)

const (
	defaultNetwork = "127.0.0.1:3737"
	defaultTimeout = 10 * time.Second
	// maxErrorLen keeps an error on one readable line even when a remote
	// error carries a JavaScript stack.
	maxErrorLen = 1000
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// app holds the global flags and the streams every command writes to.
type app struct {
	network  string
	timeout  time.Duration
	json     bool
	logLevel string
	sec      securityFlags // security.go

	stdout io.Writer
	stderr io.Writer
	log    *logrus.Logger
}

// exitError carries the exit code of a failed command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageError marks bad arguments: exit code 2.
func usageError(format string, args ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, args...)}
}

// action adapts a command body: its errors are failures (exit 1) unless
// it said they are usage errors. Errors cobra raises itself (flags,
// argument counts, unknown commands) never pass here and become usage
// errors in run.
func action(fn func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		err := fn(cmd, args)
		if err == nil {
			return nil
		}
		var ee *exitError
		if errors.As(err, &ee) {
			return err
		}
		return &exitError{code: 1, err: err}
	}
}

// run is hulyctl; it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	a := &app{stdout: stdout, stderr: stderr}
	root := a.rootCommand(getenv)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	code := 2
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
	}
	msg := oneLine(err.Error())
	if code == 2 && cmd != nil {
		msg += " (see '" + cmd.CommandPath() + " --help')"
	}
	fmt.Fprintln(stderr, "hulyctl: "+msg)
	return code
}

// oneLine folds a multi-line message (a remote stack, joined errors) into
// one line of bounded length.
func oneLine(s string) string {
	lines := strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' })
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	s = strings.Join(lines, "; ")
	if len(s) > maxErrorLen {
		s = s[:maxErrorLen] + "…"
	}
	return s
}

func (a *app) rootCommand(getenv func(string) string) *cobra.Command {
	network := getenv("HULY_NETWORK")
	if network == "" {
		network = defaultNetwork
	}
	root := &cobra.Command{
		Use:   "hulyctl",
		Short: "Inspect and drive a huly network",
		Long: `hulyctl talks to a huly network server (huly-network, or the TypeScript
network 0.7): it lists agents, kinds and containers, gets containers and
sends them requests, streams network events, hosts echo containers
(serve-echo) and benchmarks the network (bench).

Every command takes --network HOST:PORT (env HULY_NETWORK), --timeout,
which bounds each network call, and --json for machine-readable output.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return a.setup()
		},
	}
	root.Version = version.String()
	root.SetVersionTemplate("hulyctl {{.Version}}\n")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &exitError{code: 2, err: err}
	})
	pf := root.PersistentFlags()
	pf.StringVar(&a.network, "network", network, "network server HOST:PORT (env HULY_NETWORK)")
	pf.DurationVar(&a.timeout, "timeout", defaultTimeout, "bound of every network call")
	pf.BoolVar(&a.json, "json", false, "machine-readable output: one JSON document, or JSON lines for streams")
	pf.StringVar(&a.logLevel, "log-level", "warn", "log level on stderr: "+strings.Join(logsetup.Levels, ", "))
	a.addSecurityFlags(pf, getenv)

	root.AddCommand(
		a.agentsCommand(),
		a.kindsCommand(),
		a.containersCommand(),
		a.statusCommand(),
		a.getCommand(),
		a.requestCommand(),
		a.watchCommand(),
		a.serveEchoCommand(),
		a.benchCommand(),
		a.versionCommand(),
		a.keygenCommand(),
		a.drainCommand(true),
		a.drainCommand(false),
		a.terminateCommand(),
	)
	root.AddCommand(a.manCommand()) // hidden: writes the manual pages
	return root
}

// setup validates the global flags and builds the logger.
func (a *app) setup() error {
	if a.timeout <= 0 {
		return usageError("--timeout must be positive, got %s", a.timeout)
	}
	if strings.TrimSpace(a.network) == "" {
		return usageError("--network must name HOST:PORT")
	}
	log, err := logsetup.ConfigureOutput(a.stderr, a.logLevel, logsetup.FormatAuto)
	if err != nil {
		return usageError("%v", err)
	}
	a.log = log
	return nil
}

// dial connects to the network and waits for its hello answer within the
// timeout. The caller closes the client with a.close.
func (a *app) dial(ctx context.Context, opts ...client.Option) (*client.Client, error) {
	secOpts, err := a.securityOptions()
	if err != nil {
		return nil, err
	}
	if err := refused(ctx, a.network, a.timeout); err != nil {
		return nil, fmt.Errorf("network %s: %w", a.network, err)
	}
	opts = append(append([]client.Option{client.WithLogger(a.log)}, secOpts...), opts...)
	c, err := client.Dial(a.network, opts...)
	if err != nil {
		return nil, usageError("%v", err)
	}
	wctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	if err := c.WaitConnected(wctx); err != nil {
		a.close(c)
		if rerr := a.refusal(err); rerr != nil {
			return nil, rerr
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("network %s: %w", a.network, ctx.Err())
		}
		return nil, fmt.Errorf("network %s: no answer within %s", a.network, a.timeout)
	}
	return c, nil
}

// refused says at once when nothing listens at addr (or its name does not
// resolve), which the client, retrying until the timeout, would only
// report as no answer. Other failures are left to the client.
func refused(ctx context.Context, addr string, timeout time.Duration) error {
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	var dnsErr *net.DNSError
	switch {
	case err == nil:
		return conn.Close()
	case errors.Is(err, syscall.ECONNREFUSED):
		return errors.New("connection refused")
	case errors.As(err, &dnsErr):
		return dnsErr
	}
	return nil
}

// close ends a session: references are released, hosted agents
// unregistered; bounded by the timeout even when the network is gone.
func (a *app) close(c *client.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), a.timeout)
	defer cancel()
	if err := c.Close(ctx); err != nil {
		a.log.WithError(err).Debug("close client")
	}
}

// call bounds one network call by the timeout.
func (a *app) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, a.timeout)
}

// callError prefixes what failed (unless the error already says it) and
// names the timeout when a call ran out of it, which "context deadline
// exceeded" alone does not.
func (a *app) callError(what string, err error) error {
	if what != "" {
		err = fmt.Errorf("%s: %w", what, err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w [--timeout %s]", err, a.timeout)
	}
	return err
}

// exactArgs is cobra.ExactArgs with a usage error.
func exactArgs(n int) cobra.PositionalArgs {
	return rangeArgs(n, n)
}

func rangeArgs(lo, hi int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < lo || len(args) > hi {
			if lo == hi {
				return usageError("%s takes %d argument(s), got %d", cmd.Name(), lo, len(args))
			}
			return usageError("%s takes %d to %d arguments, got %d", cmd.Name(), lo, hi, len(args))
		}
		return nil
	}
}
