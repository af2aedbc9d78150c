package manpage

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWrite(t *testing.T) {
	var b strings.Builder
	require.NoError(t, Page{
		Name: "huly-x", Summary: "does x", Synopsis: "huly-x [flags]", Version: "v1",
		Description: "First paragraph\ncontinued.\n\n  an example\n  kept as is\n\n.dot at the start",
		Options:     []Option{{Names: "--log-level LEVEL", Usage: `a \ level`}},
		Environment: []Item{{Title: "HULY_LOG_LEVEL", Body: "as --log-level"}},
		Sections:    []Item{{Title: "Exit status", Body: "0 when fine."}},
		SeeAlso:     []string{"hulyctl", "huly-agent"},
	}.Write(&b))
	out := b.String()
	assert.Contains(t, out, ".TH HULY\\-X 1 \"\" \"huly\\-net v1\"")
	assert.Contains(t, out, ".SH NAME\nhuly\\-x \\- does x\n")
	assert.Contains(t, out, ".PP\nFirst paragraph continued.\n")
	assert.Contains(t, out, ".nf\n  an example\n  kept as is\n.fi\n")
	assert.Contains(t, out, "\\&.dot at the start", "a leading dot is not a request")
	assert.Contains(t, out, ".B \\-\\-log\\-level LEVEL\na \\e level\n")
	assert.Contains(t, out, ".SH EXIT STATUS\n")
	assert.Contains(t, out, ".BR hulyctl (1) ,\n.BR huly\\-agent (1)\n")
}
