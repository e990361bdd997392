#!/usr/bin/env bash
# Starts three etcd members (Debian's etcd-server) on loopback in a fresh
# temporary directory, runs the write benchmark against them and stops them.
#   bench/etcd/run.sh [--peer-tls] [-clients 1,16,64] [-writes 4000]
# --peer-tls makes the members talk to each other over mutual TLS (ECDSA
# P-256 certificates from a CA made here), as Apiary's managers always do;
# without it they talk plain HTTP. The clients use plain HTTP either way,
# as BenchmarkControlAPIWrite's via=socket clients use the control socket.
set -euo pipefail
cd "$(dirname "$0")"
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait; rm -rf "$dir"' EXIT
scheme=http
tls=()
if [[ "${1:-}" == "--peer-tls" ]]; then
	shift
	scheme=https
	openssl ecparam -name prime256v1 -genkey -noout -out "$dir/ca.key"
	openssl req -x509 -new -key "$dir/ca.key" -subj /CN=bench-ca -days 1 -out "$dir/ca.crt"
	openssl ecparam -name prime256v1 -genkey -noout -out "$dir/peer.key"
	openssl req -new -key "$dir/peer.key" -subj /CN=peer -out "$dir/peer.csr"
	printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' >"$dir/ext"
	openssl x509 -req -in "$dir/peer.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
		-days 1 -extfile "$dir/ext" -out "$dir/peer.crt" 2>/dev/null
	tls=(--peer-cert-file "$dir/peer.crt" --peer-key-file "$dir/peer.key"
		--peer-trusted-ca-file "$dir/ca.crt" --peer-client-cert-auth)
fi
pids=()
cluster="e1=$scheme://127.0.0.1:23801,e2=$scheme://127.0.0.1:23802,e3=$scheme://127.0.0.1:23803"
for i in 1 2 3; do
	etcd --name e$i --data-dir "$dir/e$i" \
		--listen-client-urls http://127.0.0.1:2379$i --advertise-client-urls http://127.0.0.1:2379$i \
		--listen-peer-urls $scheme://127.0.0.1:2380$i --initial-advertise-peer-urls $scheme://127.0.0.1:2380$i \
		--initial-cluster "$cluster" --initial-cluster-state new --log-level error "${tls[@]}" >"$dir/e$i.log" 2>&1 &
	pids+=($!)
done
for _ in $(seq 100); do
	etcdctl --endpoints 127.0.0.1:23791,127.0.0.1:23792,127.0.0.1:23793 endpoint health >/dev/null 2>&1 && break
	sleep 0.1
done
pidlist=$(IFS=,; echo "${pids[*]}")
if [[ -n "${ETCDBENCH_BIN:-}" ]]; then # built already (bench/compare.sh)
	"$ETCDBENCH_BIN" -pids "$pidlist" "$@"
else
	go run . -pids "$pidlist" "$@"
fi
