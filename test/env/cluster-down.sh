#!/usr/bin/env bash
# Tears the test cluster down, whatever state it is in: kills every process in its network
# namespace (the components, containerd's shims) and in its Pods' cgroups (the containers, which
# run in network namespaces of their own), removes those cgroups, then the network namespace with
# its veth pair. The private mount namespace, and every mount in it, ends with its last process.
# Idempotent; run by test/env/cluster.ts on stop and from its exit hook.
# Usage: cluster-down.sh <netns> <cgroup root name> <host veth>
set -uo pipefail
netns=$1 cgroot=$2 veth=$3
cgroups() { for d in /sys/fs/cgroup/*/"$cgroot"; do [[ -d $d ]] && printf '%s\n' "$d"; done; }
for _ in $(seq 100); do
  pids=$({
    ip netns pids "$netns" 2>/dev/null
    for d in $(cgroups); do find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null; done
  } | sort -u)
  [[ -z $pids ]] && break
  # shellcheck disable=SC2086
  kill -9 $pids 2>/dev/null
  sleep 0.1
done
for d in $(cgroups); do find "$d" -depth -type d -exec rmdir {} + 2>/dev/null; done
ip netns del "$netns" 2>/dev/null
ip link del "$veth" 2>/dev/null
exit 0
