package transient

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	godbus "github.com/godbus/dbus/v5"
)

// Unit properties go over D-Bus with their own types (MemoryMax is a
// uint64 of bytes, not "512M"), which systemd-run knows for every property
// and we know for the ones below; any other is refused when the
// configuration is read, rather than by systemd at the first start.
type propKind int

const (
	propString propKind = iota
	propBool
	propBytes   // uint64 bytes, K/M/G/T suffixes (1024), "infinity"
	propUint64  // plain number, "infinity"
	propUsec    // a duration, sent as microseconds under Name+"USec"
	propPercent // CPUQuota=50% → CPUQuotaPerSecUSec
	propInt32
	propStrings // space separated list
)

var knownProps = map[string]propKind{
	"User": propString, "Group": propString, "WorkingDirectory": propString, "RootDirectory": propString,
	"Slice": propString, "ProtectSystem": propString, "ProtectHome": propString, "Description": propString,
	"DynamicUser": propBool, "PrivateTmp": propBool, "PrivateDevices": propBool, "PrivateNetwork": propBool,
	"NoNewPrivileges": propBool, "ProtectKernelTunables": propBool, "ProtectKernelModules": propBool,
	"ProtectControlGroups": propBool, "RestrictRealtime": propBool, "MemoryAccounting": propBool,
	"CPUAccounting": propBool, "TasksAccounting": propBool,
	"MemoryMax": propBytes, "MemoryHigh": propBytes, "MemoryLow": propBytes, "MemorySwapMax": propBytes,
	"TasksMax": propUint64, "CPUWeight": propUint64, "IOWeight": propUint64,
	"LimitNOFILE": propUint64, "LimitNPROC": propUint64, "LimitCORE": propBytes,
	"RuntimeMaxSec": propUsec, "TimeoutStartSec": propUsec, "TimeoutStopSec": propUsec, "RestartSec": propUsec,
	"CPUQuota": propPercent, "Nice": propInt32,
	"SupplementaryGroups": propStrings, "ReadWritePaths": propStrings, "ReadOnlyPaths": propStrings,
	"InaccessiblePaths": propStrings,
}

// KnownProperties lists the unit properties unit_properties may set.
func KnownProperties() []string {
	out := make([]string, 0, len(knownProps))
	for k := range knownProps {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ParseProperty turns NAME=VALUE (systemd's text form) into D-Bus
// properties; the error says what was wrong.
func ParseProperty(name, value string) ([]sddbus.Property, error) {
	kind, ok := knownProps[name]
	if !ok {
		return nil, fmt.Errorf("unit property %s is not supported (supported: %s)", name, strings.Join(KnownProperties(), ", "))
	}
	v := strings.TrimSpace(value)
	prop := func(n string, x any) []sddbus.Property {
		return []sddbus.Property{{Name: n, Value: godbus.MakeVariant(x)}}
	}
	switch kind {
	case propString:
		return prop(name, v), nil
	case propBool:
		switch strings.ToLower(v) {
		case "yes", "true", "1", "on":
			return prop(name, true), nil
		case "no", "false", "0", "off":
			return prop(name, false), nil
		}
		return nil, fmt.Errorf("%s: want yes or no, got %q", name, value)
	case propBytes:
		n, err := parseBytes(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if name == "LimitCORE" {
			return append(prop(name, n), prop(name+"Soft", n)...), nil
		}
		return prop(name, n), nil
	case propUint64:
		var n uint64
		if v == "infinity" {
			n = math.MaxUint64
		} else {
			x, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%s: want a number or infinity, got %q", name, value)
			}
			n = x
		}
		if strings.HasPrefix(name, "Limit") {
			return append(prop(name, n), prop(name+"Soft", n)...), nil
		}
		return prop(name, n), nil
	case propUsec:
		d, err := parseSec(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		return prop(strings.TrimSuffix(name, "Sec")+"USec", uint64(d/time.Microsecond)), nil
	case propPercent:
		p, ok := strings.CutSuffix(v, "%")
		f, err := strconv.ParseFloat(p, 64)
		if !ok || err != nil || f <= 0 {
			return nil, fmt.Errorf("%s: want a percentage such as 50%%, got %q", name, value)
		}
		return prop("CPUQuotaPerSecUSec", uint64(f*10000)), nil
	case propInt32:
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("%s: want an integer, got %q", name, value)
		}
		return prop(name, int32(n)), nil
	case propStrings:
		return prop(name, strings.Fields(v)), nil
	}
	return nil, fmt.Errorf("unit property %s: unsupported", name)
}

func parseBytes(v string) (uint64, error) {
	if v == "infinity" {
		return math.MaxUint64, nil
	}
	mult := uint64(1)
	if v != "" {
		switch v[len(v)-1] {
		case 'K', 'k':
			mult = 1 << 10
		case 'M', 'm':
			mult = 1 << 20
		case 'G', 'g':
			mult = 1 << 30
		case 'T', 't':
			mult = 1 << 40
		}
		if mult > 1 {
			v = v[:len(v)-1]
		}
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("want bytes such as 512M or infinity, got %q", v)
	}
	return n * mult, nil
}

// parseSec reads systemd's seconds: a bare number of seconds, or a Go
// duration ("1.5s", "2m").
func parseSec(v string) (time.Duration, error) {
	if f, err := strconv.ParseFloat(v, 64); err == nil && f >= 0 {
		return time.Duration(f * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("want seconds or a duration such as 30s, got %q", v)
	}
	return d, nil
}

// ParseProperties parses a kind's unit_properties, in name order.
func ParseProperties(props map[string]string) ([]sddbus.Property, error) {
	names := make([]string, 0, len(props))
	for n := range props {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []sddbus.Property
	for _, n := range names {
		p, err := ParseProperty(n, props[n])
		if err != nil {
			return nil, err
		}
		out = append(out, p...)
	}
	return out, nil
}
