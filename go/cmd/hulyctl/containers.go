package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/huly-net/huly-net/go/client"
	"github.com/huly-net/huly-net/go/network"
)

// record is a container record as the network sent it, decoded and raw:
// --json passes the raw one through, so that fields this version does not
// know reach scripts. fields holds the record's keys and, under them, the
// keys of its extra object, where huly-agent reports a container's state,
// runtime and desired state.
type record struct {
	network.ContainerRecord
	raw    json.RawMessage
	fields map[string]json.RawMessage
}

// optionalColumns are record (or extra) fields shown when some record has
// them.
var optionalColumns = []string{"state", "desired", "runtime"}

func (a *app) containersCommand() *cobra.Command {
	var kind string
	cmd := &cobra.Command{
		Use:   "containers [--kind KIND]",
		Short: "List the containers the network knows",
		Long: `List the containers the network knows, of every kind or of --kind: uuid,
kind, agent, endpoint, labels and last visit, and the state, desired state
and runtime when the agent reports them (huly-agent does, in the record's
extra). --json prints the network's records as an array.

A 0.7 TypeScript network lists nothing without --kind.`,
		Args: exactArgs(0),
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			c, err := a.dial(cmd.Context())
			if err != nil {
				return err
			}
			defer a.close(c)
			ctx, cancel := a.call(cmd.Context())
			defer cancel()
			recs, err := listContainers(ctx, c, kind)
			if err != nil {
				return a.callError("list containers", err)
			}
			if a.json {
				raws := make([]json.RawMessage, 0, len(recs))
				for _, r := range recs {
					raws = append(raws, r.raw)
				}
				return a.printJSON(raws)
			}
			return a.containerTable(recs)
		}),
	}
	cmd.Flags().StringVar(&kind, "kind", "", "only containers of this kind")
	return cmd
}

// listContainers asks cl and keeps every record raw and decoded, sorted
// by kind and uuid.
func listContainers(ctx context.Context, c *client.Client, kind string) ([]record, error) {
	params := map[string]any{"kind": nil}
	if kind != "" {
		params["kind"] = kind
	}
	res, err := c.Call(ctx, "cl", params)
	if err != nil {
		return nil, err
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(res, &raws); err != nil {
		return nil, fmt.Errorf("answer is not a list of records: %w", err)
	}
	out := make([]record, 0, len(raws))
	for i, raw := range raws {
		r := record{raw: raw}
		if err := json.Unmarshal(raw, &r.ContainerRecord); err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
		if err := json.Unmarshal(raw, &r.fields); err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
		var extra map[string]json.RawMessage
		if json.Unmarshal(r.Extra, &extra) == nil { // not an object: nothing to show
			for k, v := range extra {
				if _, taken := r.fields[k]; !taken {
					r.fields[k] = v
				}
			}
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind < out[j].Kind
		}
		return out[i].UUID < out[j].UUID
	})
	return out, nil
}

func (a *app) containerTable(recs []record) error {
	var extra []string
	for _, col := range optionalColumns {
		for _, r := range recs {
			if _, ok := r.fields[col]; ok {
				extra = append(extra, col)
				break
			}
		}
	}
	header := []string{"UUID", "KIND", "AGENT", "ENDPOINT", "LABELS", "LAST VISIT"}
	for _, col := range extra {
		header = append(header, strings.ToUpper(col))
	}
	rows := [][]string{header}
	for _, r := range recs {
		row := []string{
			string(r.UUID), r.Kind, string(r.AgentID), endpointText(r.Endpoint), list(r.Labels), lastVisit(r.LastVisit),
		}
		for _, col := range extra {
			row = append(row, fieldText(r.fields[col]))
		}
		rows = append(rows, row)
	}
	return a.table(rows)
}

// lastVisit shows a Unix millisecond time; a 0.7 network sends
// process-relative numbers for some records, shown as they are.
func lastVisit(ms int64) string {
	if ms < 1e12 { // before 2001: not a Unix time
		if ms <= 0 {
			return "-"
		}
		return fmt.Sprintf("%dms", ms)
	}
	return time.UnixMilli(ms).Format("2006-01-02 15:04:05")
}

func fieldText(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return "-"
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}
