#!/bin/sh
# Guest script of IPVSVirtualMachineTests (runs as PID 1's child inside the VM lane, Debian's stock
# kernel). The VM's own namespace plays the node: pods are namespaces on the bridge cbr0, an outside
# client is the namespace ext behind the node's address 192.168.100.2. keeld runs in IPVS mode from the
# manifest folder /manifests. Every check prints `KEEL-RESULT <key> <value>`; the host-side test asserts.
# $KEELD and $KEELCTL are set by the test (the debug binaries' paths).
set -u
result() { echo "KEEL-RESULT $*"; }
say() { echo "guest: $*"; }

# --- node and pods -----------------------------------------------------------------------------------
echo 1 > /proc/sys/net/ipv4/ip_forward
ip link add cbr0 type bridge && ip addr add 10.244.0.1/24 dev cbr0 && ip link set cbr0 up
# Pods on one bridge reach a service and get the answer from a pod on the same bridge: the reply is
# bridged, so it must pass the IP hooks where IPVS undoes its NAT (kube-proxy's IPVS mode needs the same).
echo 1 > /proc/sys/net/bridge/bridge-nf-call-iptables
pod() {   # pod NAME IP
  ip netns add "$1"
  ip link add "v$1" type veth peer name eth0 netns "$1"
  ip link set "v$1" master cbr0 up
  # As the bridge plugin with hairpinMode does: a reply un-NATed back to the pod it came from leaves
  # through the port it arrived on (a pod reaching itself through its service).
  ip link set "v$1" type bridge_slave hairpin on
  ip -n "$1" link set lo up
  ip -n "$1" addr add "$2/24" dev eth0
  ip -n "$1" link set eth0 up
  ip -n "$1" route add default via 10.244.0.1
}
pod b1 10.244.0.11; pod b2 10.244.0.12; pod b3 10.244.0.13; pod c1 10.244.0.21
ip netns add ext
ip link add ext0 type veth peer name eth0 netns ext
ip addr add 192.168.100.2/24 dev ext0 && ip link set ext0 up
ip -n ext link set lo up
ip -n ext addr add 192.168.100.3/24 dev eth0 && ip -n ext link set eth0 up
ip -n ext route add default via 192.168.100.2

for b in b1 b2 b3; do
  ip netns exec $b socat TCP-LISTEN:8080,fork,reuseaddr SYSTEM:"echo $b" >/dev/null 2>&1 &
  ip netns exec $b socat UDP-RECVFROM:5353,fork SYSTEM:"echo $b" >/dev/null 2>&1 &
  ip netns exec $b socat TCP-LISTEN:9090,fork,reuseaddr PIPE >/dev/null 2>&1 &   # echo, for a long connection
done

# --- manifests -----------------------------------------------------------------------------------------
mkdir -p /manifests
service() {   # service NAME IP PORT PROTO TARGET [extra spec lines]
  name=$1 ip=$2 port=$3 proto=$4 target=$5; shift 5
  cat > /manifests/svc-$name.yaml <<YAML
apiVersion: v1
kind: Service
metadata: {name: $name, namespace: default}
spec:
  clusterIP: $ip
  ports: [{name: p, port: $port, targetPort: $target, protocol: $proto$(for l in "$@"; do case $l in nodePort=*) echo ", nodePort: ${l#nodePort=}";; esac; done)}]
$(for l in "$@"; do case $l in nodePort=*) ;; *) echo "  $l";; esac; done)
YAML
}
slice() {   # slice NAME PORT PROTO IP...
  name=$1 port=$2 proto=$3; shift 3
  {
    echo "apiVersion: discovery.k8s.io/v1"
    echo "kind: EndpointSlice"
    echo "metadata: {name: $name-1, namespace: default, labels: {kubernetes.io/service-name: $name}}"
    echo "addressType: IPv4"
    echo "ports: [{name: p, port: $port, protocol: $proto}]"
    echo "endpoints:"
    for a in "$@"; do
      case $a in
        terminating:*) echo "- {addresses: [${a#terminating:}], conditions: {ready: false, serving: true, terminating: true}, nodeName: vm}" ;;
        *) echo "- {addresses: [$a], conditions: {ready: true}, nodeName: vm}" ;;
      esac
    done
  } > /manifests/eps-$name.yaml.tmp
  mv /manifests/eps-$name.yaml.tmp /manifests/eps-$name.yaml
}
service web 10.96.0.10 80 TCP 8080 "type: NodePort" "externalIPs: [192.168.100.50]" nodePort=30080
slice web 8080 TCP 10.244.0.11 10.244.0.12 10.244.0.13
service dns 10.96.0.11 53 UDP 5353
slice dns 5353 UDP 10.244.0.11 10.244.0.12 10.244.0.13
service sticky 10.96.0.12 80 TCP 8080 "sessionAffinity: ClientIP"
slice sticky 8080 TCP 10.244.0.11 10.244.0.12 10.244.0.13
service empty 10.96.0.13 80 TCP 8080
service echo 10.96.0.14 90 TCP 9090
slice echo 9090 TCP 10.244.0.11 10.244.0.12 10.244.0.13

# --- keeld ---------------------------------------------------------------------------------------------
start_keeld() {
  "$KEELD" --manifests /manifests --proxy --proxy-mode ipvs --node-name vm --cluster-cidr 10.244.0.0/16 \
    --resync-seconds 60 --log-level debug 2>>"$1" &
  KEELD_PID=$!
}
wait_for() {   # wait_for SECONDS COMMAND...: polls every 0.2 s
  limit=$(( $1 * 5 )); shift
  i=0
  while [ $i -lt $limit ]; do "$@" && return 0; sleep 0.2; i=$((i + 1)); done
  return 1
}
start_keeld /tmp/keeld-1.log
if wait_for 60 sh -c '[ "$(ipvsadm -Ln | grep -c -- "->.*Masq")" -ge 15 ]'; then result programmed yes; else
  result programmed no
  sed 's/^/guest: keeld: /' /tmp/keeld-1.log | tail -n 40
  exit 1
fi
result ipvs-services "$(ipvsadm -Ln | grep -cE '^(TCP|UDP)')"
result dummy-addresses "$(ip -4 -o addr show dev keel-ipvs0 | awk '{print $4}' | sort | tr '\n' ',')"

# --- traffic -------------------------------------------------------------------------------------------
tcp() { ip netns exec "$1" socat -T2 - "TCP:$2,connect-timeout=2" </dev/null 2>/dev/null; }
udp() { echo q | ip netns exec "$1" socat -T1 - "UDP:$2" 2>/dev/null; }
distinct() {   # distinct N FUNC ARGS...: the sorted distinct answers of N calls
  n=$1; shift
  i=0; while [ $i -lt "$n" ]; do "$@"; i=$((i + 1)); done | sort -u | tr '\n' ',' ; echo
}
result clusterip-tcp "$(distinct 12 tcp c1 10.96.0.10:80)"
result clusterip-udp "$(distinct 12 udp c1 10.96.0.11:53)"
result nodeport-tcp "$(distinct 12 tcp ext 192.168.100.2:30080)"
result externalip-tcp "$(distinct 12 tcp ext 192.168.100.50:80)"
result affinity-tcp "$(distinct 12 tcp c1 10.96.0.12:80)"
# A service without endpoints refuses at once (nftables REJECT before IPVS), it does not time out.
start=$(date +%s)
if ip netns exec c1 socat -T2 - TCP:10.96.0.13:80,connect-timeout=3 </dev/null 2>/tmp/refused.err; then
  result no-endpoints connected
else
  result no-endpoints "$(grep -q 'Connection refused' /tmp/refused.err && echo refused || echo failed)-$(( $(date +%s) - start ))s"
fi
# keelctl's view of the kernel table agrees with ipvsadm's. Compared as sorted lines, each real server
# prefixed by its service: ipvsadm orders services by a subtraction that overflows for distant addresses.
flatten() { awk '/^(TCP|UDP|SCTP) / {svc=$0; print svc; next} /->/ && svc != "" {print svc " | " $0; next} {print}' | sort; }
ipvsadm -Ln | flatten > /tmp/ipvsadm.txt
"$KEELCTL" ipvs list 2>&1 | flatten > /tmp/keelctl.txt
if diff -u /tmp/ipvsadm.txt /tmp/keelctl.txt > /tmp/agree.diff; then result keelctl-agrees yes; else
  result keelctl-agrees no
  sed 's/^/guest: diff: /' /tmp/agree.diff | head -40
fi
result keelctl-lines "$(wc -l < /tmp/keelctl.txt)"

# --- an endpoint change touches only its destination ---------------------------------------------------
before_syncs=$(grep -c "IPVS synced" /tmp/keeld-1.log)
slice web 8080 TCP 10.244.0.11 10.244.0.12
# TCP: the leaving backend stays with weight 0 until its connections end (graceful removal).
weight_of_b3() { ipvsadm -Ln -t 10.96.0.10:80 | awk '$2 == "10.244.0.13:8080" {print $4}'; }
if wait_for 20 sh -c "[ \$(grep -c 'IPVS synced' /tmp/keeld-1.log) -gt $before_syncs ]"; then :; fi
result endpoint-b3-weight "$(weight_of_b3)"
sleep 1
# The syncs since the change that sent IPVS operations (a sync that changes nothing lists none).
grep 'IPVS synced' /tmp/keeld-1.log | tail -n +$((before_syncs + 1)) | grep 'ipvs.operations=' > /tmp/change-syncs.txt
result change-syncs-with-operations "$(wc -l < /tmp/change-syncs.txt)"
result change-sync "$(tail -n 1 /tmp/change-syncs.txt | sed 's/.*keeld.proxy: //')"
# A terminating (still serving) endpoint keeps its destination with weight 0: no new connections.
slice sticky 8080 TCP 10.244.0.11 terminating:10.244.0.12 10.244.0.13
weight_in_sticky() { ipvsadm -Ln -t 10.96.0.12:80 | awk -v d="$1" '$2 == d {print $4}'; }
wait_for 20 sh -c '[ "$(ipvsadm -Ln -t 10.96.0.12:80 | awk '"'"'$2 == "10.244.0.12:8080" {print $4}'"'"')" = 0 ]'
result terminating-weights "$(weight_in_sticky 10.244.0.11:8080),$(weight_in_sticky 10.244.0.12:8080),$(weight_in_sticky 10.244.0.13:8080)"
result web-after-change "$(distinct 12 tcp c1 10.96.0.10:80)"
# Hairpin: a backend reaching its own service lands on itself every other time (masqueraded).
result hairpin-tcp "$(distinct 8 tcp b1 10.96.0.10:80)"

# --- restart: an established connection survives, nothing changes --------------------------------------
# A long connection through the echo service: the client reads what we write into a fifo.
mkfifo /tmp/long.in
cat /tmp/long.in | ip netns exec c1 socat -T60 - TCP:10.96.0.14:90 > /tmp/long.out 2>&1 &
exec 7>/tmp/long.in
echo before >&7
sleep 1
ipvsadm -Ln > /tmp/ipvs-before.txt
nft list table ip keel-ipvs > /tmp/nft-before.txt 2>&1
kill -9 "$KEELD_PID"; wait "$KEELD_PID" 2>/dev/null
start_keeld /tmp/keeld-2.log
wait_for 60 sh -c '[ "$(grep -c "IPVS synced" /tmp/keeld-2.log)" -ge 1 ]' && result restart-synced yes || result restart-synced no
ipvsadm -Ln > /tmp/ipvs-after.txt
nft list table ip keel-ipvs > /tmp/nft-after.txt 2>&1
result restart-ipvs-same "$(cmp -s /tmp/ipvs-before.txt /tmp/ipvs-after.txt && echo yes || echo no)"
result restart-nft-same "$(cmp -s /tmp/nft-before.txt /tmp/nft-after.txt && echo yes || echo no)"
result restart-sync "$(grep 'IPVS synced' /tmp/keeld-2.log | head -n 1 | sed 's/.*keeld.proxy: //')"
echo after >&7
sleep 1
exec 7>&-
sleep 1
result long-connection "$(tr '\n' ',' < /tmp/long.out)"
kill "$KEELD_PID" 2>/dev/null
sed 's/^/guest: keeld: /' /tmp/keeld-1.log | grep -iE "error|warn|critical" | head -20
true
