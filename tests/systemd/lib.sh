# shellcheck shell=bash
# Node tooling shared by the real-systemd test tier (tests/systemd/run) and the
# developer's dev containers (tests/systemd/dev, `just dev-*`).
#
# A "lab" is a set of nodes: Debian machines booted with systemd-nspawn, each
# with systemd as PID 1, its own network namespace and its own overlayfs over
# one read-only base rootfs. Nodes of a lab share a bridge that lives in a
# network namespace of its own (the lab's "switch"), so the lab's 10.x
# addresses exist only inside namespaces this file created and never in the
# root namespace.
#
# Where PID 1 is systemd and machined runs, nodes are started as transient
# units and registered with machined (machinectl, journalctl -M work); where it
# is not (containers, CI sandboxes), they run as plain background processes
# with --register=no --keep-unit.
#
# Callers set HN_LAB (a short word) before sourcing; everything the lab creates
# carries that name, so a lab can be cleaned up after a killed run without
# touching any other lab.

HN_LAB="${HN_LAB:-test}"
HN_STATE="${HN_STATE:-/run/huly-net/lab-$HN_LAB}"
HN_CACHE="${HN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/huly-net}"
# Three octets; node N of the lab gets .(10+N). Private point-to-point links
# use the next /24 up, four addresses per link.
HN_SUBNET="${HN_SUBNET:-10.231.0}"
HN_P2P_SUBNET="${HN_P2P_SUBNET:-10.231.1}"
HN_SWITCH_NS="hn-$HN_LAB-sw"
# auto: register with machined when PID 1 is systemd and machined is there.
HN_REGISTER="${HN_REGISTER:-auto}"
HN_BOOT_TIMEOUT="${HN_BOOT_TIMEOUT:-60}"
HN_STOP_TIMEOUT="${HN_STOP_TIMEOUT:-20}"
# Units stopped in every node before the lab powers off (hn_lab_down).
HN_STOP_FIRST="${HN_STOP_FIRST-huly-agent.service}"

# The base rootfs: bookworm minbase plus what the nodes run. systemd-container
# is there for nested machines (the agent's nspawn runtime) and machinectl,
# polkitd is what lets the agent's unprivileged user manage its own units,
# socat is the plain TCP service the bridge scenarios forward to, procps is
# for whoever debugs a node by hand.
HN_SUITE="bookworm"
HN_PACKAGES="systemd,systemd-sysv,dbus,iproute2,systemd-container,libnss-systemd,polkitd,socat,procps"
# Bump when the customisation below changes, so cached rootfs are rebuilt.
HN_ROOTFS_RECIPE=1

HN_PATH_IN_NODE="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

hn_msg() { printf '[%s] %s\n' "${HN_LAB}" "$*" >&2; }
hn_die() {
  hn_msg "error: $*"
  exit 1
}

# hn_now prints seconds since the epoch with microseconds, for durations.
hn_now() { printf '%s' "${EPOCHREALTIME/,/.}"; }

# hn_elapsed START prints the seconds since START with one decimal.
hn_elapsed() {
  awk -v a="$1" -v b="$(hn_now)" 'BEGIN { printf "%.1f", b - a }'
}

# hn_wait SECONDS DESCRIPTION COMMAND...: run COMMAND until it succeeds, at
# most SECONDS; on timeout say what was awaited and return 1.
hn_wait() {
  local limit="$1" desc="$2" deadline
  shift 2
  deadline=$(awk -v n="$(hn_now)" -v l="$limit" 'BEGIN { printf "%.3f", n + l }')
  while :; do
    if "$@" >/dev/null 2>&1; then
      return 0
    fi
    if awk -v n="$(hn_now)" -v d="$deadline" 'BEGIN { exit !(n > d) }'; then
      hn_msg "timed out after ${limit}s waiting for: $desc"
      return 1
    fi
    sleep 0.1
  done
}

# hn_capability_gap prints what this machine lacks to run nodes (empty when
# nothing is missing), so callers can skip with a precise reason.
hn_capability_gap() {
  if [ "$(id -u)" != 0 ]; then
    echo "not root (nodes need mounts, network namespaces and systemd-nspawn)"
    return
  fi
  if ! grep -qw overlay /proc/filesystems && ! modprobe overlay 2>/dev/null; then
    echo "no overlayfs in this kernel"
    return
  fi
  if ! command -v ip >/dev/null || ! ip netns list >/dev/null 2>&1; then
    echo "no network namespaces (ip netns)"
    return
  fi
  if ! command -v systemd-nspawn >/dev/null; then
    echo "no systemd-nspawn (Debian package systemd-container) and it could not be installed"
    return
  fi
  if [ ! -e "$(hn_rootfs_dir)/.complete" ] && ! command -v mmdebstrap >/dev/null; then
    echo "no cached node rootfs and no mmdebstrap to build one (it could not be installed)"
    return
  fi
}

# hn_install_deps installs the host tools through apt where they are missing.
# Failure is not fatal here: hn_capability_gap reports what is still missing.
hn_install_deps() {
  local missing=()
  command -v systemd-nspawn >/dev/null || missing+=(systemd-container)
  if [ ! -e "$(hn_rootfs_dir)/.complete" ]; then
    command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
  fi
  command -v ip >/dev/null || missing+=(iproute2)
  command -v nsenter >/dev/null || missing+=(util-linux)
  command -v flock >/dev/null || missing+=(util-linux)
  [ -e /usr/share/keyrings/debian-archive-keyring.gpg ] || missing+=(debian-archive-keyring)
  if [ "${#missing[@]}" -eq 0 ]; then
    return 0
  fi
  if ! command -v apt-get >/dev/null; then
    hn_msg "missing ${missing[*]} and no apt-get to install them"
    return 0
  fi
  hn_msg "installing ${missing[*]}"
  {
    DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  } >&2 || hn_msg "apt-get install ${missing[*]} failed"
}

hn_systemd_host() {
  [ -d /run/systemd/system ] && command -v systemctl >/dev/null
}

# hn_registering: whether nodes are started through systemd and registered
# with machined.
hn_registering() {
  case "$HN_REGISTER" in
  yes) return 0 ;;
  no) return 1 ;;
  esac
  hn_systemd_host || return 1
  systemctl cat systemd-machined.service >/dev/null 2>&1
}

# hn_rootfs sets HN_ROOTFS to the cached base rootfs, building it when absent.
# The cache key covers everything that goes into it, so a changed package list
# builds a new one; older ones no node uses are removed.
hn_rootfs_dir() {
  local key
  key=$(printf '%s|%s|%s|%s' "$HN_SUITE" "$HN_PACKAGES" "$HN_ROOTFS_RECIPE" "$(uname -m)" | sha256sum | cut -c1-16)
  printf '%s/rootfs-%s' "$HN_CACHE" "$key"
}

hn_rootfs() {
  local dir tmp lockfd old
  dir=$(hn_rootfs_dir)
  HN_ROOTFS="$dir"
  if [ -e "$dir/.complete" ]; then
    return 0
  fi
  mkdir -p "$HN_CACHE"
  exec {lockfd}>"$HN_CACHE/rootfs.lock"
  flock -w 900 "$lockfd" || hn_die "another rootfs build holds $HN_CACHE/rootfs.lock"
  if [ ! -e "$dir/.complete" ]; then
    hn_msg "building the base rootfs ($HN_SUITE minbase + $HN_PACKAGES) into $dir"
    tmp="$dir.tmp"
    rm -rf "$tmp"
    # A persistent journal, so journalctl -M can read a registered
    # machine's files. mmdebstrap leaves /etc/machine-id empty: every
    # node makes its own at boot.
    # shellcheck disable=SC2016 # $1 is expanded by mmdebstrap's hook shell
    mmdebstrap --variant=minbase --include="$HN_PACKAGES" \
      --customize-hook='mkdir -p "$1/var/log/journal" "$1/var/lib/machines" "$1/etc/huly-net"' \
      "$HN_SUITE" "$tmp" >&2 || {
      rm -rf "$tmp"
      hn_die "mmdebstrap failed (the node rootfs needs Debian's package mirror)"
    }
    touch "$tmp/.complete"
    mv "$tmp" "$dir"
  fi
  for old in "$HN_CACHE"/rootfs-*; do
    if [ ! -d "$old" ] || [ "$old" = "$dir" ]; then
      continue
    fi
    case "$old" in *.tmp) continue ;; esac
    if ! grep -qF "lowerdir=$old" /proc/mounts; then
      hn_msg "removing the outdated rootfs $old"
      rm -rf "$old"
    fi
  done
  exec {lockfd}>&-
}

# hn_lab_lock takes the lab's lock (one runner per lab at a time) for the life
# of the calling shell.
hn_lab_lock() {
  local timeout="${1:-600}"
  mkdir -p "$(dirname "$HN_STATE")"
  exec {HN_LOCK_FD}>"$HN_STATE.lock"
  flock -w "$timeout" "$HN_LOCK_FD" || hn_die "lab $HN_LAB is busy (another run holds $HN_STATE.lock)"
}

hn_lab_unlock() {
  if [ -n "${HN_LOCK_FD-}" ]; then
    exec {HN_LOCK_FD}>&-
    HN_LOCK_FD=""
  fi
}

# hn_lab_init creates the lab's switch (a bridge in a namespace of its own).
hn_lab_init() {
  mkdir -p "$HN_STATE/nodes"
  if [ ! -e "/run/netns/$HN_SWITCH_NS" ]; then
    ip netns add "$HN_SWITCH_NS"
  fi
  ip -n "$HN_SWITCH_NS" link set lo up
  if ! ip -n "$HN_SWITCH_NS" link show br0 >/dev/null 2>&1; then
    ip -n "$HN_SWITCH_NS" link add br0 type bridge
  fi
  ip -n "$HN_SWITCH_NS" link set br0 up
}

hn_node_dir() { printf '%s/nodes/%s' "$HN_STATE" "$1"; }
hn_node_ns() { printf 'hn-%s-%s' "$HN_LAB" "$1"; }
hn_node_unit() { printf 'hn-%s-%s.service' "$HN_LAB" "$1"; }
hn_node_ip() { cat "$(hn_node_dir "$1")/ip"; }
hn_node_exists() { [ -d "$(hn_node_dir "$1")" ]; }

# hn_nodes prints the names of the lab's nodes.
hn_nodes() {
  local d
  for d in "$HN_STATE"/nodes/*/; do
    [ -d "$d" ] && basename "$d"
  done
  return 0
}

# hn_pid_is PID COMM: whether PID is alive and runs COMM (PIDs get reused,
# so a stale pid file alone proves nothing).
hn_pid_is() {
  [ -n "$1" ] && [ -r "/proc/$1/comm" ] && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ]
}

hn_pid_gone() { ! hn_pid_is "$1" "$2"; }

# hn_node_leader NAME prints the PID of the node's init (its systemd).
hn_node_leader() {
  local dir pid child
  dir=$(hn_node_dir "$1")
  if [ -s "$dir/leader" ] && hn_pid_is "$(cat "$dir/leader")" systemd; then
    cat "$dir/leader"
    return 0
  fi
  if [ -e "$dir/registered" ]; then
    pid=$(machinectl show "$(cat "$dir/machine")" -p Leader --value 2>/dev/null) || return 1
  else
    pid=$(cat "$dir/pid" 2>/dev/null) || return 1
    hn_pid_is "$pid" systemd-nspawn || return 1
    # nspawn's direct child is the container's init once it has exec'd.
    local children
    children=$(cat "/proc/$pid/task/"*/children 2>/dev/null) || return 1
    pid=""
    for child in $children; do
      if hn_pid_is "$child" systemd; then
        pid="$child"
        break
      fi
    done
  fi
  [ -n "$pid" ] && hn_pid_is "$pid" systemd || return 1
  echo "$pid" >"$dir/leader"
  echo "$pid"
}

# hn_x NAME COMMAND...: run COMMAND inside the node, in all its namespaces,
# with a clean environment (nothing of the caller's leaks in).
hn_x() {
  local node="$1" leader
  shift
  leader=$(hn_node_leader "$node") || {
    hn_msg "node $node is not running"
    return 1
  }
  nsenter -t "$leader" -a -- /usr/bin/env -i PATH="$HN_PATH_IN_NODE" HOME=/root LANG=C.UTF-8 TERM="${TERM:-dumb}" "$@"
}

# hn_sh NAME SCRIPT [ARG...]: run a bash script inside the node.
hn_sh() {
  local node="$1" script="$2"
  shift 2
  hn_x "$node" /bin/bash -c "$script" bash "$@"
}

# hn_node_fs NAME: the node's root directory as seen from the host
# (procfs's view of its leader's root, which works for any mount inside).
hn_node_fs() {
  local leader
  leader=$(hn_node_leader "$1") || return 1
  printf '/proc/%s/root' "$leader"
}

# hn_put NAME SRC DST [MODE]: copy a host file into the node.
hn_put() {
  local node="$1" src="$2" dst="$3" mode="${4:-0644}" root
  root=$(hn_node_fs "$node") || return 1
  mkdir -p "$root$(dirname "$dst")"
  # Through a temporary name, so a running program is never overwritten
  # in place (ETXTBSY) and readers never see half a file.
  cp "$src" "$root$dst.hn-tmp"
  chmod "$mode" "$root$dst.hn-tmp"
  mv -f "$root$dst.hn-tmp" "$root$dst"
}

# hn_write NAME DST [MODE] < CONTENT: write stdin to a file in the node.
hn_write() {
  local node="$1" dst="$2" mode="${3:-0644}" tmp
  tmp=$(mktemp)
  cat >"$tmp"
  hn_put "$node" "$tmp" "$dst" "$mode"
  local rc=$?
  rm -f "$tmp"
  return "$rc"
}

hn_next_index() {
  local f="$HN_STATE/next-index" n
  n=$(cat "$f" 2>/dev/null || echo 1)
  echo $((n + 1)) >"$f"
  echo "$n"
}

# hn_node_up NAME [--no-lab] [--bind-ro SRC:DST]...: boot a node and wait
# until its systemd has finished booting (bounded).
hn_node_up() {
  local name="$1" lab=1 binds=() dir ns machine idx ip ok
  shift
  while [ $# -gt 0 ]; do
    case "$1" in
    --no-lab) lab=0 ;;
    --bind-ro)
      binds+=("--bind-ro=$2")
      shift
      ;;
    *) hn_die "hn_node_up: unknown option $1" ;;
    esac
    shift
  done
  case "$name" in
  *[!a-z0-9-]* | "" | -*) hn_die "node name '$name': use lower-case letters, digits and dashes" ;;
  esac
  [ "${#name}" -le 40 ] || hn_die "node name '$name' is too long"
  hn_node_exists "$name" && hn_die "node $name exists already"
  [ -n "${HN_ROOTFS-}" ] || hn_rootfs

  dir=$(hn_node_dir "$name")
  ns=$(hn_node_ns "$name")
  # Test nodes get a lab prefix so they never collide with a developer's
  # machines; dev nodes keep the name the developer chose.
  machine="${HN_MACHINE_PREFIX-hn$HN_LAB-}$name"
  mkdir -p "$dir/upper" "$dir/work" "$dir/merged"
  echo "$machine" >"$dir/machine"

  ip netns add "$ns"
  ip -n "$ns" link set lo up
  if [ "$lab" = 1 ]; then
    idx=$(hn_next_index)
    ip="$HN_SUBNET.$((10 + idx))"
    ip -n "$HN_SWITCH_NS" link add "p$idx" type veth peer name eth0 netns "$ns"
    ip -n "$HN_SWITCH_NS" link set "p$idx" master br0 up
    ip -n "$ns" addr add "$ip/24" dev eth0
    ip -n "$ns" link set eth0 up
    echo "$ip" >"$dir/ip"
  else
    : >"$dir/ip"
  fi

  mount -t overlay overlay -o "lowerdir=$HN_ROOTFS,upperdir=$dir/upper,workdir=$dir/work" "$dir/merged"
  printf '%s\n' "$name" >"$dir/merged/etc/hostname"
  hn_hosts_file >"$dir/merged/etc/hosts"

  # CAP_NET_ADMIN (which nspawn withholds) lets the node's own services give
  # nested machines private networks; it acts on the node's namespace only.
  local args=(--quiet --directory="$dir/merged" --machine="$machine" --hostname="$name"
    --keep-unit --console=passive --boot
    --network-namespace-path="/run/netns/$ns"
    --system-call-filter=bpf --resolv-conf=off --timezone=off
    --capability=CAP_NET_ADMIN
    "${binds[@]}")
  if hn_registering; then
    touch "$dir/registered"
    # Type=notify with --notify-ready: systemd-run returns once the
    # node's systemd reached its default target (or failed to).
    systemd-run --quiet --unit="$(hn_node_unit "$name")" --property=Type=notify \
      --property=KillMode=mixed --property=TimeoutStartSec="$HN_BOOT_TIMEOUT" \
      --property=TimeoutStopSec="$HN_STOP_TIMEOUT" \
      systemd-nspawn "${args[@]}" --notify-ready=yes --link-journal=try-guest ||
      hn_die "node $name did not boot (systemctl status $(hn_node_unit "$name"))"
  else
    (
      # The node must not hold the lab's lock: a run killed while
      # its nodes live on would lock out the run that cleans up.
      if [ -n "${HN_LOCK_FD-}" ]; then
        exec {HN_LOCK_FD}>&-
      fi
      setsid systemd-nspawn "${args[@]}" --register=no --link-journal=no \
        </dev/null >>"$dir/console.log" 2>&1 &
      echo $! >"$dir/pid"
    )
  fi
  hn_wait "$HN_BOOT_TIMEOUT" "node $name: its systemd to start" hn_node_leader "$name" || {
    tail -n 20 "$dir/console.log" >&2 2>/dev/null
    return 1
  }
  hn_wait "$HN_BOOT_TIMEOUT" "node $name: /run/systemd/private" \
    test -S "$(hn_node_fs "$name")/run/systemd/private" || return 1
  ok=$(hn_x "$name" timeout "$HN_BOOT_TIMEOUT" systemctl is-system-running --wait 2>/dev/null) || true
  case "$ok" in
  running) ;;
  degraded)
    hn_msg "node $name booted degraded: $(hn_x "$name" systemctl --failed --plain --no-legend | awk '{print $1}' | tr '\n' ' ')"
    ;;
  *)
    hn_msg "node $name did not finish booting (state: ${ok:-unknown})"
    return 1
    ;;
  esac
  hn_hosts_refresh
  hn_msg "node $name up (machine $machine${ip:+, $ip})"
}

# hn_hosts_file prints /etc/hosts for a node: every lab node by name, so
# configs can name their peers.
hn_hosts_file() {
  local n ipaddr
  printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n'
  for n in $(hn_nodes); do
    ipaddr=$(cat "$(hn_node_dir "$n")/ip" 2>/dev/null) || continue
    [ -n "$ipaddr" ] && printf '%s\t%s\n' "$ipaddr" "$n"
  done
  return 0
}

hn_hosts_refresh() {
  local n tmp
  tmp=$(mktemp)
  hn_hosts_file >"$tmp"
  for n in $(hn_nodes); do
    hn_node_leader "$n" >/dev/null 2>&1 && hn_put "$n" "$tmp" /etc/hosts
  done
  rm -f "$tmp"
}

# hn_link A B: a private point-to-point link between two nodes, outside the
# lab switch (created straight inside their namespaces, never in the root
# one). A gets .1 and B .2 of the link's /30; prints B's address.
hn_link() {
  local a="$1" b="$2" k base nsa nsb
  k=$(hn_next_index)
  base=$((k * 4))
  [ "$base" -lt 252 ] || hn_die "out of point-to-point addresses"
  nsa=$(hn_node_ns "$a")
  nsb=$(hn_node_ns "$b")
  ip -n "$nsa" link add "hl$k" type veth peer name "hl$k" netns "$nsb"
  ip -n "$nsa" addr add "$HN_P2P_SUBNET.$((base + 1))/30" dev "hl$k"
  ip -n "$nsb" addr add "$HN_P2P_SUBNET.$((base + 2))/30" dev "hl$k"
  ip -n "$nsa" link set "hl$k" up
  ip -n "$nsb" link set "hl$k" up
  echo "$HN_P2P_SUBNET.$((base + 2))"
}

# hn_route_ok NODE ADDRESS: the node reaches ADDRESS over one of the lab's
# own links, never a default route (there is none in a node, but a caller
# about to send traffic checks rather than assumes).
hn_route_ok() {
  local out
  out=$(ip -n "$(hn_node_ns "$1")" route get "$2" 2>/dev/null) || return 1
  case "$out" in
  *" via "*) return 1 ;;
  *" dev eth0 "* | *" dev hl"* | "local "*) return 0 ;;
  esac
  return 1
}

# hn_node_down NAME: stop the node (bounded), then remove its mounts,
# namespace and state. Safe on half-created and stale nodes.
hn_node_down() {
  local name="$1" dir ns pid unit
  dir=$(hn_node_dir "$name")
  ns=$(hn_node_ns "$name")
  unit=$(hn_node_unit "$name")
  # Each step tolerates what an earlier, interrupted teardown already did.
  if [ -e "$dir/registered" ]; then
    timeout "$((HN_STOP_TIMEOUT + 5))" systemctl stop "$unit" 2>/dev/null ||
      systemctl kill -s KILL "$unit" 2>/dev/null || true
    systemctl reset-failed "$unit" 2>/dev/null || true
  fi
  pid=$(cat "$dir/pid" 2>/dev/null || true)
  if hn_pid_is "$pid" systemd-nspawn; then
    # SIGTERM makes nspawn shut the node's systemd down cleanly.
    kill -TERM "$pid" 2>/dev/null || true
    if ! hn_wait "$HN_STOP_TIMEOUT" "node $name to power off" hn_pid_gone "$pid" systemd-nspawn; then
      kill -KILL "$pid" 2>/dev/null || true
      hn_wait 5 "node $name to die" hn_pid_gone "$pid" systemd-nspawn || true
    fi
  fi
  if mountpoint -q "$dir/merged" 2>/dev/null; then
    umount "$dir/merged" 2>/dev/null || umount -l "$dir/merged" || hn_msg "could not unmount $dir/merged"
  fi
  if [ -e "/run/netns/$ns" ]; then
    ip netns delete "$ns" || hn_msg "could not delete the network namespace $ns"
  fi
  rm -rf "$dir"
}

# hn_lab_down stops every node of the lab and removes the switch. Also
# cleans what a killed run left behind: state directories, namespaces and
# mounts of this lab only.
hn_lab_down() {
  local n ns m pids=()
  # Units named in HN_STOP_FIRST stop while every node still runs: an agent
  # whose network vanishes mid-stop spends up to 20 s trying to unregister.
  if [ -n "${HN_STOP_FIRST-}" ]; then
    for n in $(hn_nodes); do
      if hn_node_leader "$n" >/dev/null 2>&1; then
        # shellcheck disable=SC2086 # a list of unit names
        hn_x "$n" timeout 30 systemctl stop $HN_STOP_FIRST >/dev/null 2>&1 &
        pids+=("$!")
      fi
    done
    if [ "${#pids[@]}" -gt 0 ]; then
      wait "${pids[@]}" || true
    fi
    pids=()
  fi
  # In parallel: each node takes a second or two to power off.
  for n in $(hn_nodes); do
    hn_node_down "$n" &
    pids+=("$!")
  done
  if [ "${#pids[@]}" -gt 0 ]; then
    wait "${pids[@]}" || true
  fi
  if hn_systemd_host; then
    for m in $(systemctl list-units --plain --no-legend --all "hn-$HN_LAB-*.service" 2>/dev/null | awk '{print $1}'); do
      systemctl stop "$m" 2>/dev/null || true
      systemctl reset-failed "$m" 2>/dev/null || true
    done
  fi
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}'); do
    case "$ns" in "hn-$HN_LAB-"*) ip netns delete "$ns" || hn_msg "could not delete the network namespace $ns" ;; esac
  done
  while read -r m; do
    umount -l "$m" 2>/dev/null || hn_msg "could not unmount $m"
  done < <(awk -v p="$HN_STATE/" 'index($2, p) == 1 { print $2 }' /proc/mounts | sort -r)
  rm -rf "$HN_STATE"
}

# hn_install_suite NAME BINDIR UNITDIR: copy the daemons and the plain units
# into the node. Binaries go where the units' ExecStart expects them.
hn_install_suite() {
  local node="$1" bindir="$2" unitdir="$3" f dest
  dest=$(hn_unit_bindir "$unitdir")
  for f in "$bindir"/*; do
    [ -f "$f" ] && hn_put "$node" "$f" "$dest/$(basename "$f")" 0755
  done
  if [ -d "$unitdir" ]; then
    for f in "$unitdir"/*.service "$unitdir"/*.socket; do
      [ -f "$f" ] && hn_put "$node" "$f" "/etc/systemd/system/$(basename "$f")"
    done
    for f in "$unitdir"/*.rules; do
      [ -f "$f" ] && hn_put "$node" "$f" "/etc/polkit-1/rules.d/$(basename "$f")"
    done
    for f in "$unitdir"/*.conf; do
      # sysusers.d / tmpfiles.d snippets, when the packaging has them.
      case "$(basename "$f")" in
      *sysusers*) hn_put "$node" "$f" "/usr/lib/sysusers.d/$(basename "$f")" ;;
      *tmpfiles*) hn_put "$node" "$f" "/usr/lib/tmpfiles.d/$(basename "$f")" ;;
      esac
    done
  fi
  hn_x "$node" systemctl daemon-reload
}

# hn_unit_bindir UNITDIR: the directory the units exec their binaries from.
hn_unit_bindir() {
  local exe
  exe=$(grep -h '^ExecStart=' "$1"/*.service 2>/dev/null | head -n 1 | sed 's/^ExecStart=[-@:+!]*//; s/ .*//')
  case "$exe" in
  /*) dirname "$exe" ;;
  *) echo /usr/local/bin ;;
  esac
}
