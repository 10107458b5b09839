# Shared by scripts/*: package installation and namespace cleanup. Sourced, not run.

# Debian packages the build and the tests need. ip/nft/bridge/ping/socat are for verification in
# tests only; the product talks netlink through libmnl/libnftnl. containernetworking-plugins brings
# the reference CNI plugins (/usr/lib/cni) for the interoperability tests and the CNI benchmark;
# podman and busybox-static are the real runtime (and its local image) of the runtime test;
# iperf3 measures pod-to-pod throughput in scripts/bench overlay; conntrack cross-checks ctnetlink;
# openssl makes the test CA of the API-server tests; qemu-system-x86, kmod and cpio run the VM lane
# (a stock Debian kernel for the IPVS tests, see scripts/vm).
KEEL_PACKAGES=(libmnl-dev libnftnl-dev pkg-config iproute2 nftables iputils-ping socat containernetworking-plugins podman busybox-static iperf3 conntrack openssl qemu-system-x86 kmod cpio)

keel_install_packages() {
  local missing=()
  for p in "${KEEL_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    echo "missing packages: ${missing[*]} (run as root, or: sudo apt-get install -y ${missing[*]})" >&2
    return 1
  fi
  echo "==> apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# Removes namespaces named <prefix>-<pid>-* whose process is gone (a crashed run), by name.
# With --all, every namespace under the prefix. Uses ip(8) so it works before anything is built.
keel_cleanup_leftovers() {
  local prefix=$1 all=${2:-}
  [ -d /run/netns ] || return 0
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^${prefix}-" || true); do
    local pid=${ns#"${prefix}-"}; pid=${pid%%-*}
    if [ "$all" = "--all" ] || ! [[ "$pid" =~ ^[0-9]+$ ]] || ! kill -0 "$pid" 2>/dev/null; then
      ip netns del "$ns" 2>/dev/null || true
    fi
  done
}
