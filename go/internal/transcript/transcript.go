// Package transcript loads the captured wire transcripts of the reference
// network (backrpc/testdata/transcripts/*.jsonl): one line per multipart message as
// one process sent or received it.
package transcript

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Line is one captured message.
type Line struct {
	T        float64  // ms since the scenario started, one clock for all processes
	Proc     string   // network, network2, agent, client, rawclient, raw, ...
	Sock     string   // "router bind tcp://H:P" or "dealer connect tcp://H:P"
	SID      int      // socket number within the process
	Dir      string   // "out" (sent) or "in" (received)
	Frames   [][]byte // on ROUTER lines the first frame is the routing id
	Redacted bool     // stack text had local paths replaced: not byte-exact
	Num      int      // 1-based line number in its file
}

// Router reports whether the line was captured on a ROUTER socket.
func (l Line) Router() bool { return strings.HasPrefix(l.Sock, "router ") }

// Endpoint is the tcp://H:P part of Sock.
func (l Line) Endpoint() string {
	if i := strings.LastIndexByte(l.Sock, ' '); i >= 0 {
		return l.Sock[i+1:]
	}
	return l.Sock
}

// Session names one socket of one process: the unit a replay drives.
func (l Line) Session() string { return fmt.Sprintf("%s/%d %s", l.Proc, l.SID, l.Sock) }

// Body returns the frames without the routing id on ROUTER lines.
func (l Line) Body() [][]byte {
	if l.Router() && len(l.Frames) > 0 {
		return l.Frames[1:]
	}
	return l.Frames
}

type rawFrame struct {
	UTF8 *string `json:"utf8"`
	Hex  *string `json:"hex"`
}

type rawLine struct {
	T        float64    `json:"t"`
	Proc     string     `json:"proc"`
	Sock     string     `json:"sock"`
	SID      int        `json:"sid"`
	Dir      string     `json:"dir"`
	Frames   []rawFrame `json:"frames"`
	Redacted bool       `json:"redacted"`
}

// Load reads one transcript file.
func Load(path string) ([]Line, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read transcript: %w", err)
	}
	var lines []Line
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	n := 0
	for sc.Scan() {
		n++
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		var rl rawLine
		if err := json.Unmarshal(text, &rl); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", filepath.Base(path), n, err)
		}
		l := Line{T: rl.T, Proc: rl.Proc, Sock: rl.Sock, SID: rl.SID, Dir: rl.Dir, Redacted: rl.Redacted, Num: n}
		if l.Dir != "in" && l.Dir != "out" {
			return nil, fmt.Errorf("%s:%d: dir %q is neither in nor out", filepath.Base(path), n, l.Dir)
		}
		for i, f := range rl.Frames {
			switch {
			case f.UTF8 != nil:
				l.Frames = append(l.Frames, []byte(*f.UTF8))
			case f.Hex != nil:
				b, err := hex.DecodeString(*f.Hex)
				if err != nil {
					return nil, fmt.Errorf("%s:%d: frame %d: %w", filepath.Base(path), n, i, err)
				}
				l.Frames = append(l.Frames, b)
			default:
				return nil, fmt.Errorf("%s:%d: frame %d has neither utf8 nor hex", filepath.Base(path), n, i)
			}
		}
		lines = append(lines, l)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read transcript %s: %w", filepath.Base(path), err)
	}
	return lines, nil
}

// File is one loaded transcript.
type File struct {
	Name  string // base name without .jsonl
	Lines []Line
}

// LoadDir loads every *.jsonl file of dir, sorted by name.
func LoadDir(dir string) ([]File, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	if err != nil {
		return nil, fmt.Errorf("list transcripts: %w", err)
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("no transcripts in %s", dir)
	}
	sort.Strings(paths)
	files := make([]File, 0, len(paths))
	for _, p := range paths {
		lines, err := Load(p)
		if err != nil {
			return nil, err
		}
		files = append(files, File{Name: strings.TrimSuffix(filepath.Base(p), ".jsonl"), Lines: lines})
	}
	return files, nil
}

// Sessions groups the lines of a file by session, keeping each session's
// lines in file order and the sessions in order of first appearance.
func Sessions(lines []Line) (names []string, bySession map[string][]Line) {
	bySession = map[string][]Line{}
	for _, l := range lines {
		s := l.Session()
		if _, ok := bySession[s]; !ok {
			names = append(names, s)
		}
		bySession[s] = append(bySession[s], l)
	}
	return names, bySession
}

// SortByTime orders lines by capture time, keeping file order for ties.
func SortByTime(lines []Line) []Line {
	out := append([]Line(nil), lines...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].T < out[j].T })
	return out
}
