package daemon

import (
	"context"
	"errors"
	"io"
	"syscall"
	"testing"

	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/huly-net/huly-net/go/internal/testutil"
)

type fakeConfig struct {
	Name string `json:"name" usage:"a name"`
	Base
}

func (c *fakeConfig) Validate() error {
	if c.Name == "bad" {
		return errors.New("name: bad")
	}
	return nil
}

type fake struct {
	started  chan struct{}
	ready    chan struct{}
	failed   chan error
	stopped  chan struct{}
	aborted  chan struct{}
	startErr error
}

func newFake() *fake {
	return &fake{started: make(chan struct{}), ready: make(chan struct{}), failed: make(chan error, 1), stopped: make(chan struct{}), aborted: make(chan struct{}, 1)}
}

func (f *fake) Start(context.Context) error { close(f.started); return f.startErr }
func (f *fake) Ready() <-chan struct{}      { return f.ready }
func (f *fake) Failed() <-chan error        { return f.failed }
func (f *fake) Status() string              { return "fine" }
func (f *fake) Abort()                      { f.aborted <- struct{}{} }
func (f *fake) Stop(ctx context.Context) error {
	close(f.stopped)
	return nil
}

func quietLog() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

func runFake(t *testing.T, f *fake, o RunOptions) (<-chan int, <-chan string) {
	t.Helper()
	sock, notes := testutil.NotifySocket(t)
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "")
	o.Name, o.Log = "fake", quietLog()
	if o.Base == nil {
		o.Base = &Base{}
	}
	code := make(chan int, 1)
	go func() { code <- Run(f, o) }()
	return code, notes
}

func TestRunReadyStatusStopping(t *testing.T) {
	f := newFake()
	cfg := &fakeConfig{Base: DefaultBase()}
	code, notes := runFake(t, f, RunOptions{Current: cfg, Reload: func() (Config, error) {
		return &fakeConfig{Base: Base{LogLevel: "debug", LogFormat: "auto"}}, nil
	}})
	<-f.started
	close(f.ready)
	testutil.WaitFor(t, notes, "READY=1", testutil.DaemonTimeout)
	line, _ := testutil.WaitFor(t, notes, "STATUS=", testutil.DaemonTimeout)
	assert.Equal(t, "STATUS=fine", line)

	require.NoError(t, syscall.Kill(syscall.Getpid(), syscall.SIGHUP))
	testutil.WaitFor(t, notes, "RELOADING=1", testutil.DaemonTimeout)
	testutil.WaitFor(t, notes, "READY=1", testutil.DaemonTimeout)
	assert.Equal(t, "debug", cfg.LogLevel, "logging settings are applied on reload")

	require.NoError(t, syscall.Kill(syscall.Getpid(), syscall.SIGTERM))
	testutil.WaitFor(t, notes, "STOPPING=1", testutil.DaemonTimeout)
	assert.Equal(t, ExitOK, <-code)
	_, open := <-f.stopped
	assert.False(t, open, "Stop was called")
}

func TestRunFailures(t *testing.T) {
	f := newFake()
	f.startErr = errors.New("address in use")
	code, notes := runFake(t, f, RunOptions{})
	assert.Equal(t, ExitFailure, <-code, "a failed start is a runtime failure")
	assert.Empty(t, notes, "no READY=1 after a failed start")

	f = newFake()
	code, _ = runFake(t, f, RunOptions{})
	f.failed <- errors.New("lost the socket")
	assert.Equal(t, ExitFailure, <-code)
	<-f.aborted
}

func TestMainConfigurationExits2(t *testing.T) {
	cmd := Command[*fakeConfig]{
		Name:     "fake",
		Defaults: func() *fakeConfig { return &fakeConfig{Base: DefaultBase()} },
		New:      func(*fakeConfig, Env) (Service, error) { return nil, errors.New("unreachable") },
	}
	var out, errOut testutil.SyncBuffer
	getenv := func(k string) string { return map[string]string{"HULY_NAME": "bad"}[k] }
	assert.Equal(t, ExitConfig, cmd.Main(nil, getenv, &out, &errOut))
	assert.Contains(t, errOut.String(), "name: bad")

	errOut.Reset()
	assert.Equal(t, ExitConfig, cmd.Main([]string{"--metrics-listen", "nowhere"}, func(string) string { return "" }, &out, &errOut))
	assert.Contains(t, errOut.String(), "metrics_listen", "a listen address that cannot be valid is a configuration error")

	assert.Equal(t, ExitOK, cmd.Main([]string{"--print-defaults"}, getenv, &out, &errOut))
	assert.JSONEq(t, `{"name":"","metrics_listen":"","pprof_listen":"","log_level":"info","log_format":"auto"}`, out.String())

	out.Reset()
	assert.Equal(t, ExitOK, cmd.Main([]string{"--man"}, getenv, &out, &errOut))
	assert.Contains(t, out.String(), ".SH ENVIRONMENT\n.TP\n.B HULY_CONFIG")
	assert.Contains(t, out.String(), ".B HULY_NAME\na name")

	errOut.Reset()
	assert.Equal(t, ExitOK, cmd.Main([]string{"--help"}, getenv, &out, &errOut))
	assert.Contains(t, errOut.String(), "HULY_NAME")
	assert.Contains(t, errOut.String(), "HULY_LOG_FORMAT")
}

func TestSameBeyondLogging(t *testing.T) {
	a := &fakeConfig{Name: "x", Base: DefaultBase()}
	b := &fakeConfig{Name: "x", Base: Base{LogLevel: "debug", LogFormat: "json"}}
	assert.True(t, sameBeyondLogging(a, b), "only logging differs")
	b.Name = "y"
	assert.False(t, sameBeyondLogging(a, b))
	assert.Equal(t, "info", a.LogLevel, "the configurations are not changed")
}
