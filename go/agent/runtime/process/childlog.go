package process

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/sirupsen/logrus"
)

// childEntry turns one line a child wrote into a log entry of the agent's.
// A child that logs as the daemons do (logfmt or JSON, optionally with a
// journal priority prefix "<N>") keeps its level, message and fields, so
// its line is not nested as a quoted string inside the agent's; its
// timestamp is dropped (the agent's stands). Anything else is logged as
// the message at info.
func childEntry(log logrus.FieldLogger, line []byte) (logrus.FieldLogger, logrus.Level, string) {
	s := string(line)
	if len(s) > 2 && s[0] == '<' {
		if i := strings.IndexByte(s, '>'); i > 1 && i < 4 {
			if _, err := strconv.Atoi(s[1:i]); err == nil {
				s = s[i+1:]
			}
		}
	}
	fields, ok := parseJSONLine(s)
	if !ok {
		fields, ok = parseLogfmt(s)
	}
	msg, hasMsg := fields["msg"].(string)
	if !ok || !hasMsg {
		return log, logrus.InfoLevel, string(line)
	}
	level := logrus.InfoLevel
	if l, ok := fields["level"].(string); ok {
		if parsed, err := logrus.ParseLevel(l); err == nil {
			level = parsed
		}
	}
	delete(fields, "msg")
	delete(fields, "level")
	delete(fields, "time")
	if len(fields) > 0 {
		log = log.WithFields(logrus.Fields(fields))
	}
	return log, level, msg
}

func parseJSONLine(s string) (map[string]any, bool) {
	if !strings.HasPrefix(strings.TrimSpace(s), "{") {
		return nil, false
	}
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	if err := dec.Decode(&m); err != nil {
		return nil, false
	}
	return m, true
}

// parseLogfmt reads key=value pairs (values bare or Go-quoted); it fails on
// anything else, so prose is not mistaken for fields.
func parseLogfmt(s string) (map[string]any, bool) {
	out := map[string]any{}
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimLeft(s, " ") {
		eq := strings.IndexByte(s, '=')
		if eq <= 0 || strings.ContainsAny(s[:eq], " \"") {
			return nil, false
		}
		key := s[:eq]
		s = s[eq+1:]
		var val string
		if strings.HasPrefix(s, `"`) {
			end := 1
			for end < len(s) && s[end] != '"' {
				if s[end] == '\\' {
					end++
				}
				end++
			}
			if end >= len(s) {
				return nil, false
			}
			v, err := strconv.Unquote(s[:end+1])
			if err != nil {
				return nil, false
			}
			val, s = v, s[end+1:]
		} else {
			sp := strings.IndexByte(s, ' ')
			if sp < 0 {
				sp = len(s)
			}
			val, s = s[:sp], s[sp:]
		}
		out[key] = val
	}
	return out, len(out) > 0
}

// logAt logs at a child's level; a child's fatal or panic is an error of
// the agent's, never a reason for the agent to exit.
func logAt(log logrus.FieldLogger, level logrus.Level, msg string) {
	switch level {
	case logrus.TraceLevel, logrus.DebugLevel:
		log.Debug(msg)
	case logrus.InfoLevel:
		log.Info(msg)
	case logrus.WarnLevel:
		log.Warn(msg)
	default:
		log.Error(msg)
	}
}
