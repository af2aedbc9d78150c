// Command benchtool measures huly-bridge against socat and against no
// forwarder on loopback: bulk throughput of one connection, connections per
// second (connect, 100 bytes each way, close) with 1 and 32 clients, and
// memory per idle connection. tests/bench/bridge.sh builds and runs it;
// it is not part of the test suite.
//
//	benchtool serve                       the target (prints its address)
//	benchtool run --bridge BIN --socat BIN  the whole comparison, Markdown out
package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: benchtool serve | run [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve()
	case "run":
		err = runAll(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtool:", err)
		os.Exit(1)
	}
}

// Modes, sent as a connection's first byte to the target.
const (
	modeBulk = 'B' // discard until EOF, then reply with the byte count
	modeEcho = 'E' // echo until EOF
)

// serve is the target: it listens on a free loopback port, prints the
// address, and serves until stdin closes (its parent went away).
func serve() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Println(ln.Addr().String())
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			time.Sleep(10 * time.Millisecond) // EMFILE: do not spin
			continue
		}
		go handle(c)
	}
}

func handle(c net.Conn) {
	defer c.Close()
	var mode [1]byte
	if _, err := io.ReadFull(c, mode[:]); err != nil {
		return
	}
	switch mode[0] {
	case modeBulk:
		buf := make([]byte, 256<<10)
		var n int64
		for {
			k, err := c.Read(buf)
			n += int64(k)
			if err != nil {
				break
			}
		}
		var out [8]byte
		binary.BigEndian.PutUint64(out[:], uint64(n))
		_, _ = c.Write(out[:])
	case modeEcho:
		if _, err := c.Write(mode[:]); err != nil {
			return
		}
		_, _ = io.Copy(c, c)
	}
}

// variant is one way to reach the target.
type variant struct {
	name string
	addr string
	pids func() []int // the forwarder's processes (nil for direct)
	stop func()
}

type config struct {
	bridge, socat string
	reps          int
	duration      time.Duration
	hold          int
	jsonOut       string
	tests         map[string]bool
}

func runAll(args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var cfg config
	fs.StringVar(&cfg.bridge, "bridge", "", "huly-bridge binary")
	fs.StringVar(&cfg.socat, "socat", "socat", "socat binary")
	fs.IntVar(&cfg.reps, "reps", 3, "repetitions (interleaved)")
	fs.DurationVar(&cfg.duration, "duration", 2*time.Second, "duration of each throughput and rate run")
	fs.IntVar(&cfg.hold, "hold", 1000, "idle connections held for the memory measurement")
	fs.StringVar(&cfg.jsonOut, "json", "", "also write the raw samples to this file")
	tests := fs.String("tests", "bulk,rate,memory", "comma-separated subset of bulk, rate, memory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg.tests = map[string]bool{}
	for _, t := range strings.Split(*tests, ",") {
		switch t = strings.TrimSpace(t); t {
		case "bulk", "rate", "memory":
			cfg.tests[t] = true
		default:
			return fmt.Errorf("--tests: unknown test %q", t)
		}
	}
	if cfg.bridge == "" {
		return errors.New("--bridge is required")
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()

	target, stopTarget, err := startTarget(ctx)
	if err != nil {
		return err
	}
	defer stopTarget()

	samples := map[string]map[string][]float64{} // metric → variant → values
	add := func(metric, v string, x float64) {
		if samples[metric] == nil {
			samples[metric] = map[string][]float64{}
		}
		samples[metric][v] = append(samples[metric][v], x)
	}

	for rep := 1; rep <= cfg.reps; rep++ {
		variants, err := startVariants(ctx, cfg, target)
		if err != nil {
			return err
		}
		// Interleaved: each repetition runs every variant once per test,
		// in a rotating order, so drift on a shared machine hits all alike.
		order := rotate(variants, rep)
		for _, v := range order {
			if !cfg.tests["bulk"] {
				break
			}
			mbps, cpu, err := bulk(v, cfg.duration)
			if err != nil {
				stopAll(variants)
				return fmt.Errorf("%s bulk: %w", v.name, err)
			}
			add("bulk_MiB_s", v.name, mbps)
			if v.pids != nil {
				add("bulk_cpu_s_per_GiB", v.name, cpu)
			}
			fmt.Fprintf(os.Stderr, "rep %d %-11s bulk %8.0f MiB/s  cpu %.3f s/GiB\n", rep, v.name, mbps, cpu)
		}
		for _, clients := range []int{1, 32} {
			if !cfg.tests["rate"] {
				break
			}
			for _, v := range order {
				var cpu0 float64
				if v.pids != nil {
					cpu0 = totalCPU(v)
				}
				rate, conns, errs := connRate(v.addr, clients, cfg.duration)
				add(fmt.Sprintf("conn_per_s_%d", clients), v.name, rate)
				cpuPer := 0.0
				if v.pids != nil {
					settle(v)
					cpuPer = (totalCPU(v) - cpu0) / float64(conns) * 1e6
					add(fmt.Sprintf("conn_cpu_us_%d", clients), v.name, cpuPer)
				}
				fmt.Fprintf(os.Stderr, "rep %d %-11s %2d clients %8.0f conn/s (%d errors), %.0f µs CPU/conn\n", rep, v.name, clients, rate, errs, cpuPer)
				if errs > 0 {
					add(fmt.Sprintf("conn_errors_%d", clients), v.name, float64(errs))
				}
			}
		}
		stopAll(variants)
		if !cfg.tests["memory"] {
			continue
		}

		// Memory on fresh forwarders, so earlier tests' heap does not hide
		// or inflate the delta.
		variants, err = startVariants(ctx, cfg, target)
		if err != nil {
			return err
		}
		for _, v := range rotate(variants, rep) {
			if v.pids == nil {
				continue
			}
			rss, pss, procs, err := idleMemory(v, cfg.hold)
			if err != nil {
				stopAll(variants)
				return fmt.Errorf("%s memory: %w", v.name, err)
			}
			add("idle_rss_KiB_per_conn", v.name, rss)
			add("idle_pss_KiB_per_conn", v.name, pss)
			add("idle_processes", v.name, float64(procs))
			fmt.Fprintf(os.Stderr, "rep %d %-11s idle %6.1f KiB RSS/conn, %6.1f KiB PSS/conn, %d processes\n", rep, v.name, rss, pss, procs)
		}
		stopAll(variants)
	}
	report(os.Stdout, cfg, samples)
	if cfg.jsonOut != "" {
		b, _ := json.MarshalIndent(samples, "", "  ")
		if err := os.WriteFile(cfg.jsonOut, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func rotate(vs []variant, by int) []variant {
	out := make([]variant, 0, len(vs))
	for i := range vs {
		out = append(out, vs[(i+by)%len(vs)])
	}
	return out
}

func stopAll(vs []variant) {
	for _, v := range vs {
		if v.stop != nil {
			v.stop()
		}
	}
}

func startTarget(ctx context.Context) (string, func(), error) {
	self, err := os.Executable()
	if err != nil {
		return "", nil, err
	}
	cmd := exec.CommandContext(ctx, self, "serve")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return "", nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		return "", nil, fmt.Errorf("target did not start: %w", err)
	}
	stop := func() {
		_ = stdin.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	return strings.TrimSpace(line), stop, nil
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func startVariants(ctx context.Context, cfg config, target string) ([]variant, error) {
	direct := variant{name: "direct", addr: target}
	b, err := startBridge(ctx, cfg.bridge, target)
	if err != nil {
		return nil, err
	}
	s, err := startSocat(ctx, cfg.socat, target)
	if err != nil {
		b.stop()
		return nil, err
	}
	return []variant{direct, b, s}, nil
}

func startBridge(ctx context.Context, bin, target string) (variant, error) {
	addr, err := freeAddr()
	if err != nil {
		return variant{}, err
	}
	dir, err := os.MkdirTemp("", "hbb")
	if err != nil {
		return variant{}, err
	}
	sockPath := filepath.Join(dir, "notify")
	notify, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sockPath, Net: "unixgram"})
	if err != nil {
		return variant{}, err
	}
	cleanup := func() {
		_ = notify.Close()
		_ = os.RemoveAll(dir)
	}
	cmd := exec.CommandContext(ctx, bin, "--forward", "bench=tcp:"+addr+",tcp:"+target, "--max-connections", "0", "--log-level", "warn", "--log-format", "text")
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sockPath)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		cleanup()
		return variant{}, err
	}
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		cleanup()
	}
	_ = notify.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 4096)
	for {
		n, err := notify.Read(buf)
		if err != nil {
			stop()
			return variant{}, fmt.Errorf("huly-bridge sent no READY=1: %w", err)
		}
		if strings.Contains(string(buf[:n]), "READY=1") {
			break
		}
	}
	// Keep reading STATUS= updates so the bridge's sends keep succeeding,
	// as under systemd; the reader ends when stop closes the socket.
	_ = notify.SetReadDeadline(time.Time{})
	go func() {
		for {
			if _, err := notify.Read(buf); err != nil {
				return
			}
		}
	}()
	pid := cmd.Process.Pid
	return variant{name: "huly-bridge", addr: addr, pids: func() []int { return []int{pid} }, stop: stop}, nil
}

func startSocat(ctx context.Context, bin, target string) (variant, error) {
	addr, err := freeAddr()
	if err != nil {
		return variant{}, err
	}
	host, port, _ := net.SplitHostPort(addr)
	// As operators run it: one process per connection (fork), default
	// backlog.
	cmd := exec.CommandContext(ctx, bin, "TCP-LISTEN:"+port+",bind="+host+",reuseaddr,fork", "TCP:"+target)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return variant{}, err
	}
	pid := cmd.Process.Pid
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		for _, c := range children(pid) {
			_ = syscall.Kill(c, syscall.SIGTERM)
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
			break
		}
		if time.Now().After(deadline) {
			stop()
			return variant{}, fmt.Errorf("socat did not listen: %w", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return variant{name: "socat", addr: addr, pids: func() []int { return append([]int{pid}, children(pid)...) }, stop: stop}, nil
}

// children lists the processes whose parent is pid.
func children(pid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// Fields after the parenthesised command: state, ppid, ...
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, p)
		}
	}
	return out
}

// cpuSeconds is a process's user+system time, its reaped children's
// included (socat's per-connection processes).
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	// utime, stime, cutime, cstime are fields 14-17 of stat; f[0] is 3.
	var ticks float64
	for _, i := range []int{11, 12, 13, 14} {
		v, _ := strconv.ParseFloat(f[i], 64)
		ticks += v
	}
	return ticks / 100 // USER_HZ
}

func totalCPU(v variant) float64 {
	var sum float64
	for _, p := range v.pids() {
		sum += cpuSeconds(p)
	}
	return sum
}

// bulk sends for d on one connection and returns MiB/s and the
// forwarder's CPU seconds per GiB moved.
func bulk(v variant, d time.Duration) (float64, float64, error) {
	var cpu0 float64
	if v.pids != nil {
		cpu0 = totalCPU(v)
	}
	c, err := net.DialTimeout("tcp", v.addr, 5*time.Second)
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	buf := make([]byte, 256<<10)
	buf[0] = modeBulk
	start := time.Now()
	end := start.Add(d)
	_ = c.SetDeadline(end.Add(30 * time.Second))
	for time.Now().Before(end) {
		if _, err := c.Write(buf); err != nil {
			return 0, 0, err
		}
		buf[0] = 0 // the mode byte goes first only
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return 0, 0, err
	}
	var out [8]byte
	if _, err := io.ReadFull(c, out[:]); err != nil {
		return 0, 0, fmt.Errorf("reading the byte count: %w", err)
	}
	elapsed := time.Since(start).Seconds()
	n := float64(binary.BigEndian.Uint64(out[:]))
	_ = c.Close()
	var cpuPerGiB float64
	if v.pids != nil {
		settle(v)
		cpuPerGiB = (totalCPU(v) - cpu0) / (n / (1 << 30))
	}
	return n / elapsed / (1 << 20), cpuPerGiB, nil
}

// settle waits until socat's per-connection processes have been reaped, so
// their CPU time shows in the parent's.
func settle(v variant) {
	deadline := time.Now().Add(3 * time.Second)
	for len(v.pids()) > 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
}

// connRate runs clients loops of connect, 100 bytes each way, close, and
// returns connections per second, connections done and errors.
func connRate(addr string, clients int, d time.Duration) (float64, int64, int64) {
	var done, errs atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(d)
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := make([]byte, 100)
			msg[0] = modeEcho
			buf := make([]byte, 100)
			for time.Now().Before(end) {
				if err := oneRequest(addr, msg, buf); err != nil {
					errs.Add(1)
					continue
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	return float64(done.Load()) / time.Since(start).Seconds(), done.Load(), errs.Load()
}

func oneRequest(addr string, msg, buf []byte) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(msg); err != nil {
		return err
	}
	_, err = io.ReadFull(c, buf)
	return err
}

// memKiB sums VmRSS and Pss over pids.
func memKiB(pids []int) (rss, pss float64) {
	for _, p := range pids {
		rss += statusField(fmt.Sprintf("/proc/%d/status", p), "VmRSS:")
		pss += statusField(fmt.Sprintf("/proc/%d/smaps_rollup", p), "Pss:")
	}
	return rss, pss
}

func statusField(path, key string) float64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, key) {
			f := strings.Fields(line[len(key):])
			if len(f) > 0 {
				v, _ := strconv.ParseFloat(f[0], 64)
				return v
			}
		}
	}
	return 0
}

// idleMemory holds n connections open (each proven end to end by one echo)
// and returns the forwarder's RSS and PSS growth per connection, in KiB,
// and how many processes it took.
func idleMemory(v variant, n int) (float64, float64, int, error) {
	// One connection first, so one-time costs (first splice pipe, first
	// socat fork paths) are not charged to the idle connections.
	warm := make([]byte, 2)
	if err := oneRequest(v.addr, []byte{modeEcho, 'w'}, warm); err != nil {
		return 0, 0, 0, err
	}
	time.Sleep(300 * time.Millisecond)
	rss0, pss0 := memKiB(v.pids())
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	buf := make([]byte, 2)
	for i := 0; i < n; i++ {
		c, err := net.DialTimeout("tcp", v.addr, 10*time.Second)
		if err != nil {
			return 0, 0, 0, fmt.Errorf("connection %d: %w", i, err)
		}
		conns = append(conns, c)
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := c.Write([]byte{modeEcho, 'x'}); err != nil {
			return 0, 0, 0, err
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			return 0, 0, 0, fmt.Errorf("connection %d echo: %w", i, err)
		}
	}
	time.Sleep(500 * time.Millisecond)
	pids := v.pids()
	rss1, pss1 := memKiB(pids)
	return (rss1 - rss0) / float64(n), (pss1 - pss0) / float64(n), len(pids), nil
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func minMax(xs []float64) (float64, float64) {
	lo, hi := xs[0], xs[0]
	for _, x := range xs {
		lo, hi = min(lo, x), max(hi, x)
	}
	return lo, hi
}

func report(w io.Writer, cfg config, s map[string]map[string][]float64) {
	somax, _ := os.ReadFile("/proc/sys/net/core/somaxconn")
	var uts syscall.Utsname
	_ = syscall.Uname(&uts)
	rel := make([]byte, 0, 65)
	for _, c := range uts.Release {
		if c == 0 {
			break
		}
		rel = append(rel, byte(c))
	}
	fmt.Fprintf(w, "## huly-bridge vs socat vs direct (loopback)\n\n")
	fmt.Fprintf(w, "kernel %s, %d CPUs, net.core.somaxconn=%s, %d interleaved repetitions, %s per throughput/rate run, %d idle connections; socat in fork mode with its default backlog.\n\n",
		rel, runtime.NumCPU(), strings.TrimSpace(string(somax)), cfg.reps, cfg.duration, cfg.hold)
	fmt.Fprintln(w, "| metric | direct | huly-bridge | socat | bridge/socat | bridge/direct |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	cell := func(m, v string) string {
		xs := s[m][v]
		if len(xs) == 0 {
			return "–"
		}
		lo, hi := minMax(xs)
		return fmt.Sprintf("%s (%s–%s)", num(median(xs)), num(lo), num(hi))
	}
	ratio := func(m, a, b string) string {
		if len(s[m][a]) == 0 || len(s[m][b]) == 0 || median(s[m][b]) == 0 {
			return "–"
		}
		return fmt.Sprintf("%.2f×", median(s[m][a])/median(s[m][b]))
	}
	rows := []struct{ m, label string }{
		{"bulk_MiB_s", "bulk throughput, 1 connection (MiB/s)"},
		{"bulk_cpu_s_per_GiB", "forwarder CPU during bulk (s per GiB)"},
		{"conn_per_s_1", "connections/s, 1 client"},
		{"conn_per_s_32", "connections/s, 32 clients"},
		{"conn_cpu_us_1", "forwarder CPU per connection, 1 client (µs)"},
		{"conn_cpu_us_32", "forwarder CPU per connection, 32 clients (µs)"},
		{"idle_rss_KiB_per_conn", "RSS per idle connection (KiB)"},
		{"idle_pss_KiB_per_conn", "PSS per idle connection (KiB)"},
		{"idle_processes", "processes with the idle connections held"},
	}
	for _, r := range rows {
		if s[r.m] == nil {
			continue
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", r.label, cell(r.m, "direct"), cell(r.m, "huly-bridge"), cell(r.m, "socat"),
			ratio(r.m, "huly-bridge", "socat"), ratio(r.m, "huly-bridge", "direct"))
	}
	for _, m := range []string{"conn_errors_1", "conn_errors_32"} {
		for v, xs := range s[m] {
			fmt.Fprintf(w, "\n%s: %s had connection errors in some runs: %v", m, v, xs)
		}
	}
	fmt.Fprintf(w, "\nCells: median (min–max).\n\n### Targets\n\n")
	check := func(label string, got, want float64, atMost bool) {
		if got != got || got == 0 { // NaN or not measured in this run
			return
		}
		ok := got >= want
		if atMost {
			ok = got <= want
		}
		mark := "PASS"
		if !ok {
			mark = "MISS"
		}
		fmt.Fprintf(w, "- %s: %.2f (target %s %.2f) %s\n", label, got, map[bool]string{true: "≤", false: "≥"}[atMost], want, mark)
	}
	med := func(m, v string) float64 { return median(s[m][v]) }
	check("bulk bridge/socat", med("bulk_MiB_s", "huly-bridge")/med("bulk_MiB_s", "socat"), 2, false)
	check("bulk bridge/direct", med("bulk_MiB_s", "huly-bridge")/med("bulk_MiB_s", "direct"), 0.45, false)
	check("connections/s bridge/socat, 1 client", med("conn_per_s_1", "huly-bridge")/med("conn_per_s_1", "socat"), 2.5, false)
	check("connections/s bridge/socat, 32 clients", med("conn_per_s_32", "huly-bridge")/med("conn_per_s_32", "socat"), 6, false)
	check("KiB RSS per idle connection (huly-bridge)", med("idle_rss_KiB_per_conn", "huly-bridge"), 15, true)
}

func num(x float64) string {
	switch {
	case x >= 100:
		return strconv.FormatFloat(x, 'f', 0, 64)
	case x >= 10:
		return strconv.FormatFloat(x, 'f', 1, 64)
	default:
		return strconv.FormatFloat(x, 'f', 2, 64)
	}
}
