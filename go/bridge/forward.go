package bridge

import (
	"errors"
	"fmt"
	"regexp"
	"time"
)

// Defaults applied to a Forward's zero fields.
const (
	DefaultDialTimeout = 5 * time.Second
	DefaultDialBackoff = 100 * time.Millisecond
	// MaxDialBackoff caps the doubling backoff between dial attempts.
	MaxDialBackoff = 2 * time.Second
)

// Forward is one listen address forwarded to one target.
type Forward struct {
	// Name identifies the forward in stats, metrics, logs and socket
	// activation (systemd's FileDescriptorName=).
	Name string
	// Listen is "tcp:HOST:PORT" or "unix:PATH". It may be empty when the
	// listener is handed over (socket activation).
	Listen string
	// Target is "tcp:HOST:PORT" or "unix:PATH".
	Target string
	// MaxConnections bounds the concurrent connections; beyond it new ones
	// are closed at once and counted as rejected. 0 means no limit.
	MaxConnections int
	// IdleTimeout closes a connection with no data either way for this
	// long. 0 disables it.
	IdleTimeout time.Duration
	// DialTimeout bounds each attempt to connect to the target
	// (0: DefaultDialTimeout).
	DialTimeout time.Duration
	// DialRetries is how many more attempts follow a failed one before the
	// client's connection is closed; a target that restarts is normal.
	DialRetries int
	// DialBackoff is the wait before the first retry, doubled after each
	// (0: DefaultDialBackoff), up to MaxDialBackoff.
	DialBackoff time.Duration
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.@-]*$`)

// Validate checks f; listenOptional is true when a listener is provided for
// it. Errors name the forward and the field.
func (f Forward) Validate(listenOptional bool) error {
	var errs []error
	if !nameRE.MatchString(f.Name) || len(f.Name) > 255 {
		errs = append(errs, fmt.Errorf("forward name %q: want letters, digits, and _ . @ - (at most 255)", f.Name))
	}
	if f.Listen == "" {
		if !listenOptional {
			errs = append(errs, fmt.Errorf("forward %q: listen is required (no socket-activated listener named %q)", f.Name, f.Name))
		}
	} else if _, err := ParseAddress(f.Listen); err != nil {
		errs = append(errs, fmt.Errorf("forward %q: listen: %w", f.Name, err))
	}
	if f.Target == "" {
		errs = append(errs, fmt.Errorf("forward %q: target is required", f.Name))
	} else if t, err := ParseAddress(f.Target); err != nil {
		errs = append(errs, fmt.Errorf("forward %q: target: %w", f.Name, err))
	} else if t.Network == "tcp" && hasZeroPort(t.Addr) {
		errs = append(errs, fmt.Errorf("forward %q: target %q: port 0 cannot be dialled", f.Name, f.Target))
	}
	if f.MaxConnections < 0 {
		errs = append(errs, fmt.Errorf("forward %q: max_connections %d is negative", f.Name, f.MaxConnections))
	}
	if f.IdleTimeout < 0 {
		errs = append(errs, fmt.Errorf("forward %q: idle_timeout %s is negative", f.Name, f.IdleTimeout))
	}
	if f.DialTimeout < 0 {
		errs = append(errs, fmt.Errorf("forward %q: dial_timeout %s is negative", f.Name, f.DialTimeout))
	}
	if f.DialRetries < 0 {
		errs = append(errs, fmt.Errorf("forward %q: dial_retries %d is negative", f.Name, f.DialRetries))
	}
	if f.DialBackoff < 0 {
		errs = append(errs, fmt.Errorf("forward %q: dial_backoff %s is negative", f.Name, f.DialBackoff))
	}
	return errors.Join(errs...)
}

func hasZeroPort(hostport string) bool {
	l := len(hostport)
	return l >= 2 && hostport[l-2:] == ":0"
}

func (f Forward) withDefaults() Forward {
	if f.DialTimeout == 0 {
		f.DialTimeout = DefaultDialTimeout
	}
	if f.DialBackoff == 0 {
		f.DialBackoff = DefaultDialBackoff
	}
	return f
}
