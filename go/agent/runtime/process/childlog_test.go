package process

import (
	"testing"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestChildLinesKeepTheirLevelAndFields(t *testing.T) {
	log, hook := test.NewNullLogger()
	log.SetLevel(logrus.DebugLevel)
	base := log.WithField("container", "c1")
	for _, line := range []string{
		`time="2026-01-01T00:00:00Z" level=warning msg="slow \"disk\"" pid=7`,
		`<4>level=warning msg="slow \"disk\"" pid=7`,
		`{"time":"2026-01-01T00:00:00Z","level":"warning","msg":"slow \"disk\"","pid":"7"}`,
	} {
		hook.Reset()
		logAt(childEntry(base, []byte(line)))
		e := hook.LastEntry()
		require.NotNil(t, e, line)
		assert.Equal(t, logrus.WarnLevel, e.Level, line)
		assert.Equal(t, `slow "disk"`, e.Message, "%s: not nested inside the agent's line", line)
		assert.Equal(t, "7", e.Data["pid"], line)
		assert.Equal(t, "c1", e.Data["container"], line)
		assert.NotContains(t, e.Data, "time", line)
	}

	hook.Reset()
	logAt(childEntry(base, []byte(`plain output = not logfmt`)))
	assert.Equal(t, "plain output = not logfmt", hook.LastEntry().Message)
	assert.Equal(t, logrus.InfoLevel, hook.LastEntry().Level)

	hook.Reset()
	logAt(childEntry(base, []byte(`level=fatal msg=bye`)))
	assert.Equal(t, logrus.ErrorLevel, hook.LastEntry().Level, "a child's fatal does not end the agent")
}
