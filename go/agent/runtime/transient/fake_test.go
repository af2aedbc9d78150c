package transient_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"sync"

	sddbus "github.com/coreos/go-systemd/v22/dbus"

	"github.com/huly-net/huly-net/go/agent/runtime/transient"
	"github.com/huly-net/huly-net/go/client/clienttest"
	"github.com/huly-net/huly-net/go/container"
)

// echoProgram is the container program the fake systemd runs in process.
type echoProgram struct{ host *container.Host }

func (e *echoProgram) Start(_ context.Context, h *container.Host) error { e.host = h; return nil }
func (e *echoProgram) Request(_ context.Context, _ string, op string, data json.RawMessage) (any, error) {
	return map[string]any{"uuid": e.host.Info().UUID, "operation": op, "data": data}, nil
}

type fakeUnit struct {
	info  transient.UnitInfo
	env   []string
	props []sddbus.Property
	stop  context.CancelFunc
	done  chan struct{}
}

// fakeUnits is systemd as far as the runtime sees it: a started unit runs
// the container SDK in process with the unit's Environment.
type fakeUnits struct {
	mu      sync.Mutex
	units   map[string]*fakeUnit
	stopped []string
	resets  []string
	failRun bool
}

func newFakeUnits() *fakeUnits { return &fakeUnits{units: map[string]*fakeUnit{}} }

func propValue(props []sddbus.Property, name string) (any, bool) {
	for _, p := range props {
		if p.Name == name {
			return p.Value.Value(), true
		}
	}
	return nil, false
}

func (f *fakeUnits) StartTransient(ctx context.Context, name string, props []sddbus.Property) error {
	f.mu.Lock()
	if u := f.units[name]; u != nil && u.info.ActiveState == "active" {
		f.mu.Unlock()
		return errors.New("unit exists")
	}
	f.mu.Unlock()
	v, _ := propValue(props, "Environment")
	env, _ := v.([]string)
	m := map[string]string{}
	for _, kv := range env {
		k, val, _ := strings.Cut(kv, "=")
		m[k] = val
	}
	if f.failRun {
		return errors.New("job failed")
	}
	rctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = container.ServeWith(rctx, &echoProgram{}, container.Options{
			Getenv: func(k string) string { return m[k] }, NoSignals: true, Logger: clienttest.Quiet(),
			OnReady: func(*container.Host) { close(ready) },
		})
	}()
	select {
	case <-ready:
	case <-done:
		cancel()
		return errors.New("program exited")
	case <-ctx.Done():
		cancel()
		return ctx.Err()
	}
	f.mu.Lock()
	f.units[name] = &fakeUnit{info: transient.UnitInfo{Name: name, ActiveState: "active", SubState: "running"}, env: env, props: props, stop: cancel, done: done}
	f.mu.Unlock()
	return nil
}

func (f *fakeUnits) Stop(_ context.Context, name string) error {
	f.mu.Lock()
	u := f.units[name]
	f.stopped = append(f.stopped, name)
	f.mu.Unlock()
	if u == nil {
		return nil
	}
	if u.stop != nil {
		u.stop()
		<-u.done
	}
	f.mu.Lock()
	delete(f.units, name)
	f.mu.Unlock()
	return nil
}

func (f *fakeUnits) ResetFailed(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.resets = append(f.resets, name)
	if u := f.units[name]; u != nil && u.info.ActiveState == "failed" {
		delete(f.units, name)
	}
	return nil
}

func (f *fakeUnits) List(_ context.Context, pattern string) ([]transient.UnitInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []transient.UnitInfo
	for name, u := range f.units {
		if ok, _ := filepath.Match(pattern, name); ok {
			out = append(out, u.info)
		}
	}
	return out, nil
}

func (f *fakeUnits) State(_ context.Context, name string) (transient.UnitInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if u := f.units[name]; u != nil {
		return u.info, nil
	}
	return transient.UnitInfo{Name: name, ActiveState: "inactive", SubState: "dead"}, nil
}

func (f *fakeUnits) Environment(_ context.Context, name string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if u := f.units[name]; u != nil {
		return u.env, nil
	}
	return nil, errors.New("no such unit")
}

// put adds a unit in a given state without running anything.
func (f *fakeUnits) put(name, state string, env []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.units[name] = &fakeUnit{info: transient.UnitInfo{Name: name, ActiveState: state}, env: env, done: make(chan struct{})}
}

func (f *fakeUnits) setState(name, active, sub string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if u := f.units[name]; u != nil {
		u.info.ActiveState, u.info.SubState = active, sub
	}
}

func (f *fakeUnits) active(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	u := f.units[name]
	return u != nil && u.info.ActiveState == "active"
}

func (f *fakeUnits) propsOf(name string) []sddbus.Property {
	f.mu.Lock()
	defer f.mu.Unlock()
	if u := f.units[name]; u != nil {
		return u.props
	}
	return nil
}

func (f *fakeUnits) stopAll() {
	f.mu.Lock()
	names := make([]string, 0, len(f.units))
	for n := range f.units {
		names = append(names, n)
	}
	f.mu.Unlock()
	for _, n := range names {
		_ = f.Stop(context.Background(), n)
	}
}
