package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// maxKeptLines bounds what a process's output keeps in memory: readiness
// lines come first, and a tail is enough to explain a failure.
const maxKeptLines = 2000

// process is a daemon the matrix started: its output is kept line by line,
// so that readiness can be awaited and failures explained.
type process struct {
	name string
	cmd  *exec.Cmd

	mu     sync.Mutex
	lines  []string // stdout and stderr, in arrival order
	notify chan struct{}

	readers sync.WaitGroup
	done    chan struct{} // closed when the process has exited
	exitErr error
}

// startProcess runs path with args. The child dies with us (SIGKILL from
// the kernel if we die first) and is stopped by stop.
func startProcess(name, path string, args ...string) (*process, error) {
	cmd := exec.Command(path, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, notify: make(chan struct{}), done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	for _, r := range []io.Reader{stdout, stderr} {
		p.readers.Add(1)
		go p.read(r)
	}
	go func() {
		// Wait closes the pipes, so the readers are done first.
		p.readers.Wait()
		p.exitErr = cmd.Wait()
		close(p.done)
		p.wake()
	}()
	return p, nil
}

func (p *process) read(r io.Reader) {
	defer p.readers.Done()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		p.mu.Lock()
		if len(p.lines) >= maxKeptLines {
			p.lines = append(p.lines[:maxKeptLines/2], p.lines[len(p.lines)-maxKeptLines/4:]...)
		}
		p.lines = append(p.lines, sc.Text())
		p.mu.Unlock()
		p.wake()
	}
	_, _ = io.Copy(io.Discard, r)
}

func (p *process) wake() {
	p.mu.Lock()
	close(p.notify)
	p.notify = make(chan struct{})
	p.mu.Unlock()
}

// pid is the process id.
func (p *process) pid() int { return p.cmd.Process.Pid }

// waitLine waits until a line of output satisfies match and returns it.
func (p *process) waitLine(ctx context.Context, timeout time.Duration, match func(string) bool) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	seen := 0
	for {
		p.mu.Lock()
		lines := p.lines[min(seen, len(p.lines)):]
		seen = len(p.lines)
		notify := p.notify
		p.mu.Unlock()
		for _, l := range lines {
			if match(l) {
				return l, nil
			}
		}
		select {
		case <-notify:
		case <-p.done:
			// One last look: the line may have come with the exit.
			p.mu.Lock()
			lines := p.lines[min(seen, len(p.lines)):]
			p.mu.Unlock()
			for _, l := range lines {
				if match(l) {
					return l, nil
				}
			}
			return "", fmt.Errorf("%s exited (%v) before it was ready: %s", p.name, p.exitErr, p.tail(5))
		case <-ctx.Done():
			return "", fmt.Errorf("%s not ready within %s: %s", p.name, timeout, p.tail(5))
		}
	}
}

// tail is the last n lines of output, for error messages.
func (p *process) tail(n int) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	from := max(0, len(p.lines)-n)
	if from == len(p.lines) {
		return "(no output)"
	}
	return strings.Join(p.lines[from:], " | ")
}

// stop asks the process to end (SIGTERM) and kills it after grace.
func (p *process) stop(grace time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// cpuSeconds is the user+system CPU time the process has used.
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	return parseStatCPU(string(b))
}

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

func parseStatCPU(stat string) (float64, error) {
	// The command name may contain spaces and parentheses: fields start
	// after the last ')'.
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("unexpected /proc/PID/stat format")
	}
	f := strings.Fields(stat[i+1:])
	// After ')': state(3) … utime is field 14, stime 15 (1-based overall).
	if len(f) < 13 {
		return 0, errors.New("unexpected /proc/PID/stat format")
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	s, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("unexpected /proc/PID/stat format")
	}
	return float64(u+s) / clockTicks, nil
}

// runJSON runs a command to completion within timeout and decodes the last
// line of its standard output that is a JSON object into out.
func runJSON(ctx context.Context, timeout time.Duration, out any, path string, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	name := path[strings.LastIndexByte(path, '/')+1:]
	if len(args) > 0 {
		name += " " + strings.Join(args, " ")
	}
	err := cmd.Run()
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%s: did not finish within %s: %s", name, timeout, lastLines(stderr.String(), 5))
		}
		return fmt.Errorf("%s: %w: %s", name, err, lastLines(stderr.String(), 5))
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if strings.HasPrefix(l, "{") {
			if err := json.Unmarshal([]byte(l), out); err != nil {
				return fmt.Errorf("%s: decode its output: %w", name, err)
			}
			return nil
		}
	}
	return fmt.Errorf("%s: printed no JSON object: %s", name, lastLines(stdout.String()+stderr.String(), 5))
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	out := strings.Join(lines, " | ")
	if out == "" {
		return "(no output)"
	}
	return out
}

// jsonField returns the string value of key in a JSON log line.
func jsonField(line, key string) (string, bool) {
	var m map[string]any
	if json.Unmarshal([]byte(line), &m) != nil {
		return "", false
	}
	v, ok := m[key].(string)
	return v, ok
}

// ioSyscalls is the number of read and write system calls the process has
// made (syscr and syscw of /proc/PID/io; readable for our own children).
func ioSyscalls(pid int) (reads, writes float64, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/io")
	if err != nil {
		return 0, 0, err
	}
	return parseIO(string(b))
}

func parseIO(s string) (reads, writes float64, err error) {
	found := 0
	for _, line := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		n, perr := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		if perr != nil {
			continue
		}
		switch strings.TrimSpace(k) {
		case "syscr":
			reads, found = float64(n), found+1
		case "syscw":
			writes, found = float64(n), found+1
		}
	}
	if found != 2 {
		return 0, 0, errors.New("unexpected /proc/PID/io format")
	}
	return reads, writes, nil
}
