// Package systemd is the daemons' thin layer over go-systemd: readiness and
// status notification, the watchdog, socket activation and journal detection.
//
// Every call is safe outside systemd: without NOTIFY_SOCKET the notifier does
// nothing, without LISTEN_FDS there are no listeners. Notification errors are
// logged and never returned as fatal, because a daemon that cannot reach the
// service manager still serves its clients (systemd will time it out if it
// really needed the message).
package systemd

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/sirupsen/logrus"
)

// Notifier sends sd_notify(3) messages to the service manager.
type Notifier struct {
	log logrus.FieldLogger
	// failing is set after a failed send, so a vanished notify socket is
	// reported once rather than on every STATUS update.
	failing atomic.Bool
}

// NewNotifier returns a notifier that logs failures to log (nil: the standard
// logrus logger).
func NewNotifier(log logrus.FieldLogger) *Notifier {
	if log == nil {
		log = logrus.StandardLogger()
	}
	return &Notifier{log: log}
}

// Notify sends one raw state string (possibly several NAME=VALUE lines). It
// reports whether a service manager received it; false with a nil error means
// there is none (NOTIFY_SOCKET unset).
func (n *Notifier) Notify(state string) (bool, error) {
	// NOTIFY_SOCKET is read on each call rather than cached so that tests and
	// re-executed children see the environment they were given.
	sent, err := daemon.SdNotify(false, state)
	if err != nil {
		return false, fmt.Errorf("sd_notify %q: %w", firstLine(state), err)
	}
	return sent, nil
}

func (n *Notifier) send(state string) {
	_, err := n.Notify(state)
	switch {
	case err == nil:
		if n.failing.Swap(false) {
			n.log.Info("systemd notifications work again")
		}
	case n.failing.Swap(true):
		n.log.WithError(err).Debug("systemd notification failed")
	default:
		n.log.WithError(err).Warn("systemd notification failed; further failures are logged at debug level")
	}
}

// Enabled reports whether a service manager is listening (NOTIFY_SOCKET set).
func (n *Notifier) Enabled() bool { return notifySocketSet() }

// Ready tells systemd that start-up is complete (Type=notify).
func (n *Notifier) Ready() { n.send(daemon.SdNotifyReady) }

// Status sets the one-line status shown by `systemctl status`.
func (n *Notifier) Status(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	// A newline would end the STATUS= assignment and start a bogus one.
	msg = strings.ReplaceAll(msg, "\n", " ")
	n.send("STATUS=" + msg)
}

// Stopping tells systemd that shutdown has begun, so it does not treat the
// drain period as a hang.
func (n *Notifier) Stopping() { n.send(daemon.SdNotifyStopping) }

// Reloading tells systemd that a configuration reload has begun; call Ready
// when it is done. MONOTONIC_USEC is included because Type=notify-reload
// requires it and older managers ignore it.
func (n *Notifier) Reloading() {
	n.send(daemon.SdNotifyReloading + "\n" + daemon.SdNotifyMonotonicUsec())
}

// WatchdogInterval returns the interval at which WATCHDOG=1 should be sent
// (half of WATCHDOG_USEC, as sd_watchdog_enabled(3) recommends), or 0 when
// systemd did not enable the watchdog for this process.
func WatchdogInterval() (time.Duration, error) {
	d, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		return 0, fmt.Errorf("reading WATCHDOG_USEC: %w", err)
	}
	return d / 2, nil
}

// Watchdog sends WATCHDOG=1 at half of WATCHDOG_USEC until ctx is done. It
// returns at once when the watchdog is not enabled for this process.
func (n *Notifier) Watchdog(ctx context.Context) {
	n.WatchdogCheck(ctx, nil)
}

// WatchdogCheck is Watchdog with a liveness check: a ping is sent only when
// check returns nil, so a daemon whose main loop is wedged stops feeding the
// watchdog and systemd restarts it. check gets a context bounded by the ping
// interval.
func (n *Notifier) WatchdogCheck(ctx context.Context, check func(context.Context) error) {
	interval, err := WatchdogInterval()
	if err != nil {
		n.log.WithError(err).Warn("systemd watchdog disabled")
		return
	}
	if interval <= 0 {
		return
	}
	n.log.WithField("interval", interval).Debug("systemd watchdog enabled")
	ping := func() {
		if check != nil {
			cctx, cancel := context.WithTimeout(ctx, interval)
			err := check(cctx)
			cancel()
			if err != nil {
				n.log.WithError(err).Warn("liveness check failed; not feeding the systemd watchdog")
				return
			}
		}
		n.send(daemon.SdNotifyWatchdog)
	}
	ping()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			ping()
		}
	}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func notifySocketSet() bool { return os.Getenv("NOTIFY_SOCKET") != "" }
