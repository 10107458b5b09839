#!/bin/sh
# Guest script of SCTPVirtualMachineTests (runs inside the VM lane, Debian's stock kernel, which has the
# sctp module that this machine's kernel lacks). The VM's own namespace plays the node: pods are
# namespaces on the bridge cbr0, an outside client is the namespace ext behind the node's address
# 192.168.100.2. keeld runs with --proxy (nftables mode) and --policy from the manifest folder
# /manifests, and real SCTP associations (socat) go through a ClusterIP, a NodePort and a NetworkPolicy.
# Every check prints `KEEL-RESULT <key> <value>`; the host-side test asserts. $KEELD is set by the test.
set -u
result() { echo "KEEL-RESULT $*"; }

# --- node and pods -----------------------------------------------------------------------------------
echo 1 > /proc/sys/net/ipv4/ip_forward
ip link add cbr0 type bridge && ip addr add 10.244.0.1/24 dev cbr0 && ip link set cbr0 up
echo 1 > /proc/sys/net/bridge/bridge-nf-call-iptables
pod() {   # pod NAME IP
  ip netns add "$1"
  ip link add "v$1" type veth peer name eth0 netns "$1"
  ip link set "v$1" master cbr0 up
  ip -n "$1" link set lo up
  ip -n "$1" addr add "$2/24" dev eth0
  ip -n "$1" link set eth0 up
  ip -n "$1" route add default via 10.244.0.1
}
# b1, b2: the servers; c1: a client the policy allows; c2: a client it does not select.
pod b1 10.244.0.11; pod b2 10.244.0.12; pod c1 10.244.0.21; pod c2 10.244.0.22
ip netns add ext
ip link add ext0 type veth peer name eth0 netns ext
ip addr add 192.168.100.2/24 dev ext0 && ip link set ext0 up
ip -n ext link set lo up
ip -n ext addr add 192.168.100.3/24 dev eth0 && ip -n ext link set eth0 up
ip -n ext route add default via 192.168.100.2

for b in b1 b2; do
  ip netns exec $b socat SCTP-LISTEN:9000,fork,reuseaddr SYSTEM:"echo $b" >/dev/null 2>&1 &   # the allowed port
  ip netns exec $b socat SCTP-LISTEN:9001,fork,reuseaddr SYSTEM:"echo $b" >/dev/null 2>&1 &   # an SCTP port not allowed
  ip netns exec $b socat TCP-LISTEN:9000,fork,reuseaddr SYSTEM:"echo $b" >/dev/null 2>&1 &    # TCP on the allowed number
done

# --- manifests -----------------------------------------------------------------------------------------
mkdir -p /manifests
write() {   # write FILE: stdin to /manifests/FILE, atomically (keeld reads whole files)
  cat > "/manifests/.$1.tmp" && mv "/manifests/.$1.tmp" "/manifests/$1"
}
write sctp.yaml <<'YAML'
apiVersion: v1
kind: Service
metadata: {name: sctp, namespace: default}
spec:
  type: NodePort
  clusterIP: 10.96.0.20
  selector: {app: server}
  ports: [{name: assoc, protocol: SCTP, port: 9000, targetPort: 9000, nodePort: 30900}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: sctp-1, namespace: default, labels: {kubernetes.io/service-name: sctp}}
addressType: IPv4
ports: [{name: assoc, protocol: SCTP, port: 9000}]
endpoints:
- {addresses: [10.244.0.11], conditions: {ready: true}, nodeName: vm}
- {addresses: [10.244.0.12], conditions: {ready: true}, nodeName: vm}
YAML
pod_manifest() {   # pod_manifest NAME IP APP
  cat <<YAML
---
apiVersion: v1
kind: Pod
metadata: {name: $1, namespace: default, labels: {app: $3}}
spec: {nodeName: vm, containers: [{name: main, ports: [{name: assoc, containerPort: 9000, protocol: SCTP}]}]}
status: {phase: Running, podIP: $2, podIPs: [{ip: $2}]}
YAML
}
{ pod_manifest b1 10.244.0.11 server; pod_manifest b2 10.244.0.12 server
  pod_manifest c1 10.244.0.21 client; pod_manifest c2 10.244.0.22 other; } | write pods.yaml

# --- keeld ---------------------------------------------------------------------------------------------
"$KEELD" --manifests /manifests --proxy --policy --node-name vm --cluster-cidr 10.244.0.0/16 \
  --resync-seconds 60 --log-level debug 2>/tmp/keeld.log &
KEELD_PID=$!
wait_for() {   # wait_for SECONDS COMMAND...: polls every 0.2 s
  limit=$(( $1 * 5 )); shift
  i=0
  while [ $i -lt $limit ]; do "$@" && return 0; sleep 0.2; i=$((i + 1)); done
  return 1
}
fail() { result "$1" no; sed 's/^/guest: keeld: /' /tmp/keeld.log | tail -n 40; exit 1; }
# Synced once with pods, namespaces and policies listed (none selects a pod yet), and the service in place.
wait_for 60 sh -c 'nft list table ip keel-proxy 2>/dev/null | grep -q 30900 && grep -q "policy rules synced" /tmp/keeld.log' \
  || fail programmed
result programmed yes

# --- traffic -------------------------------------------------------------------------------------------
# One association (or connection) that reads what the server writes: "b1", "b2", or "denied" when it
# could not be set up within 2 s (the policy drops; SCTP has no reset to send back). -u: nothing is
# written to the server, so no SHUTDOWN (SCTP has no half-close) ends the association before the answer.
sctp() { ip netns exec "$1" socat -u -T3 "SCTP-CONNECT:$2,connect-timeout=2" STDOUT 2>/dev/null || echo denied; }
tcp() { ip netns exec "$1" socat -u -T3 "TCP:$2,connect-timeout=2" STDOUT 2>/dev/null || echo denied; }
# The proxy draws a backend at random (numgen random): 16 draws miss one of two with p = 2^-15.
distinct() {   # distinct N FUNC ARGS...: the sorted distinct answers of N calls
  n=$1; shift
  i=0; while [ $i -lt "$n" ]; do "$@"; i=$((i + 1)); done | sort -u | tr '\n' ',' ; echo
}
# Without a policy every pod is open: the ports the policy will close answer now.
result open-clusterip "$(distinct 16 sctp c1 10.96.0.20:9000)"
result open-nodeport "$(distinct 16 sctp ext 192.168.100.2:30900)"
result open-other-sctp-port "$(sctp c1 10.244.0.11:9001)"
result open-tcp "$(tcp c1 10.244.0.11:9000)"
result open-unselected-client "$(sctp c2 10.96.0.20:9000 | sed 's/b[12]/answered/')"

# --- NetworkPolicy: SCTP 9000 from app=client pods and from outside ------------------------------------
write policy.yaml <<'YAML'
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: sctp-only, namespace: default}
spec:
  podSelector: {matchLabels: {app: server}}
  policyTypes: [Ingress]
  ingress:
  - from: [{podSelector: {matchLabels: {app: client}}}, {ipBlock: {cidr: 192.168.100.0/24}}]
    ports: [{protocol: SCTP, port: 9000}]
YAML
isolated() { nft list map ip keel-policy ingress-pods 2>/dev/null | grep -q 10.244.0.11 && nft list map ip keel-policy ingress-pods | grep -q 10.244.0.12; }
wait_for 30 isolated || fail policy-programmed
result policy-programmed yes
result policy-clusterip "$(distinct 16 sctp c1 10.96.0.20:9000)"
result policy-pod-direct "$(sctp c1 10.244.0.12:9000)"
result policy-nodeport "$(distinct 16 sctp ext 192.168.100.2:30900)"
result policy-other-sctp-port "$(sctp c1 10.244.0.11:9001)"
result policy-tcp "$(tcp c1 10.244.0.11:9000)"
result policy-unselected-client "$(sctp c2 10.96.0.20:9000)"
result policy-unselected-direct "$(sctp c2 10.244.0.11:9000)"
# The drops are the policy's: its isolation counter counted them.
result policy-drops "$(nft list table ip keel-policy | grep -c 'counter packets [1-9].*drop')"
kill "$KEELD_PID" 2>/dev/null
sed 's/^/guest: keeld: /' /tmp/keeld.log | grep -iE "error|warn|critical" | head -20
true
