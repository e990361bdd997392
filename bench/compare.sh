#!/usr/bin/env bash
# Alternates etcd's write benchmark (bench/etcd/run.sh) and Apiary's
# (BenchmarkControlAPIWrite, procs=separate, 3 managers, empty store,
# create through the control socket) PAIRS times at each client count, and
# prints every run, then per client count the medians of writes/s, of p99
# and of the per-pair ratio Apiary / etcd.
#   bench/compare.sh [-pairs 5] [-clients 1,16,64] [-writes 8000] [--peer-tls]
# On a shared or virtual machine one run's figure moves by ±20% from one
# minute to the next (the same work's CPU time with it): a ratio means
# something only as the median of runs taken in turn.
set -euo pipefail
cd "$(dirname "$0")/.."
pairs=5 clients=1,16,64 writes=8000 tls=()
while (($#)); do
	case "$1" in
	-pairs) pairs=$2; shift 2 ;;
	-clients) clients=$2; shift 2 ;;
	-writes) writes=$2; shift 2 ;;
	--peer-tls) tls=(--peer-tls); shift ;;
	*) echo "usage: $0 [-pairs N] [-clients 1,16,64] [-writes N] [--peer-tls]" >&2; exit 2 ;;
	esac
done
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
go build -o "$dir/apiaryd" ./examples/apiaryd
go test -c -o "$dir/writebench.test" ./swarm/swarmtest
(cd bench/etcd && go build -o "$dir/etcdbench" .) # compiled once, not by each run.sh
out="$dir/runs"
for c in ${clients//,/ }; do
	for p in $(seq "$pairs"); do
		ETCDBENCH_BIN="$dir/etcdbench" bench/etcd/run.sh "${tls[@]}" -clients "$c" -writes "$writes" |
			awk -v c="$c" -v p="$p" '/writes\/s/{print "etcd", c, p, $5, $11; fflush()}' | tee -a "$out"
		(cd swarm/swarmtest && APIARY_WRITEBENCH_BIN="$dir/apiaryd" "$dir/writebench.test" -test.run '^$' \
			-test.bench "ControlAPIWrite/procs=separate/managers=3/store=empty/via=socket/op=create\$/clients=$c\$" \
			-test.benchtime "${writes}x") |
			awk -v c="$c" -v p="$p" '/writes\/s/{for(i=1;i<NF;i++){if($(i+1)=="writes/s")w=$i; if($(i+1)=="p99-ms")q=$i}; print "apiary", c, p, w, q; fflush()}' | tee -a "$out"
	done
done
echo "clients  etcd w/s (p99 ms)  Apiary w/s (p99 ms)  ratio (median of pairs)"
awk '
	function median(s,   n, a, i, j, t) {
		n = split(s, a, " ")
		for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
		return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
	}
	{ w[$1, $2] = w[$1, $2] " " $4; q[$1, $2] = q[$1, $2] " " $5; r[$1, $2, $3] = $4; cs[$2] = 1; ps[$3] = 1 }
	END {
		for (c in cs) {
			ratios = ""
			for (p in ps) if (r["etcd", c, p] > 0 && r["apiary", c, p] != "") ratios = ratios " " r["apiary", c, p] / r["etcd", c, p]
			printf "%7s  %8.0f (%5.1f)  %10.0f (%5.1f)  %.2f\n", c, median(w["etcd", c]), median(q["etcd", c]), median(w["apiary", c]), median(q["apiary", c]), median(ratios)
		}
	}' "$out" | sort -n
