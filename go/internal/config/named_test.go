package config

import (
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type item struct {
	Target  string   `json:"target"`
	Timeout Duration `json:"timeout"`
	Retries int      `json:"retries"`
}

func (i *item) ParseSpec(s string) error {
	if s == "" {
		return errors.New("want TARGET")
	}
	i.Target = s
	return nil
}

type fileOnly struct {
	Command string `json:"command"`
}

type withItems struct {
	Items   Named[item]     `json:"items" flag:"item" inherit:"true" usage:"an item NAME=TARGET"`
	Kinds   Named[fileOnly] `json:"kinds"`
	Timeout Duration        `json:"timeout" usage:"default timeout of the items"`
	Retries int             `json:"retries" usage:"default retries"`
	Labels  []string        `json:"labels" flag:"label" usage:"a label (repeatable)"`
}

func loadItems(t *testing.T, args []string, env map[string]string) (*withItems, *Loader, error) {
	t.Helper()
	cfg := &withItems{Timeout: Duration(time.Second), Retries: 3}
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	l := New(fs, cfg)
	return cfg, l, l.Load(args, func(k string) string { return env[k] })
}

func TestNamedItemsInheritAndKeepOrder(t *testing.T) {
	file := writeFile(t, `{"items":{"zeta":{"target":"z","retries":9},"alpha":{"target":"a"}},"timeout":"5s","kinds":{"k":{"command":"/bin/true"}}}`)
	cfg, _, err := loadItems(t, []string{"--config", file, "--item", "beta=b", "--retries", "4", "--label", "x", "--label", "y"}, map[string]string{"HULY_ITEMS": "alpha=a2; gamma=g"})
	require.NoError(t, err)
	assert.Equal(t, []string{"zeta", "alpha", "beta", "gamma"}, cfg.Items.Names(), "file order, then flags, then the environment")
	assert.Equal(t, 9, cfg.Items.Get("zeta").Retries, "an item's own value wins")
	assert.Equal(t, 4, cfg.Items.Get("beta").Retries, "the top-level value (a flag) is the items' default")
	assert.Equal(t, 5*time.Second, cfg.Items.Get("zeta").Timeout.D(), "inherited from the file's top level")
	assert.Equal(t, "a2", cfg.Items.Get("alpha").Target, "the environment replaces an item")
	assert.Equal(t, "/bin/true", cfg.Kinds.Get("k").Command)
	assert.Equal(t, []string{"x", "y"}, cfg.Labels, "a renamed repeatable flag")
}

func TestNamedErrorsNameThePath(t *testing.T) {
	for name, tc := range map[string]struct {
		body string
		args []string
		env  map[string]string
		want string
	}{
		"unknown item key": {body: `{"items":{"a":{"target":"x","tagret":"y"}}}`, want: `items.a.tagret: unknown key "tagret"`},
		"mistyped":         {body: `{"items":{"a":{"retries":"many"}}}`, want: `items.a.retries: want an integer, got JSON string`},
		"bad duration":     {body: `{"items":{"a":{"timeout":"soon"}}}`, want: `items.a.timeout`},
		"duplicate item":   {body: `{"items":{"a":{},"a":{}}}`, want: `items.a: key given twice`},
		"duplicate top":    {body: `{"timeout":"1s","timeout":"2s"}`, want: `timeout: key given twice`},
		"trailing data":    {body: `{} {}`, want: `data after the object`},
		"not an object":    {body: `[1]`, want: `want a JSON object`},
		"bad flag item":    {args: []string{"--item", "a="}, want: `want TARGET`},
		"bad env item":     {env: map[string]string{"HULY_ITEMS": "nonsense"}, want: `HULY_ITEMS: entry "nonsense"`},
		"file-only kinds":  {args: []string{"--kinds", "a=b"}, want: `flag provided but not defined: -kinds`},
	} {
		t.Run(name, func(t *testing.T) {
			args := tc.args
			if tc.body != "" {
				args = append([]string{"--config", writeFile(t, tc.body)}, args...)
			}
			_, _, err := loadItems(t, args, tc.env)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestEnvVarsAndHulyConfig(t *testing.T) {
	file := writeFile(t, `{"retries":7}`)
	cfg, l, err := loadItems(t, nil, map[string]string{"HULY_CONFIG": file})
	require.NoError(t, err)
	assert.Equal(t, 7, cfg.Retries, "HULY_CONFIG names the file")
	var names []string
	for _, v := range l.EnvVars() {
		names = append(names, v[0])
	}
	assert.Equal(t, "HULY_CONFIG HULY_ITEMS HULY_TIMEOUT HULY_RETRIES HULY_LABELS", strings.Join(names, " "), "file-only keys have no variable")
}
