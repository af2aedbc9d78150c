package transient

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/coreos/go-systemd/v22/machine1"
)

// UnitInfo is a unit's state as the runtime needs it.
type UnitInfo struct {
	Name        string
	ActiveState string // active, activating, deactivating, inactive, failed
	SubState    string // running, auto-restart, dead, …
}

// Units is the part of systemd's D-Bus API the runtimes use; Bus is the
// real one, tests use a fake.
type Units interface {
	// StartTransient starts a transient unit and waits for its start job:
	// for Type=notify that is READY=1 (or the start timeout).
	StartTransient(ctx context.Context, name string, props []sddbus.Property) error
	// Stop stops a unit and waits for the job.
	Stop(ctx context.Context, name string) error
	// ResetFailed forgets a failed unit, so its name can be used again.
	ResetFailed(ctx context.Context, name string) error
	// List lists the loaded units whose names match pattern.
	List(ctx context.Context, pattern string) ([]UnitInfo, error)
	// State reads one unit's state; an unknown unit is inactive.
	State(ctx context.Context, name string) (UnitInfo, error)
	// Environment reads a service's Environment= (KEY=VALUE entries).
	Environment(ctx context.Context, name string) ([]string, error)
}

// Machines is the part of machined's API the nspawn runtime uses.
type Machines interface {
	ListMachines(ctx context.Context) ([]string, error)
	TerminateMachine(ctx context.Context, name string) error
}

// Bus is a connection to systemd and machined on the system bus.
type Bus struct {
	sd *sddbus.Conn
	mu chan struct{} // serialises machined calls, which take no context
	m  *machine1.Conn

	cancel context.CancelFunc // ends the connection's context
}

// ConnectSystemBus connects to systemd over the system bus, waiting at most
// timeout for the connection; machined is connected on first use (a host
// without it still runs transient units). The connection lives until ctx
// ends or Close: go-systemd ties a connection's whole life to the context
// it was made with, so a context that only bounds the connecting would
// close the connection as soon as it is made.
func ConnectSystemBus(ctx context.Context, timeout time.Duration) (*Bus, error) {
	life, cancel := context.WithCancel(ctx)
	type result struct {
		c   *sddbus.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := sddbus.NewSystemConnectionContext(life)
		done <- result{c, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			cancel()
			return nil, fmt.Errorf("connect to systemd on the system bus: %w", r.err)
		}
		return &Bus{sd: r.c, mu: make(chan struct{}, 1), cancel: cancel}, nil
	case <-time.After(timeout):
		cancel()
		return nil, fmt.Errorf("connect to systemd on the system bus: no connection within %s", timeout)
	}
}

// Close closes the connections.
func (b *Bus) Close() {
	b.sd.Close()
	b.cancel()
	// machine1.Conn has no Close; its connection is the shared system bus.
}

func jobResult(ctx context.Context, what string, ch <-chan string) error {
	select {
	case r := <-ch:
		if r != "done" {
			return fmt.Errorf("%s: job %s", what, r)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s: %w", what, ctx.Err())
	}
}

// StartTransient implements Units.
func (b *Bus) StartTransient(ctx context.Context, name string, props []sddbus.Property) error {
	ch := make(chan string, 1)
	if _, err := b.sd.StartTransientUnitContext(ctx, name, "fail", props, ch); err != nil {
		return fmt.Errorf("start transient unit %s: %w", name, err)
	}
	return jobResult(ctx, "start "+name, ch)
}

// Stop implements Units.
func (b *Bus) Stop(ctx context.Context, name string) error {
	ch := make(chan string, 1)
	if _, err := b.sd.StopUnitContext(ctx, name, "replace", ch); err != nil {
		if isNoSuchUnit(err) {
			return nil
		}
		return fmt.Errorf("stop unit %s: %w", name, err)
	}
	return jobResult(ctx, "stop "+name, ch)
}

// ResetFailed implements Units.
func (b *Bus) ResetFailed(ctx context.Context, name string) error {
	if err := b.sd.ResetFailedUnitContext(ctx, name); err != nil && !isNoSuchUnit(err) && !strings.Contains(err.Error(), "not failed") {
		return fmt.Errorf("reset-failed %s: %w", name, err)
	}
	return nil
}

// List implements Units.
func (b *Bus) List(ctx context.Context, pattern string) ([]UnitInfo, error) {
	st, err := b.sd.ListUnitsByPatternsContext(ctx, nil, []string{pattern})
	if err != nil {
		return nil, fmt.Errorf("list units %s: %w", pattern, err)
	}
	out := make([]UnitInfo, 0, len(st))
	for _, u := range st {
		out = append(out, UnitInfo{Name: u.Name, ActiveState: u.ActiveState, SubState: u.SubState})
	}
	return out, nil
}

// State implements Units.
func (b *Bus) State(ctx context.Context, name string) (UnitInfo, error) {
	p, err := b.sd.GetUnitPropertiesContext(ctx, name)
	if err != nil {
		return UnitInfo{}, fmt.Errorf("unit %s: %w", name, err)
	}
	as, _ := p["ActiveState"].(string)
	ss, _ := p["SubState"].(string)
	return UnitInfo{Name: name, ActiveState: as, SubState: ss}, nil
}

// Environment implements Units.
func (b *Bus) Environment(ctx context.Context, name string) ([]string, error) {
	p, err := b.sd.GetServicePropertyContext(ctx, name, "Environment")
	if err != nil {
		return nil, fmt.Errorf("unit %s: Environment: %w", name, err)
	}
	env, ok := p.Value.Value().([]string)
	if !ok {
		return nil, fmt.Errorf("unit %s: Environment is %s", name, p.Value.Signature())
	}
	return env, nil
}

func (b *Bus) machined(ctx context.Context) (*machine1.Conn, error) {
	select {
	case b.mu <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-b.mu }()
	if b.m == nil {
		m, err := machine1.New()
		if err != nil {
			return nil, fmt.Errorf("connect to machined: %w", err)
		}
		b.m = m
	}
	return b.m, nil
}

// bounded runs f, which takes no context, within ctx.
func bounded[T any](ctx context.Context, f func() (T, error)) (T, error) {
	type res struct {
		v   T
		err error
	}
	ch := make(chan res, 1)
	go func() { v, err := f(); ch <- res{v, err} }()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

// ListMachines implements Machines.
func (b *Bus) ListMachines(ctx context.Context) ([]string, error) {
	m, err := b.machined(ctx)
	if err != nil {
		return nil, err
	}
	list, err := bounded(ctx, m.ListMachines)
	if err != nil {
		return nil, fmt.Errorf("list machines: %w", err)
	}
	out := make([]string, 0, len(list))
	for _, s := range list {
		out = append(out, s.Name)
	}
	return out, nil
}

// TerminateMachine implements Machines.
func (b *Bus) TerminateMachine(ctx context.Context, name string) error {
	m, err := b.machined(ctx)
	if err != nil {
		return err
	}
	_, err = bounded(ctx, func() (struct{}, error) { return struct{}{}, m.TerminateMachine(name) })
	if err != nil && !strings.Contains(err.Error(), "No machine") {
		return fmt.Errorf("terminate machine %s: %w", name, err)
	}
	return nil
}

func isNoSuchUnit(err error) bool {
	var e interface{ Error() string }
	return errors.As(err, &e) && (strings.Contains(err.Error(), "NoSuchUnit") || strings.Contains(err.Error(), "not loaded"))
}
