package bridge

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// idleWatcher closes a connection that carried no data either way for the
// idle timeout. It costs one timer per connection and, when it fires, one
// getsockopt(TCP_INFO): the kernel already records when a socket last sent
// and received data, so the copies need no deadline refreshed per read and
// keep splicing. For a pair of non-TCP sockets it falls back to byte
// counters bumped by the copies.
type idleWatcher struct {
	timeout time.Duration
	pc      *proxyConn
	onIdle  func()
	tcp     *net.TCPConn // the socket whose TCP_INFO is read, if any
	// counts are bytes read per direction, used only without tcp.
	counts [2]atomic.Uint64
	last   uint64

	mu      sync.Mutex
	timer   *time.Timer
	stopped bool
}

func watchIdle(pc *proxyConn, timeout time.Duration, onIdle func()) *idleWatcher {
	w := &idleWatcher{timeout: timeout, pc: pc, onIdle: onIdle}
	// One TCP socket is enough: its last-received time covers one direction
	// and its last-sent time the other.
	if tc, ok := pc.client.(*net.TCPConn); ok {
		w.tcp = tc
	} else if tc, ok := pc.target.(*net.TCPConn); ok {
		w.tcp = tc
	}
	w.mu.Lock()
	w.timer = time.AfterFunc(timeout, w.check)
	w.mu.Unlock()
	return w
}

// counter returns the activity counter the copy of direction dir must bump,
// or nil when TCP_INFO is used (or there is no watcher).
func (w *idleWatcher) counter(dir int) *atomic.Uint64 {
	if w == nil || w.tcp != nil {
		return nil
	}
	return &w.counts[dir]
}

func (w *idleWatcher) stop() {
	if w == nil {
		return
	}
	w.mu.Lock()
	w.stopped = true
	w.timer.Stop()
	w.mu.Unlock()
}

func (w *idleWatcher) check() {
	idle, ok := w.idleFor()
	if ok && idle >= w.timeout {
		w.mu.Lock()
		stopped := w.stopped
		w.mu.Unlock()
		if !stopped {
			w.onIdle()
			w.pc.abort()
		}
		return
	}
	next := w.timeout - idle
	if next < 10*time.Millisecond {
		next = 10 * time.Millisecond
	}
	w.mu.Lock()
	if !w.stopped {
		w.timer.Reset(next)
	}
	w.mu.Unlock()
}

// idleFor returns how long no data moved; ok is false when that cannot be
// known (the check is then retried after a full timeout).
func (w *idleWatcher) idleFor() (time.Duration, bool) {
	if w.tcp == nil {
		total := w.counts[0].Load() + w.counts[1].Load()
		if total != w.last {
			w.last = total
			return 0, true
		}
		return w.timeout, true
	}
	info, err := tcpInfo(w.tcp)
	if err != nil {
		return 0, false
	}
	recv := time.Duration(info.Last_data_recv) * time.Millisecond
	sent := time.Duration(info.Last_data_sent) * time.Millisecond
	return min(recv, sent), true
}

func tcpInfo(c *net.TCPConn) (*unix.TCPInfo, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	var info *unix.TCPInfo
	var serr error
	if err := rc.Control(func(fd uintptr) {
		info, serr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	}); err != nil {
		return nil, err
	}
	return info, serr
}
