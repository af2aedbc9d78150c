// Package logsetup builds the daemons' logrus logger from the --log-level and
// --log-format settings.
//
// Formats:
//   - text: logfmt with full timestamps, for a terminal or a file;
//   - json: one JSON object per line, for log shippers;
//   - journal: for stderr connected to journald. No timestamp (journald adds
//     its own) and each line prefixed with a syslog priority "<N>", which
//     journald's stream transport turns into the entry's PRIORITY (see
//     sd-daemon(3), SyslogLevelPrefix=, on by default);
//   - auto (or empty): journal when stderr is the journal (JOURNAL_STREAM
//     matches fd 2), text otherwise.
//
// Why the "<N>" prefix rather than native journald fields through
// go-systemd/journal: the prefix needs nothing but stderr, so it works the
// same inside nspawn containers, under sandboxed units without access to
// /run/systemd/journal/socket, and with `systemd-run --pipe`; entries keep
// their order relative to anything else the process writes to stderr (a Go
// panic trace); and a message is never lost to a full datagram socket. The
// structured fields stay readable as logfmt in MESSAGE.
package logsetup

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/huly-net/huly-net/go/internal/systemd"
)

// Format names accepted by Configure.
const (
	FormatAuto    = "auto"
	FormatText    = "text"
	FormatJSON    = "json"
	FormatJournal = "journal"
)

// Formats lists the accepted format names, for help texts.
var Formats = []string{FormatAuto, FormatText, FormatJSON, FormatJournal}

// Levels lists the accepted level names, for help texts.
var Levels = []string{"trace", "debug", "info", "warn", "error", "fatal", "panic"}

// Configure returns a logger writing to stderr at level in format. An empty
// level means info, an empty format auto.
func Configure(level, format string) (*logrus.Logger, error) {
	return ConfigureOutput(os.Stderr, level, format)
}

// ConfigureOutput is Configure writing to w. The auto format still looks at
// the process's stderr, since only that can be the journal stream.
func ConfigureOutput(w io.Writer, level, format string) (*logrus.Logger, error) {
	lvl, err := ParseLevel(level)
	if err != nil {
		return nil, err
	}
	f, err := Formatter(format)
	if err != nil {
		return nil, err
	}
	l := logrus.New()
	l.SetOutput(w)
	l.SetLevel(lvl)
	l.SetFormatter(f)
	return l, nil
}

// ParseLevel parses a log level name; the error names the bad value and the
// accepted ones.
func ParseLevel(level string) (logrus.Level, error) {
	if strings.TrimSpace(level) == "" {
		return logrus.InfoLevel, nil
	}
	lvl, err := logrus.ParseLevel(strings.TrimSpace(level))
	if err != nil {
		return 0, fmt.Errorf("invalid log level %q (want one of %s)", level, strings.Join(Levels, ", "))
	}
	return lvl, nil
}

// Formatter returns the logrus formatter for a format name; the error names
// the bad value and the accepted ones.
func Formatter(format string) (logrus.Formatter, error) {
	switch strings.ToLower(strings.TrimSpace(format)) {
	case "", FormatAuto:
		if systemd.UnderJournal() {
			return NewJournalFormatter(), nil
		}
		return textFormatter(), nil
	case FormatText:
		return textFormatter(), nil
	case FormatJSON:
		return &JSONFormatter{inner: logrus.JSONFormatter{TimestampFormat: "2006-01-02T15:04:05.000000Z07:00"}}, nil
	case FormatJournal:
		return NewJournalFormatter(), nil
	default:
		return nil, fmt.Errorf("invalid log format %q (want one of %s)", format, strings.Join(Formats, ", "))
	}
}

// JSONFormatter is logrus' JSON formatter with durations written as Go
// duration strings ("1.5s") rather than integer nanoseconds, as the text
// formats show them.
type JSONFormatter struct {
	inner logrus.JSONFormatter
}

// Format implements logrus.Formatter.
func (f *JSONFormatter) Format(e *logrus.Entry) ([]byte, error) {
	for _, v := range e.Data {
		if _, ok := v.(time.Duration); ok {
			c := *e // the entry is the caller's: change a copy
			c.Data = make(logrus.Fields, len(e.Data))
			for k, v := range e.Data {
				if d, ok := v.(time.Duration); ok {
					v = d.String()
				}
				c.Data[k] = v
			}
			return f.inner.Format(&c)
		}
	}
	return f.inner.Format(e)
}

func textFormatter() *logrus.TextFormatter {
	return &logrus.TextFormatter{FullTimestamp: true, TimestampFormat: "2006-01-02T15:04:05.000Z07:00"}
}

// JournalFormatter writes logfmt without timestamps, each line prefixed with
// the entry's syslog priority.
type JournalFormatter struct {
	inner logrus.TextFormatter
}

// NewJournalFormatter returns a JournalFormatter.
func NewJournalFormatter() *JournalFormatter {
	return &JournalFormatter{inner: logrus.TextFormatter{
		DisableTimestamp: true,
		// journald is not a terminal, even when `journalctl` later shows
		// the entries on one.
		DisableColors: true,
	}}
}

// Priority maps a logrus level to a syslog priority (RFC 5424 severity).
func Priority(l logrus.Level) int {
	switch l {
	case logrus.PanicLevel, logrus.FatalLevel:
		return 2 // crit: emerg (0) would be broadcast to every terminal
	case logrus.ErrorLevel:
		return 3
	case logrus.WarnLevel:
		return 4
	case logrus.InfoLevel:
		return 6
	default:
		return 7
	}
}

// Format implements logrus.Formatter.
func (f *JournalFormatter) Format(e *logrus.Entry) ([]byte, error) {
	body, err := f.inner.Format(e)
	if err != nil {
		return nil, err
	}
	body = bytes.TrimRight(body, "\n")
	prefix := []byte(fmt.Sprintf("<%d>", Priority(e.Level)))
	// The text formatter quotes newlines inside values, but a field holding
	// pre-formatted text could still span lines; journald makes an entry of
	// each line, so each gets the priority.
	lines := bytes.Split(body, []byte("\n"))
	out := make([]byte, 0, len(body)+len(lines)*(len(prefix)+1))
	for _, line := range lines {
		out = append(out, prefix...)
		out = append(out, line...)
		out = append(out, '\n')
	}
	return out, nil
}
