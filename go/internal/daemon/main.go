package daemon

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/huly-net/huly-net/go/internal/config"
	"github.com/huly-net/huly-net/go/internal/logsetup"
	"github.com/huly-net/huly-net/go/internal/manpage"
	"github.com/huly-net/huly-net/go/internal/version"
)

// Command is a daemon's command line: parse → construct → run.
type Command[C Config] struct {
	Name        string
	Summary     string // one line: the manual page's NAME
	Description string // the paragraphs --help prints before the flags
	// Defaults returns a fresh configuration holding the defaults.
	Defaults func() C
	// Adjust, when set, runs after loading and before Validate (for
	// settings outside the HULY_* scheme, such as a pod's PORT).
	Adjust func(cfg C, getenv func(string) string)
	// New constructs the service; it does no I/O that could fail at run
	// time. Its errors are configuration problems (exit status 2).
	New func(cfg C, env Env) (Service, error)
	// Drain bounds Stop.
	Drain func(cfg C) time.Duration
	// Reloadable says whether SIGHUP reads the configuration again.
	Reloadable bool
}

// Env is what a service is constructed with besides its configuration.
type Env struct {
	Log    *logrus.Logger
	Getenv func(string) string
}

// Main runs the command and returns its exit status.
func (c Command[C]) Main(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cfg, act, err := c.Load(args, getenv, stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return ExitOK
	case err != nil:
		fmt.Fprintf(stderr, "%s: %s\n", c.Name, strings.ReplaceAll(err.Error(), "\n", "\n"+c.Name+": "))
		return ExitConfig
	}
	switch act {
	case actVersion:
		fmt.Fprintln(stdout, c.Name, version.String())
		return ExitOK
	case actPrintDefaults:
		out, err := json.MarshalIndent(c.Defaults(), "", "  ")
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", c.Name, err)
			return ExitFailure
		}
		fmt.Fprintln(stdout, string(out))
		return ExitOK
	case actCheck:
		fmt.Fprintf(stdout, "%s: configuration is valid\n", c.Name)
		return ExitOK
	case actMan:
		if err := c.Man(stdout); err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", c.Name, err)
			return ExitFailure
		}
		return ExitOK
	}
	log, err := logsetup.ConfigureOutput(stderr, cfg.Daemon().LogLevel, cfg.Daemon().LogFormat)
	if err != nil { // Validate checked it already
		fmt.Fprintf(stderr, "%s: %v\n", c.Name, err)
		return ExitConfig
	}
	svc, err := c.New(cfg, Env{Log: log, Getenv: getenv})
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", c.Name, err)
		return ExitConfig
	}
	o := RunOptions{Name: c.Name, Log: log, Base: cfg.Daemon(), Current: cfg}
	if c.Drain != nil {
		o.Drain = c.Drain(cfg)
	}
	if c.Reloadable {
		o.Reload = func() (Config, error) {
			next, _, err := c.Load(args, getenv, io.Discard)
			return next, err
		}
	}
	log.WithField("version", version.String()).Infof("%s starting", c.Name)
	return Run(svc, o)
}

type action int

const (
	actRun action = iota
	actVersion
	actPrintDefaults
	actCheck
	actMan
)

// Load reads the configuration (defaults, file, flags, environment) and
// validates it.
func (c Command[C]) Load(args []string, getenv func(string) string, stderr io.Writer) (C, action, error) {
	cfg := c.Defaults()
	fs, loader, o := c.flags(cfg, stderr)
	showVersion, printDefaults, check := o.version, o.printDefaults, o.check
	// The informational flags need no valid configuration.
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, actRun, err
		}
		return cfg, actRun, &config.Error{Source: "command line", Err: err}
	}
	switch {
	case *showVersion:
		return cfg, actVersion, nil
	case *printDefaults:
		return cfg, actPrintDefaults, nil
	case *o.man:
		return cfg, actMan, nil
	}
	if *check != "" {
		loader.SetFile(*check)
	}
	if err := loader.Apply(getenv); err != nil {
		return cfg, actRun, err
	}
	if c.Adjust != nil {
		c.Adjust(cfg, getenv)
	}
	if err := errors.Join(cfg.Daemon().Validate(), cfg.Validate()); err != nil {
		return cfg, actRun, fmt.Errorf("invalid configuration: %w", err)
	}
	if *check != "" {
		return cfg, actCheck, nil
	}
	return cfg, actRun, nil
}

type infoFlags struct {
	version, printDefaults, man *bool
	check                       *string
}

// flags is the daemon's flag set: the configuration's flags and the
// informational ones.
func (c Command[C]) flags(cfg C, out io.Writer) (*flag.FlagSet, *config.Loader, infoFlags) {
	fs := flag.NewFlagSet(c.Name, flag.ContinueOnError)
	fs.SetOutput(out)
	o := infoFlags{
		version:       fs.Bool("version", false, "print the version and exit"),
		printDefaults: fs.Bool("print-defaults", false, "print the default configuration as JSON and exit"),
		man:           fs.Bool("man", false, "print the manual page (roff) and exit"),
		check:         fs.String("check-config", "", "check the configuration `file` (with the flags and HULY_* variables given) and exit: status 0 when valid, 2 naming the key otherwise"),
	}
	loader := config.New(fs, cfg)
	fs.Usage = func() { c.usage(fs, loader) }
	return fs, loader, o
}

// Man writes the daemon's manual page, made from the same flags and
// variables as --help.
func (c Command[C]) Man(w io.Writer) error {
	fs, loader, _ := c.flags(c.Defaults(), io.Discard)
	summary, rest, _ := strings.Cut(strings.TrimSpace(c.Description), "\n\n")
	page := manpage.Page{
		Name: c.Name, Summary: c.Summary,
		Synopsis: c.Name + " [flags]", Version: version.String(),
		Description: summary + "\n\n" + rest + "\n\nConfiguration: defaults, then the JSON file named by --config (or HULY_CONFIG), then flags, then HULY_* environment variables. File keys are the flag names with underscores; --print-defaults shows them all, --check-config FILE checks a file.",
		Sections:    []manpage.Item{{Title: "Exit status", Body: "0 after a clean stop, 1 on a runtime failure (a listener that cannot be bound, a service that failed), 2 on a configuration problem (the message names the key)."}},
		SeeAlso:     []string{"hulyctl", "huly-network", "huly-agent", "huly-bridge"},
	}
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		names := "--" + f.Name
		if name != "" {
			names += " " + name
		}
		if f.DefValue != "" && f.DefValue != "false" {
			usage += " (default " + f.DefValue + ")"
		}
		page.Options = append(page.Options, manpage.Option{Names: names, Usage: usage})
	})
	for _, v := range loader.EnvVars() {
		page.Environment = append(page.Environment, manpage.Item{Title: v[0], Body: v[1]})
	}
	return page.Write(w)
}

func (c Command[C]) usage(fs *flag.FlagSet, l *config.Loader) {
	w := fs.Output()
	fmt.Fprintf(w, "%s\n\nUsage: %s [flags]\n\n", strings.TrimSpace(c.Description), c.Name)
	fmt.Fprintln(w, "Configuration: defaults < --config file < flags < HULY_* environment variables.")
	fmt.Fprintln(w, "File keys are the flag names with underscores; --print-defaults shows them all.")
	fmt.Fprintln(w, "\nFlags:")
	fs.PrintDefaults()
	fmt.Fprintln(w, "\nEnvironment:")
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for _, v := range l.EnvVars() {
		fmt.Fprintf(tw, "  %s\t%s\n", v[0], firstLine(v[1]))
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "\nExit status: 0 after a clean stop, 1 on a runtime failure, 2 on a configuration problem.\n")
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}
