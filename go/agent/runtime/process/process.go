// Package process is huly-agent's process runtime: one child process per
// container, running a program that serves the direct-endpoint protocol
// (the container SDK, package container, or any program that does).
//
// The agent binds the child's listening socket itself, on a free port of
// the agent's listen host, and passes it down (HULY_LISTEN_FD=3), so the
// port stays the container's across restarts and clients reconnect to the
// same direct endpoint. Each child gets a NOTIFY_SOCKET of its own, as
// systemd would give it; the container is running once the child sends
// READY=1, within the kind's start timeout. Requests routed through the
// agent are forwarded to the child over its direct endpoint; clients that
// Connect are handed the direct endpoint (reference kind 1).
//
// A child that exits on its own is a crash: the container reports Down (the
// agent registers without it, the network announces it removed) and, with
// restart on-failure, it is started again after a backoff that doubles with
// each quick crash. Terminate (orphan termination, or the agent stopping)
// sends SIGTERM to the child's process group and SIGKILL after the stop
// timeout. Children also get SIGTERM when the agent dies (PR_SET_PDEATHSIG),
// so a killed agent leaves none behind.
package process

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/sirupsen/logrus"

	"github.com/huly-net/huly-net/go/agent"
	"github.com/huly-net/huly-net/go/agent/runtime"
	"github.com/huly-net/huly-net/go/curve"
	"github.com/huly-net/huly-net/go/network"
	"github.com/huly-net/huly-net/go/transport"
)

// Options configure the runtime of one kind.
type Options struct {
	Spec runtime.Spec
	// ListenHost is where children's endpoints bind ("0.0.0.0", "127.0.0.1").
	ListenHost string
	// AdvertiseHost is the host in their direct references.
	AdvertiseHost string
	// NotifyDir holds the children's notify sockets; default
	// $RUNTIME_DIRECTORY, else the system temporary directory.
	NotifyDir string
	// Registry tracks the containers (max_instances, STATUS=); one is made
	// when nil.
	Registry *runtime.Registry
	// Refresh is called after a container's state changes (agent.Refresh).
	Refresh func()
	// Secure: the network is secured (the agent's endpoint has a CURVE
	// key). Each child's endpoint then speaks CURVE with a key pair made
	// for it and admits only the agent's session (a key pair also made for
	// it); clients reach the container through the agent's endpoint, where
	// the network's vouches apply (docs/security.md, "Direct connections").
	Secure bool
	Logger logrus.FieldLogger
}

// Runtime starts the containers of one kind as child processes.
type Runtime struct {
	opts Options
	spec runtime.Spec
	log  logrus.FieldLogger
}

// New returns the runtime of opts.Spec.Kind.
func New(opts Options) (*Runtime, error) {
	spec := opts.Spec.WithDefaults()
	if spec.Command == "" {
		return nil, fmt.Errorf("kind %s: the process runtime needs a command", spec.Kind)
	}
	if opts.ListenHost == "" {
		opts.ListenHost = "127.0.0.1"
	}
	if opts.AdvertiseHost == "" {
		opts.AdvertiseHost = opts.ListenHost
	}
	if opts.NotifyDir == "" {
		opts.NotifyDir = os.Getenv("RUNTIME_DIRECTORY")
		if i := strings.IndexByte(opts.NotifyDir, ':'); i >= 0 {
			opts.NotifyDir = opts.NotifyDir[:i] // several directories: the first
		}
		if opts.NotifyDir == "" {
			opts.NotifyDir = os.TempDir()
		}
	}
	if opts.Registry == nil {
		opts.Registry = &runtime.Registry{}
	}
	if opts.Logger == nil {
		opts.Logger = logrus.StandardLogger()
	}
	return &Runtime{opts: opts, spec: spec, log: opts.Logger.WithFields(logrus.Fields{"kind": spec.Kind, "runtime": runtime.Process})}, nil
}

// Factory starts a container: it returns once the child is ready.
func (r *Runtime) Factory(ctx context.Context, id string, opts network.GetOptions) (agent.Container, error) {
	st := runtime.NewStatus(id, r.spec.Kind, runtime.Process, r.spec.IsPinned(id))
	if err := r.opts.Registry.Add(st, r.spec.MaxInstances); err != nil {
		return nil, err
	}
	c, err := r.start(ctx, st, opts)
	if err != nil {
		r.opts.Registry.Remove(st)
		return nil, err
	}
	return c, nil
}

func (r *Runtime) start(ctx context.Context, st *runtime.Status, opts network.GetOptions) (*Container, error) {
	id := st.UUID()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.ParseIP(r.opts.ListenHost)})
	if err != nil {
		return nil, fmt.Errorf("container %s: listen on %s: %w", id, r.opts.ListenHost, err)
	}
	lnFile, err := ln.File()
	if err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("container %s: %w", id, err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	dialHost := r.opts.ListenHost
	if ip := net.ParseIP(dialHost); ip == nil || ip.IsUnspecified() {
		dialHost = "127.0.0.1"
	}
	log := r.log.WithField("container", id)
	var topts transport.DealerOptions
	var secEnv []string
	if r.opts.Secure {
		topts, secEnv, err = childKeys()
		if err != nil {
			_ = lnFile.Close()
			_ = ln.Close()
			return nil, fmt.Errorf("container %s: %w", id, err)
		}
	}
	proxy, err := runtime.NewProxyWith(net.JoinHostPort(dialHost, strconv.Itoa(port)), r.opts.AdvertiseHost, port, log, topts)
	if err != nil {
		_ = lnFile.Close()
		_ = ln.Close()
		return nil, err
	}
	sctx, cancel := context.WithCancel(context.Background())
	c := &Container{
		Proxy:  proxy,
		Status: st,
		rt:     r,
		log:    log,
		ln:     ln,
		lnFile: lnFile,
		env: append(append(runtime.InheritedEnv(), runtime.ContainerEnv(r.spec, id, opts.Labels, opts.Extra,
			net.JoinHostPort(r.opts.ListenHost, strconv.Itoa(port)))...), append(secEnv, runtime.EnvListenFD+"=3")...),
		ctx:    sctx,
		cancel: cancel,
		done:   make(chan struct{}),
	}
	startCtx, stop := context.WithTimeout(ctx, r.spec.StartTimeout)
	defer stop()
	// A get that gives up must not leave a half-started child behind, and
	// neither must a Terminate during the start.
	unlink := context.AfterFunc(sctx, stop)
	defer unlink()
	ch, err := c.startChild(startCtx)
	if err != nil {
		c.cleanup()
		return nil, err
	}
	st.Set(runtime.Running)
	if r.opts.Refresh != nil {
		st.OnChange(r.opts.Refresh)
	}
	go c.supervise(ch)
	return c, nil
}

// childKeys makes a secured child's keys: the endpoint's key pair (its
// secret goes to the child, HULY_CURVE_SECRET_KEY) and the key pair of the
// agent's session with it (its public key is the only one the child
// admits, HULY_CURVE_CLIENT_KEYS). Both live as long as the container, in
// the agent's memory and the child's environment only.
func childKeys() (transport.DealerOptions, []string, error) {
	srv, err := curve.GenerateKeyPair()
	if err != nil {
		return transport.DealerOptions{}, nil, fmt.Errorf("endpoint key: %w", err)
	}
	cl, err := curve.GenerateKeyPair()
	if err != nil {
		return transport.DealerOptions{}, nil, fmt.Errorf("endpoint key: %w", err)
	}
	var o transport.DealerOptions
	o.CurveClient = &cl
	o.CurveServerKey = srv.Public
	return o, []string{runtime.EnvCurveSecret + "=" + srv.Secret.String(), runtime.EnvCurveClients + "=" + cl.Public.String()}, nil
}

// Container is a container served by a child process.
type Container struct {
	*runtime.Proxy
	*runtime.Status
	rt     *Runtime
	log    logrus.FieldLogger
	ln     *net.TCPListener
	lnFile *os.File
	env    []string

	ctx    context.Context // ends with Terminate
	cancel context.CancelFunc
	done   chan struct{} // the supervisor has stopped the child for good

	terminating atomic.Bool

	mu  sync.Mutex
	pid int
}

var _ agent.DirectEndpoint = (*Container)(nil)
var _ agent.StatusReporter = (*Container)(nil)

// PID is the current child's process id (0 when there is none).
func (c *Container) PID() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pid
}

// child is one run of the program.
type child struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed after Wait
	err    error         // Wait's, once exited is closed
	notify *net.UnixConn
	path   string
}

func (c *Container) startChild(ctx context.Context) (*child, error) {
	spec := c.rt.spec
	path := filepath.Join(c.rt.opts.NotifyDir, "huly-n-"+runtime.ShortUUID(uuid.NewString())+".sock")
	notify, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("container %s: notify socket: %w", c.UUID(), err)
	}
	cmd := exec.Command(spec.Command, spec.Args...)
	cmd.Env = append(append([]string(nil), c.env...), "NOTIFY_SOCKET="+path)
	cmd.ExtraFiles = []*os.File{c.lnFile}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	out := &lineLogger{log: c.log.WithField("pid", 0)}
	cmd.Stdout, cmd.Stderr = out, out
	// A grandchild holding the output pipe must not keep Wait from returning.
	cmd.WaitDelay = spec.StopTimeout
	if err := cmd.Start(); err != nil {
		_ = notify.Close()
		_ = os.Remove(path)
		return nil, fmt.Errorf("container %s: start %s: %w", c.UUID(), spec.Command, err)
	}
	out.setLog(c.log.WithField("pid", cmd.Process.Pid))
	ch := &child{cmd: cmd, exited: make(chan struct{}), notify: notify, path: path}
	go func() {
		ch.err = cmd.Wait()
		close(ch.exited)
		out.flush()
	}()
	c.mu.Lock()
	c.pid = cmd.Process.Pid
	c.mu.Unlock()

	ready := make(chan struct{})
	go c.readNotify(ch, ready)
	select {
	case <-ready:
		c.log.WithField("pid", cmd.Process.Pid).Info("container ready")
		return ch, nil
	case <-ch.exited:
		c.closeNotify(ch)
		return nil, fmt.Errorf("container %s: %s exited before READY=1: %s", c.UUID(), spec.Command, describeExit(ch.err))
	case <-ctx.Done():
		c.stopChild(ch)
		return nil, fmt.Errorf("container %s: no READY=1 from %s within the start timeout %s: %w", c.UUID(), spec.Command, spec.StartTimeout, ctx.Err())
	}
}

// readNotify reads the child's sd_notify datagrams until its socket closes;
// READY=1 closes ready.
func (c *Container) readNotify(ch *child, ready chan struct{}) {
	buf := make([]byte, 4096)
	isReady := false
	for {
		n, err := ch.notify.Read(buf)
		if err != nil {
			return
		}
		for _, line := range bytes.Split(buf[:n], []byte("\n")) {
			switch {
			case bytes.Equal(line, []byte("READY=1")) && !isReady:
				isReady = true
				close(ready)
			case bytes.HasPrefix(line, []byte("STATUS=")):
				c.log.WithField("status", string(line[7:])).Debug("container status")
			}
		}
	}
}

func (c *Container) closeNotify(ch *child) {
	_ = ch.notify.Close()
	_ = os.Remove(ch.path)
}

// stopChild: SIGTERM to the child's group, SIGKILL after the stop timeout.
func (c *Container) stopChild(ch *child) {
	defer c.closeNotify(ch)
	pid := ch.cmd.Process.Pid
	select {
	case <-ch.exited:
		return
	default:
	}
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	t := time.NewTimer(c.rt.spec.StopTimeout)
	defer t.Stop()
	select {
	case <-ch.exited:
		return
	case <-t.C:
	}
	c.log.WithField("pid", pid).Warn("container did not stop within the stop timeout; killing it")
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	<-ch.exited // SIGKILL cannot be refused; WaitDelay bounds the pipes
}

// supervise owns the running child: it restarts it after a crash when the
// policy says so, and stops it when the container is terminated.
func (c *Container) supervise(ch *child) {
	defer close(c.done)
	spec := c.rt.spec
	attempt := 0
	for {
		started := time.Now()
		select {
		case <-c.ctx.Done():
			c.stopChild(ch)
			return
		case <-ch.exited:
		}
		c.closeNotify(ch)
		exit := describeExit(ch.err)
		c.log.WithField("exit", exit).Warn("container process exited")
		c.mu.Lock()
		c.pid = 0
		c.mu.Unlock()
		c.Crashed(exit)
		if spec.Restart != runtime.RestartOnFailure {
			return
		}
		if time.Since(started) > runtime.MaxRestartBackoff {
			attempt = 0 // it ran well for a while: not a crash loop
		}
		for {
			wait := runtime.Backoff(spec.RestartBackoff, attempt)
			attempt++
			t := time.NewTimer(wait)
			select {
			case <-c.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			c.Set(runtime.Starting)
			c.Restarted()
			sctx, cancel := context.WithTimeout(c.ctx, spec.StartTimeout)
			next, err := c.startChild(sctx)
			cancel()
			if err == nil {
				ch = next
				c.Set(runtime.Running)
				break
			}
			if c.ctx.Err() != nil {
				return
			}
			c.log.WithError(err).Warn("container restart failed")
			c.Crashed(err.Error())
		}
	}
}

// Terminate stops the child (SIGTERM, then SIGKILL after the stop timeout)
// and releases the container's port.
func (c *Container) Terminate(ctx context.Context) error {
	if c.terminating.Swap(true) {
		return nil
	}
	c.Set(runtime.Stopping)
	// Say goodbye while the program still listens, so that closing the
	// session does not wait for an answer that cannot come.
	c.closeProxy()
	c.cancel()
	var err error
	select {
	case <-c.done:
	case <-ctx.Done():
		err = fmt.Errorf("container %s: still stopping: %w", c.UUID(), ctx.Err())
	}
	c.cleanup()
	if err == nil {
		c.Set(runtime.Stopped)
	}
	return err
}

func (c *Container) closeProxy() {
	cctx, cancel := context.WithTimeout(context.Background(), time.Second)
	_ = c.Proxy.Close(cctx)
	cancel()
}

func (c *Container) cleanup() {
	c.cancel()
	c.closeProxy()
	_ = c.lnFile.Close()
	_ = c.ln.Close()
	c.rt.opts.Registry.Remove(c.Status)
}

// Ping fails once the container is gone for good: crashed without a
// restart policy, or terminated. A container waiting for its restart is
// not dropped (it is unregistered while Down).
func (c *Container) Ping(context.Context) error {
	select {
	case <-c.done:
		return fmt.Errorf("container %s: process gone (%s)", c.UUID(), c.State())
	default:
		return nil
	}
}

func describeExit(err error) string {
	if err == nil {
		return "exit status 0"
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return fmt.Sprintf("killed by signal %d (%s)", int(ws.Signal()), ws.Signal())
		}
		return "exit status " + strconv.Itoa(ee.ExitCode())
	}
	return err.Error()
}

// lineLogger logs a child's output line by line.
type lineLogger struct {
	mu  sync.Mutex
	log logrus.FieldLogger
	buf []byte
}

func (l *lineLogger) setLog(log logrus.FieldLogger) {
	l.mu.Lock()
	l.log = log
	l.mu.Unlock()
}

func (l *lineLogger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		l.emit(l.buf[:i])
		l.buf = l.buf[i+1:]
	}
	if len(l.buf) > 64*1024 { // a runaway line
		l.emit(l.buf)
		l.buf = nil
	}
	return len(p), nil
}

func (l *lineLogger) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) > 0 {
		l.emit(l.buf)
		l.buf = nil
	}
}

func (l *lineLogger) emit(line []byte) {
	if line = bytes.TrimRight(line, "\r"); len(line) > 0 {
		logAt(childEntry(l.log, line))
	}
}
