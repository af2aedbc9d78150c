package systemd

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sort"
	"strings"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/coreos/go-systemd/v22/journal"
)

// Listeners returns the sockets systemd passed to this process (LISTEN_FDS,
// LISTEN_PID, LISTEN_FDNAMES), keyed by FileDescriptorName=. An fd without a
// name is keyed "LISTEN_FD_<n>" (n its descriptor number), as systemd names
// it. The variables are unset so child processes do not inherit them, and
// the descriptors are marked close-on-exec. With no socket activation the
// map is empty and the error nil.
//
// Unlike go-systemd's ListenersWithNames, an fd that is not a listening
// socket is an error naming it rather than being dropped silently: a unit
// whose socket is misconfigured should fail loudly, not serve nothing.
func Listeners() (map[string][]net.Listener, error) {
	files := activation.Files(true)
	out := make(map[string][]net.Listener, len(files))
	var errs []error
	for _, f := range files {
		ln, err := net.FileListener(f)
		// FileListener dups the descriptor; the original is ours to close.
		_ = f.Close()
		if err != nil {
			errs = append(errs, fmt.Errorf("socket-activated fd %q is not a listening stream socket: %w", f.Name(), err))
			continue
		}
		out[f.Name()] = append(out[f.Name()], ln)
	}
	if len(errs) > 0 {
		CloseListeners(out)
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// OnlyListener picks the listener of a daemon that takes a single socket:
// nil when systemd passed none, an error naming them when it passed more.
func OnlyListener(ls map[string][]net.Listener) (net.Listener, error) {
	var all []net.Listener
	for _, l := range ls {
		all = append(all, l...)
	}
	switch len(all) {
	case 0:
		return nil, nil
	case 1:
		return all[0], nil
	default:
		return nil, fmt.Errorf("expected one socket-activated listener, got %d (%s)", len(all), strings.Join(ListenerNames(ls), ", "))
	}
}

// ListenerNames returns the names in ls, sorted, for messages.
func ListenerNames(ls map[string][]net.Listener) []string {
	names := make([]string, 0, len(ls))
	for n := range ls {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// CloseListeners closes every listener in ls.
func CloseListeners(ls map[string][]net.Listener) {
	for _, l := range ls {
		for _, ln := range l {
			_ = ln.Close()
		}
	}
}

// UnderJournal reports whether stderr is connected to the journal, i.e.
// JOURNAL_STREAM names the device and inode of fd 2. Checking the inode, not
// just the variable's presence, matters: a child of a journald-logged service
// inherits JOURNAL_STREAM even when its stderr goes elsewhere.
func UnderJournal() bool {
	ok, err := journal.StderrIsJournalStream()
	if err != nil {
		fmt.Fprintf(os.Stderr, "ignoring malformed JOURNAL_STREAM: %v\n", err)
		return false
	}
	return ok
}
