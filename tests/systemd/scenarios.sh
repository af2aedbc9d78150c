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

step() { echo "== $*"; }

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
