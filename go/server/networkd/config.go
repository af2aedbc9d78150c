package networkd

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/huly-net/huly-net/go/auth"
	"github.com/huly-net/huly-net/go/backrpc"
	"github.com/huly-net/huly-net/go/internal/config"
	"github.com/huly-net/huly-net/go/internal/daemon"
	"github.com/huly-net/huly-net/go/network"
	"github.com/huly-net/huly-net/go/transport"
)

// DefaultListen is the address bound when nothing else is set.
const DefaultListen = "tcp://*:3737"

// Config is the network daemon's configuration: JSON keys, flags (--max-frame-size)
// and HULY_* variables are derived from the json tags.
type Config struct {
	daemon.Base

	Listen              string          `json:"listen" usage:"address to bind: tcp://HOST:PORT (HOST may be *); env HOST and PORT are honoured when this is not set"`
	AliveTimeout        config.Duration `json:"alive_timeout" usage:"drop a client, and the agents it hosts, after this long without a ping"`
	UnusedTimeout       config.Duration `json:"unused_timeout" usage:"terminate a container this long after its last reference is released"`
	PingInterval        config.Duration `json:"ping_interval" usage:"how often silent clients are swept (must be below alive-timeout)"`
	MaxAliveTimeout     config.Duration `json:"max_alive_timeout" usage:"largest alive timeout a client's hello may ask for; more is granted this much"`
	MaxClientIDLen      int             `json:"max_client_id_length" usage:"longest client id in bytes a hello may carry; a longer one is refused and its connection closed"`
	MaxDetachedSessions int             `json:"max_detached_sessions" usage:"sessions kept for disconnected clients waiting to come back; beyond it the oldest is dropped"`
	MaxFrameSize        int64           `json:"max_frame_size" usage:"largest accepted frame in bytes; a peer announcing more is disconnected"`
	MaxInflight         int             `json:"max_inflight" usage:"requests in flight per client before it is told to retry"`
	MaxServerInflight   int             `json:"max_server_inflight" usage:"requests in flight over all clients before new ones are told to retry (overload)"`
	MaxSubscriptions    int             `json:"max_subscriptions" usage:"kinds and uuids a client may watch (and failed gets it is kept waiting for) when it receives events by interest"`
	HandshakeTimeout    config.Duration `json:"handshake_timeout" usage:"time a new connection has to complete the ZMTP handshake"`
	SendQueue           int             `json:"send_queue" usage:"messages queued per client before a client that stopped reading is disconnected"`
	ShutdownTimeout     config.Duration `json:"shutdown_timeout" usage:"time to finish requests in flight on SIGTERM"`

	MaxConnections       int             `json:"max_connections" usage:"open connections at most; at the limit a new one replaces the oldest that has sent no message, or is closed at once (0: the file descriptor limit less a tenth, at least 64, kept for the server itself)"`
	HelloTimeout         config.Duration `json:"hello_timeout" usage:"time a connection has after its handshake to begin its first message (the hello) before it is closed"`
	FrameProgressTimeout config.Duration `json:"frame_progress_timeout" usage:"a connection whose message, once begun, goes this long without a byte is closed"`
	MaxBufferedBytes     int64           `json:"max_buffered_bytes" usage:"bytes all connections together may hold in unfinished messages; the connection that would go over is closed"`

	// Limits per kind (network.KindLimits).
	MaxContainersPerKind int    `json:"max_containers_per_kind" usage:"containers of one kind across the network (0: no limit); a get that would start one more fails at once"`
	MaxRequestsPerKind   int    `json:"max_requests_per_kind" usage:"routed requests to containers of one kind in flight at once (0: no limit); one more fails at once"`
	KindLimits           string `json:"kind_limits" usage:"per-kind limits replacing the two above, as KIND=CONTAINERS/REQUESTS (0 or empty: no limit), comma-separated"`

	// Security (docs/security.md); security.go.
	CurveSecretKeyFile string   `json:"curve_secret_key_file" usage:"the network's CURVE secret key file; turns security on (credential:NAME reads a systemd credential; empty uses the credential curve.key when present)"`
	AuthorizedKeys     string   `json:"authorized_keys" usage:"file of the keys that may connect, with their roles and kinds (reloaded on SIGHUP); required with a secret key"`
	AllowNullFrom      []string `json:"allow_null_from" usage:"CIDR from which peers without a key (TypeScript 0.7) are admitted on a secured network (repeatable)"`
	MaxAgentIDsPerKey  int      `json:"max_agent_ids_per_key" usage:"agent ids one key may have bound to it; a key registering more is refused"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() *Config {
	return &Config{
		Base:                daemon.DefaultBase(),
		Listen:              DefaultListen,
		AliveTimeout:        config.Duration(3 * time.Second),
		UnusedTimeout:       config.Duration(5 * time.Second),
		PingInterval:        config.Duration(time.Second),
		MaxAliveTimeout:     config.Duration(backrpc.DefaultMaxAliveTimeout),
		MaxClientIDLen:      backrpc.DefaultMaxClientIDLen,
		MaxDetachedSessions: backrpc.DefaultMaxDetachedSessions,
		MaxFrameSize:        transport.DefaultMaxFrameSize,
		MaxInflight:         1024,
		MaxServerInflight:   backrpc.DefaultMaxServerInflight,
		MaxSubscriptions:    network.DefaultMaxSubscriptions,
		HandshakeTimeout:    config.Duration(transport.DefaultHandshakeTimeout),
		SendQueue:           transport.DefaultSendQueue,
		ShutdownTimeout:     config.Duration(5 * time.Second),

		HelloTimeout:         config.Duration(transport.DefaultHandshakeTimeout),
		FrameProgressTimeout: config.Duration(transport.DefaultFrameProgressTimeout),
		MaxBufferedBytes:     transport.DefaultMaxBufferedBytes,
		MaxAgentIDsPerKey:    auth.DefaultMaxAgentIDsPerKey,
	}
}

// Validate checks the settings beyond daemon.Base; every error names its key.
func (c *Config) Validate() error {
	var errs []error
	positive := func(key string, d config.Duration) {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s: must be positive, got %s", key, d))
		}
	}
	positive("alive_timeout", c.AliveTimeout)
	positive("unused_timeout", c.UnusedTimeout)
	positive("ping_interval", c.PingInterval)
	positive("max_alive_timeout", c.MaxAliveTimeout)
	if c.MaxAliveTimeout < c.AliveTimeout && c.MaxAliveTimeout > 0 {
		errs = append(errs, fmt.Errorf("max_alive_timeout (%s) must not be below alive_timeout (%s)", c.MaxAliveTimeout, c.AliveTimeout))
	}
	if c.MaxClientIDLen < 36 {
		errs = append(errs, fmt.Errorf("max_client_id_length: must be at least 36 (a UUID), got %d", c.MaxClientIDLen))
	}
	if c.MaxDetachedSessions < 1 {
		errs = append(errs, fmt.Errorf("max_detached_sessions: must be at least 1, got %d", c.MaxDetachedSessions))
	}
	positive("handshake_timeout", c.HandshakeTimeout)
	positive("shutdown_timeout", c.ShutdownTimeout)
	positive("hello_timeout", c.HelloTimeout)
	positive("frame_progress_timeout", c.FrameProgressTimeout)
	if c.MaxConnections < 0 {
		errs = append(errs, fmt.Errorf("max_connections: must be 0 (from the file descriptor limit) or positive, got %d", c.MaxConnections))
	}
	if c.MaxBufferedBytes < c.MaxFrameSize+64<<10 {
		errs = append(errs, fmt.Errorf("max_buffered_bytes (%d) must be at least max_frame_size (%d) and 64 KiB", c.MaxBufferedBytes, c.MaxFrameSize))
	}
	if c.PingInterval >= c.AliveTimeout && c.PingInterval > 0 {
		errs = append(errs, fmt.Errorf("ping_interval (%s) must be below alive_timeout (%s)", c.PingInterval, c.AliveTimeout))
	}
	if c.MaxFrameSize < 1024 {
		errs = append(errs, fmt.Errorf("max_frame_size: must be at least 1024 bytes, got %d", c.MaxFrameSize))
	}
	if c.MaxServerInflight < 1 {
		errs = append(errs, fmt.Errorf("max_server_inflight: must be at least 1, got %d", c.MaxServerInflight))
	}
	if c.MaxSubscriptions < 1 {
		errs = append(errs, fmt.Errorf("max_subscriptions: must be at least 1, got %d", c.MaxSubscriptions))
	}
	if c.MaxInflight < 1 {
		errs = append(errs, fmt.Errorf("max_inflight: must be at least 1, got %d", c.MaxInflight))
	}
	if c.MaxAgentIDsPerKey < 1 {
		errs = append(errs, fmt.Errorf("max_agent_ids_per_key: must be at least 1, got %d", c.MaxAgentIDsPerKey))
	}
	if c.SendQueue < 1 {
		errs = append(errs, fmt.Errorf("send_queue: must be at least 1, got %d", c.SendQueue))
	}
	if _, err := c.PerKindLimits(); err != nil {
		errs = append(errs, fmt.Errorf("kind_limits: %w", err))
	}
	if c.MaxContainersPerKind < 0 || c.MaxRequestsPerKind < 0 {
		errs = append(errs, errors.New("max_containers_per_kind and max_requests_per_kind must not be negative"))
	}
	if _, err := transport.ParseAddr(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("listen: %w", err))
	}
	return errors.Join(errs...)
}

// PortHost applies the TypeScript pod's PORT and HOST variables when
// nothing else set the listen address.
func PortHost(cfg *Config, getenv func(string) string) {
	if cfg.Listen != DefaultListen {
		return
	}
	if port := getenv("PORT"); port != "" {
		host := getenv("HOST")
		if host == "" || host == "0.0.0.0" {
			host = "*"
		}
		cfg.Listen = "tcp://" + net.JoinHostPort(host, port)
	}
}

// Connections is max_connections, or the limit derived from the file
// descriptor limit when it is 0.
func (c *Config) Connections() int {
	if c.MaxConnections > 0 {
		return c.MaxConnections
	}
	return transport.DefaultMaxConnections()
}
