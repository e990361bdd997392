#!/usr/bin/env bash
# Starts three etcd members (Debian's etcd-server) on loopback in a fresh
# temporary directory, runs the write benchmark against them and stops them.
#   bench/etcd/run.sh [-clients 1,16,64] [-writes 4000]
set -euo pipefail
cd "$(dirname "$0")"
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait; rm -rf "$dir"' EXIT
cluster="e1=http://127.0.0.1:23801,e2=http://127.0.0.1:23802,e3=http://127.0.0.1:23803"
for i in 1 2 3; do
	etcd --name e$i --data-dir "$dir/e$i" \
		--listen-client-urls http://127.0.0.1:2379$i --advertise-client-urls http://127.0.0.1:2379$i \
		--listen-peer-urls http://127.0.0.1:2380$i --initial-advertise-peer-urls http://127.0.0.1:2380$i \
		--initial-cluster "$cluster" --initial-cluster-state new --log-level error >"$dir/e$i.log" 2>&1 &
done
for _ in $(seq 100); do
	etcdctl --endpoints 127.0.0.1:23791,127.0.0.1:23792,127.0.0.1:23793 endpoint health >/dev/null 2>&1 && break
	sleep 0.1
done
go run . "$@"
