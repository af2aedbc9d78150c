package logsetup

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestConfigureFormats(t *testing.T) {
	t.Setenv("JOURNAL_STREAM", "")

	var buf bytes.Buffer
	l, err := ConfigureOutput(&buf, "debug", "journal")
	require.NoError(t, err)
	assert.Equal(t, logrus.DebugLevel, l.GetLevel())
	l.WithField("forward", "web").Warn("target unreachable")
	l.Debug("dbg")
	l.Trace("not shown")
	lines := strings.Split(strings.TrimRight(buf.String(), "\n"), "\n")
	require.Len(t, lines, 2)
	assert.Equal(t, `<4>level=warning msg="target unreachable" forward=web`, lines[0])
	assert.Equal(t, `<7>level=debug msg=dbg`, lines[1])
	assert.NotContains(t, buf.String(), "time=", "journald adds its own timestamps")

	buf.Reset()
	l, err = ConfigureOutput(&buf, "info", "json")
	require.NoError(t, err)
	l.WithField("n", 3).Info("hello")
	var obj map[string]any
	require.NoError(t, json.Unmarshal(buf.Bytes(), &obj))
	assert.Equal(t, "hello", obj["msg"])
	assert.Equal(t, "info", obj["level"])
	assert.EqualValues(t, 3, obj["n"])
	assert.NotEmpty(t, obj["time"])

	buf.Reset()
	l, err = ConfigureOutput(&buf, "", "text")
	require.NoError(t, err)
	assert.Equal(t, logrus.InfoLevel, l.GetLevel(), "empty level means info")
	l.Info("plain")
	assert.Contains(t, buf.String(), "time=")
	assert.Contains(t, buf.String(), "msg=plain")
}

func TestAutoFollowsJournalStream(t *testing.T) {
	t.Setenv("JOURNAL_STREAM", "")
	f, err := Formatter("auto")
	require.NoError(t, err)
	assert.IsType(t, &logrus.TextFormatter{}, f)

	var st syscall.Stat_t
	require.NoError(t, syscall.Fstat(2, &st))
	t.Setenv("JOURNAL_STREAM", fmt.Sprintf("%d:%d", st.Dev, st.Ino))
	f, err = Formatter("")
	require.NoError(t, err)
	assert.IsType(t, &JournalFormatter{}, f)
}

func TestConfigureRejectsBadValues(t *testing.T) {
	_, err := Configure("loud", "text")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `log level "loud"`)
	assert.Contains(t, err.Error(), "debug")

	_, err = Configure("info", "xml")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `log format "xml"`)
	assert.Contains(t, err.Error(), "journal")
}

func TestJournalFormatterPrefixesEveryLine(t *testing.T) {
	f := NewJournalFormatter()
	out, err := f.Format(&logrus.Entry{Logger: logrus.New(), Level: logrus.ErrorLevel, Message: "a\nb", Data: logrus.Fields{}})
	require.NoError(t, err)
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		assert.True(t, strings.HasPrefix(line, "<3>"), "line %q", line)
	}
}

func TestPriority(t *testing.T) {
	assert.Equal(t, 2, Priority(logrus.FatalLevel))
	assert.Equal(t, 3, Priority(logrus.ErrorLevel))
	assert.Equal(t, 4, Priority(logrus.WarnLevel))
	assert.Equal(t, 6, Priority(logrus.InfoLevel))
	assert.Equal(t, 7, Priority(logrus.TraceLevel))
}

func TestJSONDurationsAreStrings(t *testing.T) {
	f, err := Formatter(FormatJSON)
	require.NoError(t, err)
	e := logrus.NewEntry(logrus.New()).WithFields(logrus.Fields{"timeout": 1500 * time.Millisecond, "n": 3})
	out, err := f.Format(e)
	require.NoError(t, err)
	var obj map[string]any
	require.NoError(t, json.Unmarshal(out, &obj))
	assert.Equal(t, "1.5s", obj["timeout"])
	assert.Equal(t, float64(3), obj["n"])
	assert.Equal(t, 1500*time.Millisecond, e.Data["timeout"], "the caller's entry is unchanged")
}
