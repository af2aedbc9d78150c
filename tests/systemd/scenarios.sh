# shellcheck shell=bash
# Scenarios of the real-systemd tier. Each scenario_NAME runs in a subshell of
# its own under `set -euo pipefail` (tests/systemd/run), boots the nodes it
# needs, and ends by returning (PASS), `skip REASON` (SKIP) or failing. The
# runner tears the lab down after each scenario, whatever happened.

# --- helpers --------------------------------------------------------------

skip() {
  printf '%s' "$*" >"$HN_WORK/skip"
  exit 77
}

# note TEXT: a line printed under the scenario's result (measurements).
note() {
  printf '%s\n' "$*" >>"$HN_WORK/notes"
  echo "note: $*"
}

fail() {
  echo "FAIL: $*"
  exit 1
}

step() { echo "== [$(date +%T.%N | cut -c1-12)] $*"; }

# need_bin NAME: the daemon must have been built; absent means not written yet.
need_bin() {
  case " $HN_BUILD_FAILED " in
  *" $1 "*) fail "$1 does not build (see the build log above)" ;;
  esac
  [ -x "$HN_BIN/$1" ] || skip "$1 is not in the tree yet (no go/cmd/$1)"
}

need_unit() {
  [ -f "$HN_UNITS/$1" ] || skip "packaging/systemd/$1 is not in the tree yet"
}

# prop NODE UNIT PROPERTY: one property of a unit, as systemctl shows it.
prop() { hn_x "$1" systemctl show "$2" -p "$3" --value; }

# unit_is NODE UNIT STATE: the unit's ActiveState is STATE.
unit_is() { [ "$(prop "$1" "$2" ActiveState)" = "$3" ]; }

machine_gone() { ! hn_x "$1" machinectl show "$2" >/dev/null 2>&1; }

expect_eq() {
  local desc="$1" want="$2" got="$3"
  [ "$got" = "$want" ] || fail "$desc: want '$want', got '$got'"
  echo "ok: $desc = $got"
}

# tcp_open NODE HOST PORT: a TCP connection from inside NODE succeeds.
tcp_open() {
  # shellcheck disable=SC2016 # expanded by the node's bash
  hn_x "$1" timeout 5 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$2" "$3"
}

# unit_failed_with NODE UNIT RESULT [SINCE]: the journal says the unit failed
# with RESULT (systemd resets Result= when it restarts the unit, so the
# journal is the durable witness).
unit_failed_with() {
  hn_x "$1" journalctl --no-pager -q -o cat -u "$2" ${4:+--since "$4"} |
    grep -q "Failed with result '$3'"
}

# start_ready NODE UNIT HOST PORT: `systemctl start` returns only after
# READY=1, and READY=1 is sent only once the listener is bound, so the port
# must accept at once, without waiting.
start_ready() {
  local node="$1" unit="$2" host="$3" port="$4"
  hn_x "$node" systemctl start "$unit" || {
    hn_x "$node" systemctl status --no-pager -l "$unit" || true
    fail "systemctl start $unit failed"
  }
  tcp_open "$node" "$host" "$port" || fail "$unit is started (READY=1) but $host:$port does not accept"
  expect_eq "$unit ActiveState" active "$(prop "$node" "$unit" ActiveState)"
  local status
  status=$(prop "$node" "$unit" StatusText)
  [ -n "$status" ] || fail "$unit has an empty StatusText"
  echo "ok: $unit StatusText: $status"
}

# install_suite NODE: the built daemons and the units from packaging/systemd.
install_suite() { hn_install_suite "$1" "$HN_BIN" "$HN_UNITS"; }

# dump_journals: what the nodes logged, for a failed scenario's log.
dump_journals() {
  local n
  for n in $(hn_nodes); do
    hn_node_leader "$n" >/dev/null 2>&1 || continue
    echo "---- journal of node $n (huly units, last 60 lines)"
    hn_x "$n" journalctl --no-pager -q -n 60 -u 'huly*' -u 'hn-*' 2>&1 || true
    hn_x "$n" systemctl --failed --no-pager --plain --no-legend 2>&1 || true
  done
}

# --- plumbing: systemd itself, no daemon of ours --------------------------

# Proves what every other scenario relies on: a node boots, a Type=notify
# service becomes active only after READY=1, STATUS= reaches systemd, and a
# service that stops sending WATCHDOG=1 is killed and restarted.
scenario_plumbing() {
  hn_node_up plumb --bind-ro "$HN_ROOTFS:/var/lib/machines/hn-base"
  hn_write plumb /etc/systemd/system/hn-notify.service <<'EOF'
[Unit]
Description=Type=notify probe built from systemd-notify

[Service]
Type=notify
NotifyAccess=all
WatchdogSec=2s
Restart=on-failure
RestartSec=200ms
# The marker is written just before READY=1: if start returned before
# READY, the marker could be missing.
ExecStartPre=/bin/rm -f /run/hn-notify.ready
ExecStart=/bin/sh -c 'sleep 1; touch /run/hn-notify.ready; systemd-notify --ready --status="probe ready"; while :; do systemd-notify WATCHDOG=1; sleep 0.5; done'
EOF
  hn_x plumb systemctl daemon-reload
  step "start returns after READY=1"
  hn_x plumb systemctl start hn-notify.service
  hn_x plumb test -e /run/hn-notify.ready || fail "systemctl start returned before READY=1"
  expect_eq "ActiveState" active "$(prop plumb hn-notify.service ActiveState)"
  expect_eq "StatusText" "probe ready" "$(prop plumb hn-notify.service StatusText)"
  expect_eq "WatchdogUSec" 2s "$(prop plumb hn-notify.service WatchdogUSec)"

  step "a stopped process is killed by the watchdog and restarted"
  local pid since
  pid=$(prop plumb hn-notify.service MainPID)
  since=$(hn_x plumb date '+%Y-%m-%d %H:%M:%S')
  hn_x plumb kill -STOP "$pid"
  hn_wait 15 "Result=watchdog in the journal" unit_failed_with plumb hn-notify.service watchdog "$since" ||
    fail "no watchdog failure within 15s"
  hn_wait 15 "hn-notify to be active again" \
    unit_is plumb hn-notify.service active || fail "not restarted"
  local newpid restarts
  newpid=$(prop plumb hn-notify.service MainPID)
  restarts=$(prop plumb hn-notify.service NRestarts)
  [ "$newpid" != "$pid" ] || fail "MainPID unchanged after the watchdog"
  [ "$restarts" -ge 1 ] || fail "NRestarts=$restarts"
  echo "ok: MainPID $pid -> $newpid, NRestarts=$restarts"

  step "nested machine through systemd-run inside the node"
  # The agent's nspawn runtime depends on this: a machine started by
  # systemd inside a node (nspawn run from an nsenter shell fails) and
  # registered with the node's machined.
  hn_x plumb systemd-run --quiet --unit=hn-nested --property=Type=notify \
    --property=TimeoutStartSec=30 \
    systemd-nspawn --quiet --directory=/var/lib/machines/hn-base --volatile=overlay \
    --machine=nested --boot --console=passive --notify-ready=yes ||
    fail "nested machine did not boot"
  expect_eq "nested machine state" running "$(hn_x plumb machinectl show nested -p State --value)"
  hn_x plumb systemctl stop hn-nested.service
  hn_wait 10 "nested machine gone" machine_gone plumb nested || fail "nested machine still registered"
}

# --- f: the bridge, two tiers ---------------------------------------------

# bridge_config NODE NAME LISTEN TARGET: /etc/huly-net/bridge/NAME.json,
# read by huly-bridge@NAME.service.
bridge_config() {
  hn_write "$1" "/etc/huly-net/bridge/$2.json" <<JSON
{"forwards": {"$2": {"listen": "$3", "target": "$4", "dial_timeout": "2s", "dial_retries": 5}},
 "drain_timeout": "2s", "log_level": "debug"}
JSON
}

# echo_service NODE PORT: a TCP echo bound to 127.0.0.1 only, so nothing
# outside the node reaches it without the bridge.
echo_service() {
  hn_write "$1" /etc/systemd/system/hn-echo.service <<EOF2
[Unit]
Description=TCP echo on 127.0.0.1:$2 (bridge target)
[Service]
ExecStart=/usr/bin/socat TCP-LISTEN:$2,bind=127.0.0.1,reuseaddr,fork EXEC:/bin/cat
EOF2
  hn_x "$1" systemctl daemon-reload
  hn_x "$1" systemctl start hn-echo.service
  hn_wait 10 "echo service on $1" tcp_open "$1" 127.0.0.1 "$2" || fail "echo service did not listen"
}

# echo_roundtrip NODE PORT TEXT: TEXT sent through 127.0.0.1:PORT comes back.
echo_roundtrip() {
  local got
  # shellcheck disable=SC2016 # expanded by the node's bash
  got=$(hn_x "$1" timeout 20 bash -c 'printf "%s\n" "$0" | socat -t 10 - "TCP:127.0.0.1:$1"' "$3" "$2") || return 1
  [ "$got" = "$3" ]
}

scenario_f_bridge() {
  need_bin huly-bridge
  need_unit huly-bridge@.service
  # fhost is the host side; fpriv has a private network: its only link is
  # the point-to-point one to fhost, and its service binds 127.0.0.1.
  hn_node_up fhost --no-lab
  hn_node_up fpriv --no-lab
  local priv
  priv=$(hn_link fhost fpriv)
  hn_route_ok fhost "$priv" || fail "fhost has no direct route to $priv"
  install_suite fhost
  install_suite fpriv

  step "tier 2 inside fpriv: 0.0.0.0:9100 -> 127.0.0.1:9000"
  echo_service fpriv 9000
  if tcp_open fhost "$priv" 9000; then
    fail "the service is reachable from fhost without the bridge: the test proves nothing"
  fi
  bridge_config fpriv relay tcp:0.0.0.0:9100 tcp:127.0.0.1:9000
  start_ready fpriv huly-bridge@relay.service 127.0.0.1 9100

  step "tier 1 on fhost: 127.0.0.1:8080 -> $priv:9100"
  bridge_config fhost app tcp:127.0.0.1:8080 "tcp:$priv:9100"
  start_ready fhost huly-bridge@app.service 127.0.0.1 8080

  step "a request crosses both tiers"
  echo_roundtrip fhost 8080 "hello through two tiers" || fail "no echo through both tiers"

  step "4 MiB each way, byte for byte"
  local sums
  # shellcheck disable=SC2016 # expanded by the node's bash
  sums=$(hn_x fhost timeout 60 bash -c '
		head -c 4194304 /dev/urandom >/tmp/in
		socat -t 20 - TCP:127.0.0.1:8080 </tmp/in >/tmp/out
		sha256sum </tmp/in; sha256sum </tmp/out; stat -c %s /tmp/out') || fail "bulk transfer failed"
  echo "$sums"
  [ "$(echo "$sums" | sed -n 1p)" = "$(echo "$sums" | sed -n 2p)" ] || fail "bytes differ after two tiers"

  local pid_app pid_relay
  pid_app=$(prop fhost huly-bridge@app.service MainPID)
  pid_relay=$(prop fpriv huly-bridge@relay.service MainPID)

  step "the target restarts: the bridges recover on their own"
  hn_x fpriv systemctl restart hn-echo.service
  hn_wait 10 "echo after the target's restart" echo_roundtrip fhost 8080 "after restart" ||
    fail "no echo after the target restarted"

  step "the target is down, a client connects, then the target comes back"
  hn_x fpriv systemctl stop hn-echo.service
  # The client's connection is accepted by both tiers; tier 2 keeps
  # dialling with backoff until the target is back.
  hn_x fhost systemd-run --quiet --unit=hn-client --property=Type=exec \
    --property=StandardOutput=file:/run/hn-client.out \
    /bin/bash -c 'printf "while down\n" | socat -t 15 - TCP:127.0.0.1:8080'
  hn_wait 10 "relay to report its target unreachable" relay_reports_unreachable ||
    note "huly-bridge@relay StatusText while its target was down: $(prop fpriv huly-bridge@relay.service StatusText)"
  hn_x fpriv systemctl start hn-echo.service
  hn_wait 20 "the held client to get its echo" \
    hn_x fhost grep -qx "while down" /run/hn-client.out ||
    fail "a connection made while the target was down was not served once it came back"

  expect_eq "huly-bridge@app MainPID (not restarted)" "$pid_app" "$(prop fhost huly-bridge@app.service MainPID)"
  expect_eq "huly-bridge@relay MainPID (not restarted)" "$pid_relay" "$(prop fpriv huly-bridge@relay.service MainPID)"
  expect_eq "huly-bridge@relay NRestarts" 0 "$(prop fpriv huly-bridge@relay.service NRestarts)"
  echo "relay StatusText: $(prop fpriv huly-bridge@relay.service StatusText)"

  if [ -f "$HN_UNITS/huly-bridge@.socket" ]; then
    step "socket activation: huly-bridge@act.socket hands 127.0.0.1:8081 to the forward 'act'"
    bridge_config fhost act tcp:127.0.0.1:8081 "tcp:$priv:9100"
    hn_write fhost /etc/systemd/system/huly-bridge@act.socket.d/listen.conf <<'CONF'
[Socket]
ListenStream=
ListenStream=127.0.0.1:8081
CONF
    hn_x fhost systemctl daemon-reload
    hn_x fhost systemctl start huly-bridge@act.socket
    expect_eq "huly-bridge@act.service before any client" inactive "$(prop fhost huly-bridge@act.service ActiveState)"
    echo_roundtrip fhost 8081 "socket activated" || fail "no echo through the socket-activated forward"
    expect_eq "huly-bridge@act.service after a client" active "$(prop fhost huly-bridge@act.service ActiveState)"
    note "huly-bridge@act.socket: the first client started the forward and was served"
  fi
}

relay_reports_unreachable() {
  prop fpriv huly-bridge@relay.service StatusText | grep -qi 'unreachable'
}

# --- b: watchdog ----------------------------------------------------------

# watchdog_check NODE UNIT: the daemon keeps its watchdog fed while it runs
# and is killed (Result=watchdog) and restarted once it stops answering.
# WatchdogSec is lowered by a drop-in, as an operator would, so the scenario
# takes seconds, not the unit's 30 s; the daemon must follow WATCHDOG_USEC.
watchdog_check() {
  local node="$1" unit="$2" wd=3 pid since restarts
  hn_write "$node" "/etc/systemd/system/$unit.d/hn-watchdog.conf" <<CONF
[Service]
WatchdogSec=${wd}s
RestartSec=200ms
CONF
  hn_x "$node" systemctl daemon-reload
  hn_x "$node" systemctl restart "$unit"
  expect_eq "$unit WatchdogUSec" "${wd}s" "$(prop "$node" "$unit" WatchdogUSec)"
  pid=$(prop "$node" "$unit" MainPID)

  step "$unit feeds its watchdog: still the same process after 2 x WatchdogSec"
  # This wait is the point of the check (a daemon that never pings is
  # killed within WatchdogSec), not synchronisation.
  sleep $((2 * wd))
  expect_eq "$unit MainPID after $((2 * wd))s" "$pid" "$(prop "$node" "$unit" MainPID)"
  expect_eq "$unit NRestarts" 0 "$(prop "$node" "$unit" NRestarts)"

  step "$unit stops answering (SIGSTOP)"
  since=$(hn_x "$node" date '+%Y-%m-%d %H:%M:%S')
  hn_x "$node" kill -STOP "$pid"
  hn_wait $((wd * 5)) "Result=watchdog for $unit" unit_failed_with "$node" "$unit" watchdog "$since" ||
    fail "$unit was not killed by the watchdog"
  hn_wait 15 "$unit active again" unit_is "$node" "$unit" active || fail "$unit was not restarted"
  restarts=$(prop "$node" "$unit" NRestarts)
  [ "$restarts" -ge 1 ] || fail "$unit NRestarts=$restarts"
  [ "$(prop "$node" "$unit" MainPID)" != "$pid" ] || fail "$unit MainPID unchanged"
  echo "ok: $unit killed by the watchdog and restarted (NRestarts=$restarts)"
}

scenario_b_watchdog() {
  need_bin huly-bridge
  need_unit huly-bridge@.service
  hn_node_up wd
  install_suite wd
  bridge_config wd wd tcp:127.0.0.1:8080 tcp:127.0.0.1:9000
  start_ready wd huly-bridge@wd.service 127.0.0.1 8080
  watchdog_check wd huly-bridge@wd.service
  # cgroup v1 hosts cap the nodes' open-file limit below what the units ask;
  # say what the daemon really got rather than what the unit says.
  local want got
  want=$(prop wd huly-bridge@wd.service LimitNOFILE)
  # shellcheck disable=SC2016 # awk's own $4
  got=$(hn_x wd awk '/^Max open files/ { print $4 }' "/proc/$(prop wd huly-bridge@wd.service MainPID)/limits")
  note "LimitNOFILE: unit asks $want, huly-bridge runs with $got"
  [ "$got" -ge 1024 ] || fail "huly-bridge may open only $got files"
  local tested="huly-bridge"
  if [ -x "$HN_BIN/huly-network" ] && [ -f "$HN_UNITS/huly-network.service" ]; then
    network_config wd
    start_ready wd huly-network.service 127.0.0.1 3737
    watchdog_check wd huly-network.service
    tested="$tested, huly-network"
    if [ -x "$HN_BIN/huly-agent" ] && [ -f "$HN_UNITS/huly-agent.service" ]; then
      agent_config wd 127.0.0.1
      hn_x wd systemctl start huly-agent.service || fail "huly-agent did not start"
      watchdog_check wd huly-agent.service
      tested="$tested, huly-agent"
    fi
  fi
  note "watchdog proven for: $tested"
}

# --- the network, agents and hulyctl --------------------------------------

# network_config NODE: /etc/huly-net/network.json for huly-network.service.
network_config() {
  hn_write "$1" /etc/huly-net/network.json <<'JSON'
{"listen": "tcp://*:3737", "alive_timeout": "3s", "ping_interval": "1s", "unused_timeout": "5s", "log_level": "debug"}
JSON
}

# agent_config NODE NETWORK_IP [KINDS_JSON]: /etc/huly-net/agent.json.
agent_config() {
  local kinds="${3-}"
  [ -n "$kinds" ] || kinds='{"echo": {"runtime": "builtin", "builtin": "echo"}}'
  hn_write "$1" /etc/huly-net/agent.json <<JSON
{"network": "$2:3737", "listen": "0.0.0.0:3738", "advertise_host": "$(hn_node_ip "$1")",
 "labels": ["node=$1"], "log_level": "debug", "kinds": $kinds}
JSON
}

# ctl NODE ARGS...: hulyctl inside NODE against the scenario's network.
ctl() {
  local node="$1"
  shift
  hn_x "$node" hulyctl --network "$NET_IP:3737" --timeout 10s "$@"
}

# agent_count NODE: how many agents the network knows, seen from NODE.
agent_count() { ctl "$1" --json agents | jq 'length'; }

agents_are() { [ "$(agent_count "$1")" = "$2" ]; }

# start_agent NODE CLIENT N: READY=1 comes after the first registration, so
# once `systemctl start` returns the network lists N agents, with no wait.
start_agent() {
  hn_x "$1" systemctl start huly-agent.service || {
    hn_x "$1" systemctl status --no-pager -l huly-agent.service || true
    fail "systemctl start huly-agent on $1 failed"
  }
  local n
  n=$(agent_count "$2") || fail "hulyctl agents failed"
  expect_eq "agents registered right after huly-agent on $1 is started" "$3" "$n"
  echo "ok: huly-agent on $1 StatusText: $(prop "$1" huly-agent.service StatusText)"
}

# hold NODE UUID [KIND]: a reference kept by `hulyctl get --hold`, run as a
# unit in NODE so that it outlives this call and is stopped with the node.
hold() {
  hn_x "$1" systemd-run --quiet --unit="hn-hold-$2" --property=Type=exec \
    hulyctl --network "$NET_IP:3737" --timeout 10s get "${3:-echo}" --uuid "$2" --hold
  hn_wait 15 "container $2 to be held" container_listed "$1" "$2" ||
    fail "container $2 never appeared"
}

container_listed() { ctl "$1" --json containers | jq -e --arg u "$2" 'any(.[]; tostring | contains($u))' >/dev/null; }

# request_echo NODE UUID TEXT [--direct]: a request to an echo container
# returns what it was sent.
request_echo() {
  local out
  out=$(ctl "$1" --json request ${4:+"$4"} "$2" echo "{\"text\": \"$3\"}") || return 1
  case "$out" in *"$3"*) return 0 ;; esac
  echo "unexpected answer: $out"
  return 1
}

need_cluster_bins() {
  need_bin huly-network
  need_bin huly-agent
  need_bin hulyctl
  need_unit huly-network.service
  need_unit huly-agent.service
}

# AGENT_MODE is "huly-agent" (the daemon, as its unit) or "serve-echo"
# (hulyctl serve-echo as a transient unit: the stand-in a scenario about
# the network may use while huly-agent is not in the tree).
AGENT_MODE=huly-agent

# need_network_bins: huly-network and hulyctl, with agents from huly-agent
# or, failing that, from hulyctl serve-echo.
need_network_bins() {
  need_bin huly-network
  need_bin hulyctl
  need_unit huly-network.service
  if [ -x "$HN_BIN/huly-agent" ] && [ -f "$HN_UNITS/huly-agent.service" ]; then
    AGENT_MODE=huly-agent
  else
    case " $HN_BUILD_FAILED " in *" huly-agent "*) fail "huly-agent does not build" ;; esac
    AGENT_MODE=serve-echo
    note "agents: hulyctl serve-echo, not huly-agent (not in the tree yet)"
  fi
}

# start_echo_agent NODE CLIENT N: hulyctl serve-echo as a unit; it has no
# READY, so its registration is awaited (bounded).
start_echo_agent() {
  hn_x "$1" systemd-run --quiet --unit=hn-echo-agent --property=Type=exec \
    --property=Restart=on-failure \
    hulyctl --network "$NET_IP:3737" serve-echo --endpoint "$(hn_node_ip "$1"):3738"
  hn_wait 15 "$3 agents registered" agents_are "$2" "$3" || fail "serve-echo on $1 did not register"
}

# cluster NETNODE AGENTNODE... CLIENTNODE: boot and start the network and the
# agents; sets NET_IP.
cluster() {
  local net="$1" client="${!#}" n
  local agents=("${@:2:$#-2}")
  for n in "$@"; do
    hn_node_up "$n"
    install_suite "$n"
  done
  NET_IP=$(hn_node_ip "$net")
  for n in "${agents[@]}" "$client"; do
    hn_route_ok "$n" "$NET_IP" || fail "$n has no lab route to $NET_IP"
  done
  network_config "$net"
  start_ready "$net" huly-network.service 127.0.0.1 3737
  local i=0
  for n in "${agents[@]}"; do
    i=$((i + 1))
    if [ "$AGENT_MODE" = huly-agent ]; then
      agent_config "$n" "$NET_IP"
      start_agent "$n" "$client" "$i"
    else
      start_echo_agent "$n" "$client" "$i"
    fi
  done
}

scenario_a_cluster() {
  need_cluster_bins
  cluster net ag1 ag2 cli

  step "the network's STATUS follows the agents"
  hn_wait 5 "network StatusText to count 2 agents" network_status_has net '2 agents' ||
    fail "StatusText: $(prop net huly-network.service StatusText)"
  note "huly-network StatusText: $(prop net huly-network.service StatusText)"

  step "containers got from the client node live on the agent nodes"
  hold cli sys-a-1
  hold cli sys-a-2
  local e1 e2
  e1=$(ctl cli --json get echo --uuid sys-a-1 | jq -r .endpoint)
  e2=$(ctl cli --json get echo --uuid sys-a-2 | jq -r .endpoint)
  echo "endpoints: $e1 $e2"
  local a1 a2
  a1=$(hn_node_ip ag1)
  a2=$(hn_node_ip ag2)
  for e in "$e1" "$e2"; do
    case "$e" in *"$a1"* | *"$a2"*) ;; *) fail "endpoint $e is on neither agent node ($a1, $a2)" ;; esac
  done
  case "$e1 $e2" in
  *"$a1"*"$a2"* | *"$a2"*"$a1"*) note "round-robin: one container on each agent node" ;;
  *) note "both containers on one agent node (no round-robin across nodes)" ;;
  esac

  step "requests across nodes: routed and direct"
  request_echo cli sys-a-1 routed-1 || fail "routed request to sys-a-1"
  request_echo cli sys-a-2 routed-2 || fail "routed request to sys-a-2"
  request_echo cli sys-a-1 direct-1 --direct || fail "direct request to sys-a-1"
  ctl cli status

  step "an agent stops by itself while the network does not answer"
  # systemd would SIGKILL it after TimeoutStopSec; it must exit first.
  hn_x net systemctl kill -s STOP huly-network.service
  local t0 took
  t0=$(hn_now)
  hn_x ag2 systemctl stop huly-agent.service
  took=$(hn_elapsed "$t0")
  hn_x net systemctl kill -s CONT huly-network.service
  expect_eq "huly-agent stop Result" success "$(prop ag2 huly-agent.service Result)"
  note "huly-agent stopped in ${took}s while the network was frozen (TimeoutStopSec $(prop ag2 huly-agent.service TimeoutStopUSec))"
}

network_status_has() { prop "$1" huly-network.service StatusText | grep -q "$2"; }

scenario_c_kill_network() {
  need_network_bins
  cluster net ag1 cli
  hold cli sys-c-1
  request_echo cli sys-c-1 before || fail "request before the kill"

  step "a load of requests runs"
  local load_kind
  if ctl cli bench --help >/dev/null 2>&1; then
    load_kind=bench
    hn_x cli systemd-run --quiet --unit=hn-load --property=Type=exec \
      --property=StandardOutput=file:/run/hn-load.json --property=StandardError=file:/run/hn-load.err \
      hulyctl --network "$NET_IP:3737" --timeout 10s --json bench \
      --containers 10 --parallel 8 --duration 12s
  else
    load_kind=loop
    # hulyctl without bench: one routed request after the other.
    # shellcheck disable=SC2016 # expanded by the node's bash
    hn_x cli systemd-run --quiet --unit=hn-load --property=Type=exec \
      --property=StandardOutput=file:/run/hn-load.json \
      /bin/bash -c 'ok=0 bad=0; end=$((SECONDS + 12)); while [ $SECONDS -lt $end ]; do
				if hulyctl --network "$0:3737" --timeout 10s --json request sys-c-1 echo "{\"n\": 1}" >/dev/null 2>&1; then
					ok=$((ok + 1)); else bad=$((bad + 1)); fi; done
				printf "{\"requests\": %d, \"errors\": %d}\n" $((ok + bad)) "$bad"' "$NET_IP"
  fi
  # The load runs for 12 s; the kill lands in its middle.
  sleep 3
  unit_is cli hn-load.service active || fail "the load ended before the kill: $(hn_x cli cat /run/hn-load.err 2>/dev/null)"

  step "kill -9 huly-network"
  local pid t0
  pid=$(prop net huly-network.service MainPID)
  t0=$(hn_now)
  hn_x net kill -KILL "$pid"
  hn_wait 5 "requests to succeed again" request_echo cli sys-c-1 after ||
    fail "no successful request within 5 s of the kill"
  local recovered
  recovered=$(hn_elapsed "$t0")
  hn_wait $((5 - ${recovered%.*})) "ag1 registered again" agents_are cli 1 || fail "the agent did not re-register within 5 s"
  [ "$(prop net huly-network.service NRestarts)" -ge 1 ] || fail "huly-network was not restarted by systemd"
  [ "$(prop net huly-network.service MainPID)" != "$pid" ] || fail "huly-network MainPID unchanged"

  step "the load finishes"
  hn_wait 40 "the load to finish" unit_done cli hn-load.service || fail "the load never finished"
  local out requests errors
  out=$(hn_x cli cat /run/hn-load.json)
  echo "load ($load_kind): $out"
  requests=$(echo "$out" | jq -r '.requests')
  errors=$(echo "$out" | jq -r '.errors')
  note "requests succeed again ${recovered}s after kill -9; load ($load_kind): $requests requests, $errors failed"
  [ "$requests" -gt 0 ] || fail "the load made no requests"
}

# unit_done NODE UNIT: a oneshot-like unit has run to its end.
unit_done() {
  case "$(prop "$1" "$2" ActiveState)" in inactive | failed) return 0 ;; esac
  return 1
}

scenario_g_socket_activation() {
  need_bin huly-network
  need_unit huly-network.service
  need_unit huly-network.socket
  hn_node_up net
  hn_node_up cli
  install_suite net
  install_suite cli
  NET_IP=$(hn_node_ip net)
  hn_route_ok cli "$NET_IP" || fail "cli has no lab route to $NET_IP"
  network_config net

  step "PID 1 listens; the first client starts the server"
  hn_x net systemctl start huly-network.socket
  expect_eq "huly-network.service before any client" inactive "$(prop net huly-network.service ActiveState)"
  tcp_open cli "$NET_IP" 3737 || fail "socket unit does not accept"
  hn_wait 10 "huly-network.service activated" unit_is net huly-network.service active ||
    fail "the socket did not start the service"
  expect_eq "huly-network.service TriggeredBy" huly-network.socket "$(prop net huly-network.service TriggeredBy)"

  step "clients connect while the server restarts three times"
  # shellcheck disable=SC2016 # expanded by the node's bash
  hn_x cli systemd-run --quiet --unit=hn-connect --property=Type=exec \
    --property=StandardOutput=file:/run/hn-connect.out \
    /bin/bash -c 'ok=0 refused=0; while [ ! -e /run/hn-connect.stop ]; do
			if exec 3<>"/dev/tcp/$0/3737"; then ok=$((ok + 1)); exec 3>&-; else refused=$((refused + 1)); fi
			done; echo "$ok $refused"' "$NET_IP"
  local i pid
  for i in 1 2 3; do
    pid=$(prop net huly-network.service MainPID)
    hn_x net systemctl restart huly-network.service
    [ "$(prop net huly-network.service MainPID)" != "$pid" ] || fail "restart $i: same MainPID"
  done
  hn_x cli touch /run/hn-connect.stop
  hn_wait 10 "the connecting client to stop" unit_done cli hn-connect.service || fail "client loop did not stop"
  local ok refused
  read -r ok refused < <(hn_x cli cat /run/hn-connect.out)
  note "connections during 3 restarts: $ok accepted, $refused refused"
  [ "$ok" -gt 0 ] || fail "no connection was made"
  expect_eq "connections refused during restarts" 0 "$refused"
  if [ -x "$HN_BIN/hulyctl" ]; then
    ctl cli status || fail "hulyctl status after the restarts"
  fi
}

# --- d, e: the agent's systemd runtimes -----------------------------------

# bus_as NODE USER ARGS...: busctl on the system bus as USER (a static user;
# polkit and dbus-daemon see its real uid and name).
bus_as() {
  local node="$1" user="$2"
  shift 2
  hn_x "$node" setpriv --reuid="$user" --regid="$user" --init-groups busctl --system "$@"
}

# start_transient_as NODE USER UNIT: StartTransientUnit as USER, as the
# agent's transient runtime calls it.
start_transient_as() {
  bus_as "$1" "$2" call org.freedesktop.systemd1 /org/freedesktop/systemd1 \
    org.freedesktop.systemd1.Manager StartTransientUnit 'ssa(sv)a(sa(sv))' \
    "$3" fail 1 ExecStart 'a(sasb)' 1 /bin/sleep 2 /bin/sleep 60 false 0
}

# probe_agent_bus NODE: can the agent's unit, as shipped, reach systemd over
# D-Bus and start huly-c-* units? Answers go into notes; the scenario then
# runs the agent the way that works here.
probe_agent_bus() {
  local node="$1"
  hn_put "$node" "$HN_UNITS/50-huly-agent.rules" /etc/polkit-1/rules.d/50-huly-agent.rules
  hn_x "$node" systemctl try-restart polkit.service
  # The unit's DynamicUser=yes: dbus-daemon has to resolve the uid.
  if hn_x "$node" systemd-run --quiet --wait --pipe -p DynamicUser=yes -p User=huly-agent \
    busctl --system call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus GetId >/dev/null 2>&1; then
    note "D-Bus as DynamicUser huly-agent: connects"
  else
    note "D-Bus as DynamicUser huly-agent: refused (seen on Debian 12: PID 1 starts dbus-daemon with SYSTEMD_NSS_DYNAMIC_BYPASS=1, so it cannot resolve dynamic uids)"
  fi
  # The polkit rule, with a static user of the same name.
  hn_x "$node" useradd --system --no-create-home huly-agent 2>/dev/null || true
  if start_transient_as "$node" huly-agent huly-c-probe-1.service >/dev/null 2>&1; then
    note "polkit rule: huly-agent may StartTransientUnit huly-c-probe-1"
    hn_x "$node" systemctl stop huly-c-probe-1.service || true
  else
    note "polkit rule: StartTransientUnit huly-c-probe-1 denied for huly-agent ($(hn_x "$node" systemctl --version | head -n 1 | cut -d' ' -f1-2) names no unit to polkit for it)"
  fi
  if start_transient_as "$node" huly-agent other-probe.service >/dev/null 2>&1; then
    hn_x "$node" systemctl stop other-probe.service || true
    fail "polkit rule lets huly-agent start other-probe.service, which is not a huly-c-* unit"
  fi
  hn_x "$node" systemd-run --quiet --unit=huly-c-probe-2 /bin/sleep 60
  if bus_as "$node" huly-agent call org.freedesktop.systemd1 /org/freedesktop/systemd1 \
    org.freedesktop.systemd1.Manager StopUnit ss huly-c-probe-2.service replace >/dev/null 2>&1; then
    note "polkit rule: huly-agent may StopUnit huly-c-probe-2"
  else
    note "polkit rule: StopUnit huly-c-probe-2 denied for huly-agent"
  fi
  hn_x "$node" systemctl stop huly-c-probe-2.service 2>/dev/null || true
  hn_x "$node" userdel huly-agent
}

# agent_as_root NODE: the README's drop-in for hosts where the agent's
# dynamic user cannot manage units over D-Bus (see probe_agent_bus).
agent_as_root() {
  hn_write "$1" /etc/systemd/system/huly-agent.service.d/root.conf <<'CONF'
[Service]
DynamicUser=no
User=root
CONF
  hn_x "$1" systemctl daemon-reload
}

# c_units NODE: the huly-c-* units loaded in NODE, one "name state" a line.
c_units() {
  # shellcheck disable=SC2016 # awk's own fields
  hn_x "$1" systemctl list-units --all --plain --no-legend --no-pager 'huly-c-*' | awk '{ print $1, $3 }'
}

c_units_are() { [ "$(c_units "$1" | wc -l)" = "$2" ]; }

# container_info NODE UUID FIELD: a field of echo-container's "info" answer.
container_info() {
  ctl "$1" --json request "$2" info | jq -r ".$3"
}

scenario_d_transient() {
  need_unit huly-agent.service
  need_unit 50-huly-agent.rules
  hn_node_up dprobe
  step "what the shipped unit and polkit rule allow on this systemd"
  probe_agent_bus dprobe
  step "probe done: a fresh node for the runtime"
  hn_node_down dprobe
  need_cluster_bins
  need_bin echo-container

  for n in net ag cli; do
    hn_node_up "$n"
    install_suite "$n"
  done
  NET_IP=$(hn_node_ip net)
  network_config net
  start_ready net huly-network.service 127.0.0.1 3737
  agent_as_root ag
  note "huly-agent runs as root (the README's drop-in): the dynamic user cannot start transient units here"
  agent_config ag "$NET_IP" '{"tr": {"runtime": "transient", "command": "/usr/bin/echo-container",
    "unit_properties": {"MemoryMax": "256M"}, "unused_timeout": "3s"}}'
  start_agent ag cli 1

  step "a container becomes a huly-c-* unit, started over D-Bus"
  hold cli sys-d-1 tr
  local units unit pid
  units=$(c_units ag)
  echo "$units"
  c_units_are ag 1 || fail "want one huly-c-* unit, have: $units"
  unit=$(echo "$units" | awk '{ print $1 }')
  case "$unit" in huly-c-tr-*.service) ;; *) fail "unit name $unit is not huly-c-tr-*" ;; esac
  expect_eq "$unit ActiveState" active "$(prop ag "$unit" ActiveState)"
  expect_eq "$unit Type" notify "$(prop ag "$unit" Type)"
  expect_eq "$unit MemoryMax" 268435456 "$(prop ag "$unit" MemoryMax)"
  pid=$(container_info cli sys-d-1 pid) || fail "request to sys-d-1"
  expect_eq "the container's pid is the unit's MainPID" "$(prop ag "$unit" MainPID)" "$pid"

  step "restarting the agent adopts the unit"
  hn_x ag systemctl restart huly-agent.service
  expect_eq "$unit after the agent's restart" active "$(prop ag "$unit" ActiveState)"
  hn_wait 15 "sys-d-1 to answer after the agent's restart" container_info cli sys-d-1 pid ||
    fail "sys-d-1 does not answer after the agent restarted"
  expect_eq "sys-d-1's pid after the agent's restart (same process)" "$pid" "$(container_info cli sys-d-1 pid)"

  step "terminating the container removes its unit"
  # The only reference goes; the network terminates the container after
  # its unused timeout.
  hn_x cli systemctl stop hn-hold-sys-d-1.service
  hn_wait 30 "$unit to be gone" c_units_are ag 0 || fail "$unit is still there: $(c_units ag)"
  note "MemoryMax=256M set on $unit (cgroup v1 host: not enforced)"
}

# machine_tree NODE DIR: a minimal machine directory holding echo-container
# (static) as its only program: nspawn runs it as the machine's PID 1, and
# --ephemeral copies a few files instead of a whole OS tree.
machine_tree() {
  # shellcheck disable=SC2016 # expanded by the node's bash
  hn_x "$1" /bin/bash -c 'set -e
    mkdir -p "$0"/usr/bin "$0"/usr/lib "$0"/etc "$0"/proc "$0"/sys "$0"/dev "$0"/run "$0"/tmp "$0"/var
    cp /usr/lib/os-release "$0"/usr/lib/os-release
    cp /usr/bin/echo-container "$0"/usr/bin/echo-container
    : >"$0"/etc/machine-id' "$2"
}

scenario_e_nspawn() {
  need_cluster_bins
  need_bin echo-container
  for n in net ag cli; do
    hn_node_up "$n"
    install_suite "$n"
  done
  NET_IP=$(hn_node_ip net)
  network_config net
  start_ready net huly-network.service 127.0.0.1 3737
  agent_as_root ag
  machine_tree ag /var/lib/machines/hn-echo
  agent_config ag "$NET_IP" '{"web": {"runtime": "nspawn", "command": "/usr/bin/echo-container",
    "nspawn": {"directory": "/var/lib/machines/hn-echo", "private_network": true, "port": 8080}}}'
  start_agent ag cli 1

  step "each container is a machine of its own, with a private network"
  hold cli sys-e-1 web
  hold cli sys-e-2 web
  local machines m leader links
  machines=$(hn_x ag machinectl list --no-legend --no-pager | awk '{ print $1 }' | sort | tr '\n' ' ')
  echo "machines: $machines"
  case "$machines" in "huly-web-"*" huly-web-"*" ") ;; *) fail "want two huly-web-* machines, have: $machines" ;; esac
  for m in $machines; do
    leader=$(hn_x ag machinectl show "$m" -p Leader --value)
    links=$(hn_x ag nsenter -t "$leader" -n ip -o link show | awk -F': ' '{ print $2 }' | tr '\n' ' ')
    expect_eq "network links of machine $m" "lo " "$links"
  done
  expect_eq "sys-e-1's pid (PID 1 of its machine)" 1 "$(container_info cli sys-e-1 pid)"

  step "requests reach the machine through the bridge"
  local endpoint
  endpoint=$(ctl cli --json get web --uuid sys-e-1 | jq -r .endpoint)
  echo "endpoint: $endpoint"
  # The machine has only lo: its endpoint is the bridge's port on the
  # agent's node, not the program's own.
  expect_eq "endpoint host" "$(hn_node_ip ag)" "$(echo "$endpoint" | jq -r .host)"
  request_echo cli sys-e-1 "through the bridge" --direct || fail "direct request to the machine"
  request_echo cli sys-e-2 "routed to the machine" || fail "routed request to the machine"
  note "machines: $machines; sys-e-1 endpoint $(echo "$endpoint" | jq -c '{kind, host, port}')"

  step "terminating the container terminates the machine"
  hn_x cli systemctl stop hn-hold-sys-e-1.service hn-hold-sys-e-2.service
  hn_wait 30 "the machines to be gone" no_machines ag || fail "machine still there: $(hn_x ag machinectl list --no-legend)"
  c_units_are ag 0 || fail "units left: $(c_units ag)"
}

no_machines() { [ -z "$(hn_x "$1" machinectl list --no-legend --no-pager)" ]; }

# --- h: the dev containers on a systemd host ------------------------------

# `just dev-*` must work on any systemd host, NixOS included, with the
# machines registered with machined. A node is such a host: the dev tooling
# runs inside it (with the binaries built here and the cached rootfs bound in
# read-only, since nodes have no package mirror) and boots its machines
# through systemd-run, nested.
scenario_h_dev_machined() {
  need_bin huly-network
  need_unit huly-network.service
  hn_node_up devhost --bind-ro "$HN_CACHE:/var/cache/huly-net"
  local dir
  dir="$(hn_node_fs devhost)/opt/huly-net"
  mkdir -p "$dir/tests" "$dir/packaging"
  cp -r "$HN_TOOLS" "$dir/tests/systemd"
  cp -r "$HN_UNITS" "$dir/packaging/"
  cp -r "$HN_BIN" "$dir/bin"
  local dev=(env HN_CACHE=/var/cache/huly-net HN_DEV_BIN=/opt/huly-net/bin /opt/huly-net/tests/systemd/dev)

  step "dev up on a systemd host registers the machines"
  hn_x devhost "${dev[@]}" up dev-network dev-agent1 || fail "dev up failed"
  local machines
  machines=$(hn_x devhost machinectl list --no-legend --no-pager | awk '{print $1}' | sort | tr '\n' ' ')
  expect_eq "machinectl list" "dev-agent1 dev-network " "$machines"
  hn_x devhost journalctl -M dev-network -u huly-network.service --no-pager -q | grep -q 'Started huly-network' ||
    fail "journalctl -M dev-network shows no start of huly-network"

  step "dev cycle destroys, boots again and follows the logs until Ctrl-C"
  # As a unit of its own, so that Ctrl-C can be played by sending SIGINT to
  # every process of it, as a terminal does to its foreground group.
  hn_x devhost systemd-run --quiet --unit=hn-cycle --property=Type=exec \
    --property=StandardOutput=file:/run/hn-cycle.out --property=StandardError=file:/run/hn-cycle.err \
    "${dev[@]}" cycle dev-network
  hn_wait 60 "dev cycle to show huly-network starting" \
    hn_x devhost grep -q 'dev-network | .*Started huly-network' /run/hn-cycle.out || {
    hn_x devhost cat /run/hn-cycle.out /run/hn-cycle.err || true
    fail "dev cycle did not show huly-network starting"
  }
  hn_x devhost systemctl kill --kill-who=all -s INT hn-cycle.service
  hn_wait 15 "dev cycle to end on Ctrl-C" unit_done devhost hn-cycle.service || fail "dev cycle ignored Ctrl-C"
  hn_x devhost cat /run/hn-cycle.err /run/hn-cycle.out
  note "dev cycle excerpt: $(hn_x devhost grep -m1 'dev-network | .*huly-network\[' /run/hn-cycle.out | cut -c1-150)"

  step "dev destroy removes machines, namespaces and mounts"
  hn_x devhost "${dev[@]}" destroy || fail "dev destroy failed"
  expect_eq "machines left" "" "$(hn_x devhost machinectl list --no-legend --no-pager)"
  expect_eq "namespaces left" "" "$(hn_x devhost ip netns list)"
  # shellcheck disable=SC2016 # awk's own $2
  expect_eq "mounts left under /run/huly-net" "" \
    "$(hn_x devhost awk '$2 ~ "^/run/huly-net/" { print $2 }' /proc/mounts)"
}

# --- i-security: a secured network across nodes ----------------------------

# pubkey NODE PATH: the public key in a .pub file made by hulyctl keygen.
pubkey() { hn_x "$1" grep -v '^#' "$2" | head -n 1; }

# sctl NODE KEYFILE ARGS...: hulyctl with a CURVE key (secret key from a
# file, the network's public key from the environment).
sctl() {
  local node="$1" key="$2"
  shift 2
  hn_x "$node" env HULY_CURVE_SERVER_KEY="$NET_PUB" HULY_CURVE_SECRET_KEY_FILE="$key" \
    hulyctl --network "$NET_IP:3737" --timeout 10s "$@"
}

# refused NODE WANT ARGS...: hulyctl ARGS fails with WANT in its error.
refused() {
  local node="$1" want="$2" out
  shift 2
  if out=$(hn_x "$node" "$@" 2>&1); then
    fail "$* succeeded on a secured network: $out"
  fi
  case "$out" in *"$want"*) echo "ok: refused: $out" ;; *) fail "$*: want '$want' in: $out" ;; esac
}

scenario_i_security() {
  need_cluster_bins
  local n
  for n in net ag1 cli; do
    hn_node_up "$n"
    install_suite "$n"
  done
  NET_IP=$(hn_node_ip net)
  for n in ag1 cli; do
    hn_route_ok "$n" "$NET_IP" || fail "$n has no lab route to $NET_IP"
  done

  step "keys made on their own nodes; secret keys stay there"
  hn_x net hulyctl keygen --out /etc/huly-net/network >/dev/null
  hn_x net hulyctl keygen --out /etc/huly-net/ops >/dev/null
  hn_x ag1 hulyctl keygen --out /etc/huly-net/agent >/dev/null
  hn_x cli hulyctl keygen --out /etc/huly-net/cli >/dev/null
  hn_x cli hulyctl keygen --out /etc/huly-net/stranger >/dev/null
  NET_PUB=$(pubkey net /etc/huly-net/network.pub)
  local ops_pub agent_pub cli_pub
  ops_pub=$(pubkey net /etc/huly-net/ops.pub)
  agent_pub=$(pubkey ag1 /etc/huly-net/agent.pub)
  cli_pub=$(pubkey cli /etc/huly-net/cli.pub)
  expect_eq "secret key mode" 600 "$(hn_x net stat -c %a /etc/huly-net/network.key)"

  step "huly-network with its key as a credential (LoadCredential=)"
  hn_write net /etc/huly-net/authorized_keys <<KEYS
admin $ops_pub # ops
agent $agent_pub kinds=echo # ag1
client $cli_pub kinds=echo # cli
KEYS
  hn_write net /etc/huly-net/network.json <<'JSON'
{"listen": "tcp://*:3737", "alive_timeout": "3s", "ping_interval": "1s", "unused_timeout": "5s", "log_level": "debug",
 "curve_secret_key_file": "credential:curve.key", "authorized_keys": "/etc/huly-net/authorized_keys"}
JSON
  hn_write net /etc/systemd/system/huly-network.service.d/security.conf <<'UNIT'
[Service]
LoadCredential=curve.key:/etc/huly-net/network.key
ExecReload=/bin/kill -HUP $MAINPID
UNIT
  hn_x net systemctl daemon-reload
  start_ready net huly-network.service 127.0.0.1 3737
  hn_x net journalctl --no-pager -q -o cat -u huly-network.service | grep -q "security is on" ||
    fail "huly-network did not say security is on"

  step "a keyed agent on another node (its key a credential too)"
  hn_write ag1 /etc/huly-net/agent.json <<JSON
{"network": "$NET_IP:3737", "listen": "0.0.0.0:3738", "advertise_host": "$(hn_node_ip ag1)",
 "log_level": "debug", "curve_server_key": "$NET_PUB",
 "kinds": {"echo": {"runtime": "builtin", "builtin": "echo"}}}
JSON
  hn_write ag1 /etc/systemd/system/huly-agent.service.d/security.conf <<'UNIT'
[Service]
LoadCredential=curve.key:/etc/huly-net/agent.key
UNIT
  hn_x ag1 systemctl daemon-reload
  hn_x ag1 systemctl start huly-agent.service || {
    hn_x ag1 systemctl status --no-pager -l huly-agent.service || true
    fail "systemctl start huly-agent on ag1 failed"
  }
  expect_eq "agents seen by the admin key" 1 "$(sctl net /etc/huly-net/ops.key --json agents | jq length)"

  step "a keyed client on a third node: get and routed requests"
  # The reference is held by hulyctl run with its key as a credential.
  hn_x cli systemd-run --quiet --unit=hn-hold-sec-1 --property=Type=exec \
    --property=LoadCredential=curve.key:/etc/huly-net/cli.key --setenv=HULY_CURVE_SERVER_KEY="$NET_PUB" \
    hulyctl --network "$NET_IP:3737" --timeout 10s get echo --uuid sec-1 --hold
  local out
  for _ in $(seq 1 30); do
    out=$(sctl cli /etc/huly-net/cli.key --json request sec-1 echo '{"text": "over curve"}' 2>&1) && break
    sleep 0.5
  done
  case "$out" in *"over curve"*) echo "ok: routed request: $out" ;; *) fail "routed request over CURVE: $out" ;; esac
  # Direct: the agent's endpoint speaks CURVE with the agent's key and
  # admits the client's key because the network vouched for it.
  out=$(sctl cli /etc/huly-net/cli.key --json request --direct sec-1 echo '{"text": "direct curve"}' 2>&1) ||
    fail "direct request over CURVE: $out"
  case "$out" in *"direct curve"*) echo "ok: direct request: $out" ;; *) fail "direct request over CURVE: $out" ;; esac
  hn_x ag1 journalctl --no-pager -q -o cat -u huly-agent.service | grep -q "endpoint speaks CURVE" ||
    fail "huly-agent did not say its endpoint speaks CURVE"

  step "refused: a peer without a key, a key not listed"
  refused cli "network refused us" hulyctl --network "$NET_IP:3737" --timeout 5s agents
  refused cli "network refused our key" env HULY_CURVE_SERVER_KEY="$NET_PUB" \
    hulyctl --network "$NET_IP:3737" --timeout 5s --curve-secret-key-file /etc/huly-net/stranger.key agents
  local refusals
  refusals=$(hn_x net journalctl --no-pager -q -o cat -u huly-network.service SECURITY_EVENT=handshake_refused | wc -l)
  [ "$refusals" -ge 2 ] || fail "journal: $refusals handshake_refused entries, want 2 or more"
  note "journal: $refusals entries with SECURITY_EVENT=handshake_refused"

  step "systemctl reload: the client key removed, the agent stays"
  hn_write net /etc/huly-net/authorized_keys <<KEYS
admin $ops_pub # ops
agent $agent_pub kinds=echo # ag1
KEYS
  hn_x net systemctl reload huly-network.service
  # ExecReload= only sends SIGHUP: the reload follows shortly.
  for _ in $(seq 1 20); do
    sctl cli /etc/huly-net/cli.key agents >/dev/null 2>&1 || break
    sleep 0.5
  done
  refused cli "network refused our key" env HULY_CURVE_SERVER_KEY="$NET_PUB" \
    hulyctl --network "$NET_IP:3737" --timeout 5s --curve-secret-key-file /etc/huly-net/cli.key agents
  expect_eq "agents after the reload" 1 "$(sctl net /etc/huly-net/ops.key --json agents | jq length)"
  hn_x net journalctl --no-pager -q -o cat -u huly-network.service SECURITY_EVENT=session_closed | grep -q . ||
    fail "no session_closed entry in the journal"
  expect_eq "huly-network restarts" 0 "$(prop net huly-network.service NRestarts)"
}
