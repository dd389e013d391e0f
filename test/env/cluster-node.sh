#!/usr/bin/env bash
# The test cluster's node: run by test/env/cluster.ts inside the cluster's own network namespace
# and a private mount namespace (nsenter --net=... unshare --mount --propagation private), so that
# nothing it does reaches the machine:
#   - /run, /var/lib and /var/log, where kubelet, containerd and the CNI plugins keep their state,
#     are the work dir's own directories (bind mounts seen only in this namespace);
#   - the machine-wide kernel tunables the kubelet would set (vm.overcommit_memory, kernel.panic,
#     kernel.panic_on_oops, vm.panic_on_oom, kernel.keys.root_max*) are files of the work dir here;
#   - ip_forward and iptables rules belong to this network namespace only.
# Starts etcd, kube-apiserver, kube-controller-manager, kube-scheduler, containerd (+ the local
# pause image), kubelet and kube-proxy, each logging to <work>/logs/<name>.log, then waits.
# Usage: cluster-node.sh <work dir> (the work dir holds env, the configs and the PKI).
set -euo pipefail
W=$1
# shellcheck source=/dev/null
source "$W/env"

for dir in run var-lib var-log; do mkdir -p "$W/$dir"; done
mount --bind "$W/run" /run
mount --bind "$W/var-lib" /var/lib
mount --bind "$W/var-log" /var/log
mkdir -p "$W/sysctl"
for key in vm/overcommit_memory vm/panic_on_oom kernel/panic kernel/panic_on_oops \
  kernel/keys/root_maxkeys kernel/keys/root_maxbytes; do
  standin=$W/sysctl/${key//\//.}
  cat "/proc/sys/$key" >"$standin"
  mount --bind "$standin" "/proc/sys/$key"
done
# Shared inside this namespace only, for the kubelet's and containerd's mount propagation.
mount --make-rshared /

ip link set lo up
sysctl -qw net.ipv4.ip_forward=1
sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null || true

run() {
  local name=$1
  shift
  "$@" >>"$W/logs/$name.log" 2>&1 &
  echo "$! $name" >>"$W/pids"
}
wait_for() {
  local what=$1
  shift
  for _ in $(seq 600); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "cluster-node: $what did not come up" >&2
  exit 1
}

ETCD_UNSUPPORTED_ARCH=${ETCD_UNSUPPORTED_ARCH-} run etcd "$ETCD" --name=node --data-dir="$W/etcd" \
  --listen-client-urls=http://127.0.0.1:2379 --advertise-client-urls=http://127.0.0.1:2379 \
  --listen-peer-urls=http://127.0.0.1:2380 --initial-advertise-peer-urls=http://127.0.0.1:2380 \
  --initial-cluster=node=http://127.0.0.1:2380 --unsafe-no-fsync --log-level=warn

run kube-apiserver "$KUBE_APISERVER" --etcd-servers=http://127.0.0.1:2379 \
  --advertise-address="$NODE_IP" --bind-address=0.0.0.0 --secure-port=6443 --cert-dir="$W/pki" \
  --tls-cert-file="$W/pki/apiserver.crt" --tls-private-key-file="$W/pki/apiserver.key" \
  --service-cluster-ip-range="$SERVICE_CIDR" --token-auth-file="$W/pki/tokens.csv" \
  --authorization-mode=Node,RBAC --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$W/pki/sa-signer.key" --service-account-signing-key-file="$W/pki/sa-signer.key" \
  --kubelet-preferred-address-types=InternalIP --v=1

common=(--kubeconfig="$W/admin.kubeconfig" --authentication-kubeconfig="$W/admin.kubeconfig"
  --authorization-kubeconfig="$W/admin.kubeconfig" --leader-elect=false --bind-address=127.0.0.1)
run kube-controller-manager "$KUBE_BIN/kube-controller-manager" "${common[@]}" --secure-port=10257 \
  --service-account-private-key-file="$W/pki/sa-signer.key" --root-ca-file="$W/pki/ca.crt" \
  --cluster-name=metalbox-test --use-service-account-credentials=false --v=1
run kube-scheduler "$KUBE_BIN/kube-scheduler" "${common[@]}" --secure-port=10259 --v=1

run containerd "$CONTAINERD" --config "$W/containerd.toml"
ctr=(ctr --address /run/containerd/containerd.sock --namespace k8s.io)
wait_for containerd "${ctr[@]}" version
"${ctr[@]}" images import "$PAUSE_IMAGE" >>"$W/logs/containerd.log" 2>&1

run kubelet "$KUBE_BIN/kubelet" --config="$W/kubelet.yaml" --kubeconfig="$W/admin.kubeconfig" \
  --node-ip="$NODE_IP" --hostname-override="$NODE_NAME" --v=1
run kube-proxy "$KUBE_BIN/kube-proxy" --config="$W/kube-proxy.yaml" --v=1

echo ready >"$W/started"
# Everything is stopped from outside (cluster-down.sh); this shell only keeps the namespace alive.
wait
