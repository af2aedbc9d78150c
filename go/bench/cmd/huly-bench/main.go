// Command huly-bench is the load generator behind `just bench`: the
// plain-TCP floor (tcp-echo and floor), sequential client connects
// (connect), many clients over many containers (scale), and the matrix
// that runs them all with hulyctl bench against the real daemons and
// writes the Markdown report (matrix). Each subcommand but matrix and
// tcp-echo prints one JSON object.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/huly-net/huly-net/go/auth"
	"github.com/huly-net/huly-net/go/bench"
	"github.com/huly-net/huly-net/go/client"
)

const usage = `usage: huly-bench COMMAND [flags]

commands:
  matrix    run the benchmark matrix against the daemons and write the report
  tcp-echo  serve the plain Go TCP echo (the floor) until SIGTERM
  floor     measure the TCP echo at --addr
  connect   connect clients to a network one after another
  scale     many clients getting and using many containers
  rounds    the TypeScript bench's shape: rounds of one request to every container at once
  compare   run the shapes against this build and a baseline build, interleaved

"huly-bench COMMAND -h" lists a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmds := map[string]func(context.Context, []string, io.Writer, io.Writer) error{
		"matrix":   matrixCmd,
		"tcp-echo": tcpEchoCmd,
		"floor":    floorCmd,
		"connect":  connectCmd,
		"scale":    scaleCmd,
		"rounds":   roundsCmd,
		"compare":  compareCmd,
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "huly-bench: unknown command %q\n%s", args[0], usage)
		return 2
	}
	err := cmd(ctx, args[1:], stdout, stderr)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "huly-bench %s: %v\n", args[0], err)
		return 2
	default:
		fmt.Fprintf(stderr, "huly-bench %s: %v\n", args[0], err)
		return 1
	}
}

var errUsage = errors.New("usage")

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	return nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	return enc.Encode(v)
}

func tcpEchoCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tcp-echo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:0", "HOST:PORT to serve")
	if err := parse(fs, args); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", *listen, err)
	}
	if err := printJSON(stdout, map[string]string{"listen": ln.Addr().String()}); err != nil {
		_ = ln.Close()
		return err
	}
	return bench.ServeTCPEcho(ctx, ln)
}

func floorCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("floor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "", "HOST:PORT of a huly-bench tcp-echo")
	var o bench.FloorOptions
	fs.IntVar(&o.Parallel, "parallel", 100, "connections in parallel")
	fs.DurationVar(&o.ParallelFor, "for", 3*time.Second, "how long the parallel connections run")
	fs.DurationVar(&o.SequentialFor, "sequential-for", 3*time.Second, "how long one connection runs alone")
	fs.IntVar(&o.Connects, "connects", 1000, "sequential dial + round trip + close")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *addr == "" {
		return fmt.Errorf("%w: --addr is required", errUsage)
	}
	res, err := bench.RunFloor(ctx, *addr, o)
	if err != nil {
		return err
	}
	return printJSON(stdout, res)
}

func connectCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("connect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("network", "127.0.0.1:3737", "network server HOST:PORT")
	var o bench.ConnectOptions
	fs.IntVar(&o.Clients, "clients", 1000, "clients to connect, one after another")
	fs.DurationVar(&o.CallTimeout, "timeout", bench.DefaultCallTimeout, "bound of each connect")
	fs.IntVar(&o.ServerPID, "server-pid", 0, "sample this process's memory while every client is connected")
	fs.DurationVar(&o.Hold, "hold", 0, "keep the clients connected this long after the last connected")
	profile := fs.String("cpuprofile", "", "write this tool's own CPU profile here")
	secretKey := fs.String("curve-secret-key-file", "", "CURVE secret key file of the clients (secured network)")
	serverKey := fs.String("curve-server-key", "", "the network's CURVE public key (Z85)")
	if err := parse(fs, args); err != nil {
		return err
	}
	sec, err := auth.LoadClient(*secretKey, *serverKey, os.Getenv)
	if err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if sec != nil {
		o.ClientOptions = append(o.ClientOptions, client.WithSecurity(sec))
	}
	stop, err := startCPUProfile(*profile)
	if err != nil {
		return err
	}
	defer stop()
	if o.Clients < 1 {
		return fmt.Errorf("%w: --clients must be at least 1", errUsage)
	}
	res, err := bench.RunConnect(ctx, *addr, o)
	if err != nil {
		return err
	}
	return printJSON(stdout, res)
}

func scaleCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("scale", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("network", "127.0.0.1:3737", "network server HOST:PORT")
	var o bench.ScaleOptions
	fs.IntVar(&o.Clients, "clients", 1000, "clients")
	fs.IntVar(&o.Containers, "containers", 10000, "containers (uuids scale-0 …), spread over the clients")
	fs.StringVar(&o.Kind, "kind", "echo", "kind of the containers")
	fs.DurationVar(&o.RequestsFor, "for", 3*time.Second, "how long every client sends requests")
	fs.IntVar(&o.PayloadBytes, "payload-bytes", 16, "size of the string each request carries")
	fs.DurationVar(&o.CallTimeout, "timeout", bench.DefaultCallTimeout, "bound of each connect, get and request")
	fs.IntVar(&o.ServerPID, "server-pid", 0, "sample this process's memory at the end of the requests")
	profile := fs.String("cpuprofile", "", "write this tool's own CPU profile here")
	if err := parse(fs, args); err != nil {
		return err
	}
	stop, err := startCPUProfile(*profile)
	if err != nil {
		return err
	}
	defer stop()
	if o.Clients < 1 || o.Containers < 1 || o.RequestsFor <= 0 {
		return fmt.Errorf("%w: --clients, --containers and --for must be positive", errUsage)
	}
	res, err := bench.RunScale(ctx, *addr, o)
	if err != nil {
		return err
	}
	return printJSON(stdout, res)
}

// startCPUProfile profiles this process into file until stop; "" does
// nothing. The load generator shares the machine with the server, so its
// own cost is part of every result.
func startCPUProfile(file string) (stop func(), err error) {
	if file == "" {
		return func() {}, nil
	}
	f, err := os.Create(file)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}, nil
}

func matrixCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("matrix", flag.ContinueOnError)
	fs.SetOutput(stderr)
	binDir := fs.String("bin-dir", "", "directory holding huly-network, hulyctl and huly-bench")
	out := fs.String("out", "", "write the Markdown report here (default: standard output)")
	raw := fs.String("raw", "", "also write every run's measurements here, as JSON")
	var o bench.MatrixOptions
	fs.IntVar(&o.Runs, "runs", 3, "runs of every row")
	fs.DurationVar(&o.RowFor, "for", 3*time.Second, "how long each row sends requests")
	fs.IntVar(&o.Connects, "connects", 1000, "sequential client connects")
	fs.IntVar(&o.ScaleClients, "scale-clients", 1000, "clients of the scale row")
	fs.IntVar(&o.ScaleContainers, "scale-containers", 10000, "containers of the scale row")
	fs.IntVar(&o.ScaleAgents, "scale-agents", 10, "agents of the scale row")
	fs.DurationVar(&o.ScaleFor, "scale-for", 0, "how long the scale row's clients send requests (default --for)")
	fs.DurationVar(&o.ProfileFor, "profile-for", 0, "profile the server's CPU this long under the 100-parallel load (0: no profile)")
	fs.StringVar(&o.ProfileDir, "profile-dir", "", "where the profile is saved (default: beside --out)")
	fs.StringVar(&o.Version, "version", "", "build name for the report")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *binDir == "" {
		return fmt.Errorf("%w: --bin-dir is required", errUsage)
	}
	if o.Runs < 1 {
		return fmt.Errorf("%w: --runs must be at least 1", errUsage)
	}
	o.Bin = bench.Binaries{
		Network: filepath.Join(*binDir, "huly-network"),
		Ctl:     filepath.Join(*binDir, "hulyctl"),
		Bench:   filepath.Join(*binDir, "huly-bench"),
	}
	if o.ProfileFor > 0 && o.ProfileDir == "" {
		o.ProfileDir = "."
		if *out != "" {
			o.ProfileDir = filepath.Dir(*out)
		}
	}
	o.Progress = stderr
	res, runErr := bench.RunMatrix(ctx, o)
	if res == nil {
		return runErr
	}
	if *raw != "" {
		b, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return fmt.Errorf("encode results: %w", err)
		}
		if err := os.WriteFile(*raw, b, 0o644); err != nil {
			return fmt.Errorf("write results: %w", err)
		}
	}
	w := stdout
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			return fmt.Errorf("write report: %w", err)
		}
		defer f.Close()
		w = f
	}
	if err := bench.WriteReport(w, res); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if runErr != nil {
		return fmt.Errorf("matrix interrupted (partial report written): %w", runErr)
	}
	return nil
}

func roundsCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("rounds", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("network", "127.0.0.1:3737", "network server HOST:PORT")
	var o bench.RoundsOptions
	fs.IntVar(&o.Containers, "containers", 100, "containers (uuids bench-0 …); requests in flight in a round")
	fs.IntVar(&o.Rounds, "rounds", 300, "rounds of one request to every container")
	fs.DurationVar(&o.For, "for", 0, "run rounds this long instead of --rounds")
	fs.StringVar(&o.Kind, "kind", "echo", "kind of the containers")
	fs.DurationVar(&o.CallTimeout, "timeout", bench.DefaultCallTimeout, "bound of the connect, each get and each request")
	profile := fs.String("cpuprofile", "", "write this tool's own CPU profile here")
	if err := parse(fs, args); err != nil {
		return err
	}
	if o.Containers < 1 || o.Rounds < 1 || o.For < 0 {
		return fmt.Errorf("%w: --containers and --rounds must be positive, --for not negative", errUsage)
	}
	stop, err := startCPUProfile(*profile)
	if err != nil {
		return err
	}
	defer stop()
	res, err := bench.RunRounds(ctx, *addr, o)
	if err != nil {
		return err
	}
	return printJSON(stdout, res)
}

func compareCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	binDir := fs.String("bin-dir", "", "directory holding this build's huly-network and hulyctl, and the load generators (hulyctl, huly-bench)")
	baseDir := fs.String("baseline-bin-dir", "", "directory holding the baseline's huly-network and hulyctl")
	baseName := fs.String("baseline-name", "baseline", "name of the baseline in the report")
	out := fs.String("out", "", "write the Markdown report here (default: standard output)")
	raw := fs.String("raw", "", "also write every run's measurements here, as JSON")
	var o bench.CompareOptions
	fs.IntVar(&o.Runs, "runs", 3, "runs of every shape and build")
	fs.DurationVar(&o.RowFor, "for", 3*time.Second, "how long the sequential shapes and each phase of the floor run")
	fs.IntVar(&o.Containers, "containers", 100, "containers of the rounds shape (requests in flight per round)")
	fs.IntVar(&o.Rounds, "rounds", 300, "rounds of the rounds shape")
	fs.IntVar(&o.Gets, "gets", 1000, "sequential gets")
	fs.IntVar(&o.Connects, "connects", 1000, "sequential client connects")
	fs.StringVar(&o.ProfileDir, "profile-dir", "", "take CPU profiles of one extra rounds run of each build into this directory (empty: none)")
	fs.StringVar(&o.Version, "version", "", "build name for the report")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *binDir == "" || *baseDir == "" {
		return fmt.Errorf("%w: --bin-dir and --baseline-bin-dir are required", errUsage)
	}
	if o.Runs < 1 {
		return fmt.Errorf("%w: --runs must be at least 1", errUsage)
	}
	o.This = bench.Build{Name: "this build", Network: filepath.Join(*binDir, "huly-network"), Agent: filepath.Join(*binDir, "hulyctl")}
	if o.Version != "" {
		o.This.Name = o.Version
	}
	o.Baseline = bench.Build{Name: *baseName, Network: filepath.Join(*baseDir, "huly-network"), Agent: filepath.Join(*baseDir, "hulyctl")}
	o.Load = filepath.Join(*binDir, "hulyctl")
	o.Bench = filepath.Join(*binDir, "huly-bench")
	o.Progress = stderr
	res, runErr := bench.RunCompare(ctx, o)
	if res == nil {
		return runErr
	}
	if *raw != "" {
		b, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return fmt.Errorf("encode results: %w", err)
		}
		if err := os.WriteFile(*raw, b, 0o644); err != nil {
			return fmt.Errorf("write results: %w", err)
		}
	}
	w := stdout
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			return fmt.Errorf("write report: %w", err)
		}
		defer f.Close()
		w = f
	}
	if err := bench.WriteCompareReport(w, res); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if runErr != nil {
		return fmt.Errorf("comparison interrupted (partial report written): %w", runErr)
	}
	return nil
}
