package version

import (
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestDescribeBuildInfo(t *testing.T) {
	assert.Equal(t, "v1.2.3", describe(&debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}}), "a module version wins")
	assert.Equal(t, "dev-0123456789ab-dirty", describe(&debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123456789abcdef"}, {Key: "vcs.modified", Value: "true"},
	}}), "a VCS build names its revision")
	assert.Equal(t, "dev", describe(&debug.BuildInfo{}), "nothing known")
}

func TestStampedVersionWins(t *testing.T) {
	old := Version
	t.Cleanup(func() { Version = old })
	Version = "v9.9.9"
	assert.Equal(t, "v9.9.9", String())
}
