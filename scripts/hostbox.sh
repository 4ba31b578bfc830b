#!/usr/bin/env bash
# The app host in a box: a Debian 12 root (debootstrap --variant=minbase) that runs in its own
# PID, mount, UTS, IPC and network namespaces, reached over a veth pair that exists only on this
# machine. Driven by src/sandbox/host-box.ts; CI calls `build` once per run.
#
#   hostbox.sh build ROOT MIRROR PACKAGE...   build the root once into ROOT (no-op when present)
#   hostbox.sh init ...                        PID 1 of the box (started through unshare by host-box.ts)
#
# Everything a running box mounts lives in its own mount namespace, and every process in its PID
# namespace: when its init exits (stop, or the owner process gone) the kernel removes them all,
# and the veth pair with the network namespace. Only the box's writable layer stays on disk.
set -Eeuo pipefail

cmd="${1:-}"
shift || true

build() {
  local root="$1" mirror="$2"
  shift 2
  local packages=("$@")
  [ -f "$root/.cutover-complete" ] && { echo "cached $root"; return 0; }
  mkdir -p "$(dirname "$root")"
  exec 9>"$root.lock"
  flock 9
  [ -f "$root/.cutover-complete" ] && { echo "cached $root"; return 0; }
  local tmp="$root.partial"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  cleanup_build() { umount -l "$tmp/proc" 2>/dev/null || true; }
  trap cleanup_build EXIT
  debootstrap --variant=minbase --include=openssh-server,sudo,ca-certificates,curl,procps,iproute2,nftables \
    bookworm "$tmp" "$mirror"
  mount -t proc proc "$tmp/proc"
  # The packages the set-up script installs, downloaded (not installed) into the root's apt cache:
  # the set-up still runs apt-get update and install for real, it only finds the .debs at hand.
  printf 'deb %s bookworm main\ndeb %s bookworm-updates main\n' "$mirror" "$mirror" >"$tmp/etc/apt/sources.list"
  chroot "$tmp" apt-get update -qq
  if [ ${#packages[@]} -gt 0 ]; then
    chroot "$tmp" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --download-only --no-install-recommends "${packages[@]}"
  fi
  # Like a cloud image: an admin user with sudo and the SSH key Cutover provisions (written at start).
  chroot "$tmp" useradd --create-home --shell /bin/bash admin
  chroot "$tmp" usermod -p '*' admin
  echo 'admin ALL=(ALL) NOPASSWD:ALL' >"$tmp/etc/sudoers.d/admin"
  chmod 0440 "$tmp/etc/sudoers.d/admin"
  cat >"$tmp/etc/ssh/sshd_config.d/cutover-box.conf" <<'EOF'
# the box has no login sessions to account for (no systemd, no loginuid)
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
EOF
  # keep apt's downloads: the set-up's install finds them here
  rm -f "$tmp/etc/apt/apt.conf.d/docker-clean"
  echo 'Binary::apt::APT::Keep-Downloaded-Packages "true";' >"$tmp/etc/apt/apt.conf.d/01keep-debs"
  umount "$tmp/proc"
  trap - EXIT
  touch "$tmp/.cutover-complete"
  rm -rf "$root"
  mv "$tmp" "$root"
  echo "built $root"
}

# PID 1 of the box. Arguments: LOWER UPPER WORK MERGED IFACE BOX_IP HOST_IP OWNER_PID OWNER_START PORTS
init() {
  local lower="$1" upper="$2" work="$3" merged="$4" iface="$5" box_ip="$6" host_ip="$7" owner="$8" owner_start="$9" ports="${10}"
  local stopping=0
  trap 'stopping=1' TERM INT
  mount --make-rprivate /
  # the veth's inner end arrives from the host side once this process exists
  for _ in $(seq 1 200); do ip link show "$iface" >/dev/null 2>&1 && break; sleep 0.05; done
  ip link set lo up
  ip link set "$iface" name eth0
  ip addr add "$box_ip/30" dev eth0
  ip link set eth0 up
  ip route add default via "$host_ip"
  mkdir -p "$upper" "$work" "$merged"
  mount -t overlay overlay -o "lowerdir=$lower,upperdir=$upper,workdir=$work" "$merged"
  mount -t proc proc "$merged/proc"
  mount -t sysfs -o ro sysfs "$merged/sys" 2>/dev/null || true
  mount -t tmpfs -o mode=755,size=64m tmpfs "$merged/dev"
  for d in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9 tty:5:0; do
    IFS=: read -r name major minor <<<"$d"
    mknod -m 666 "$merged/dev/$name" c "$major" "$minor"
  done
  mkdir -p "$merged/dev/pts" "$merged/dev/shm"
  mount -t devpts -o newinstance,ptmxmode=0666 devpts "$merged/dev/pts"
  ln -sf pts/ptmx "$merged/dev/ptmx"
  mount -t tmpfs tmpfs "$merged/dev/shm"
  mount -t tmpfs -o mode=755 tmpfs "$merged/run"
  mkdir -p "$merged/run/sshd" "$merged/run/lock"
  # What leaves the box: only new connections to the host end's ports it was given (the apt proxy,
  # the release files, the forwards); replies to what comes in (SSH, HTTP) pass as established.
  # Everything else this machine listens on (0.0.0.0 included) stays out of reach.
  chroot "$merged" /usr/sbin/nft -f - <<EOF
table inet cutover_box {
  chain output {
    type filter hook output priority 0; policy drop;
    oif "lo" accept
    ct state established,related accept
    ip daddr $host_ip tcp dport { $ports } accept
  }
}
EOF
  hostname cutover-box
  echo cutover-box >"$merged/etc/hostname"
  printf '127.0.0.1 localhost cutover-box\n%s cutover-box\n' "$box_ip" >"$merged/etc/hosts"
  printf 'nameserver %s\n' "$host_ip" >"$merged/etc/resolv.conf"
  # apt reaches the Debian mirror only through the host side's proxy (no route out of the box)
  printf 'Acquire::http::Proxy "http://%s:3142/";\n' "$host_ip" >"$merged/etc/apt/apt.conf.d/90cutover-box-proxy"
  # shellcheck disable=SC2016 # (expanded by the box's shell)
  chroot "$merged" /bin/sh -c '
    # boot: what sysv-rc would start in runlevel 2, in order, then sshd
    for s in /etc/rc2.d/S*; do [ -x "$s" ] && "$s" start >/dev/null 2>&1; done
    /usr/sbin/sshd'
  echo "::box:: up"
  # live while the owner lives (same process: same start time) and until told to stop
  while [ "$stopping" = 0 ]; do
    if [ ! -e "/proc/$owner" ] || [ "$(awk '{print $22}' "/proc/$owner/stat" 2>/dev/null)" != "$owner_start" ]; then
      echo "::box:: owner $owner gone; stopping"
      break
    fi
    sleep 0.5 &
    wait $! || true
  done
  echo "::box:: down"
  # PID 1 leaving ends every process of the box; the mounts and the network namespace go with it
}

case "$cmd" in
build) build "$@" ;;
init) init "$@" ;;
*)
  echo "usage: hostbox.sh build ROOT MIRROR PACKAGE... | init ..." >&2
  exit 2
  ;;
esac
