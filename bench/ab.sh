#!/usr/bin/env bash
# Alternates Apiary's write benchmark (BenchmarkControlAPIWrite, separate
# processes) between two variants, A and B, PAIRS times, and prints every
# run, then per variant the medians of writes/s, total CPU per write and
# p99, and the median of the per-pair ratios B / A, of the total and of
# each role's CPU per write (leader, each follower, client).
#   bench/ab.sh [-pairs 5] [-writes 30000] [-bench REGEX] [-env-a ENV] [-env-b ENV] [-flat] A B
# A and B are git revisions, each built in a worktree of its own, or "."
# for the working tree; the same revision twice with different -env-a and
# -env-b compares settings (say -env-b GOGC=200), which the daemons alone
# get (APIARY_WRITEBENCH_DAEMON_ENV). The default bench is the create at
# 64 clients through the leader's socket, the one bench/compare.sh sets
# against etcd.
#
# -flat measures issue 14's other figure instead: the update at 64 clients
# with an empty store and then with 1,000 services and 100,000 tasks, in
# each invocation (the 100k store takes ~50 s to fill), and reports per
# variant the medians of the per-invocation ratios 100k / empty of
# writes/s and of CPU per write, and B / A of those ratios, and what the
# 100k store adds to the leader's and a follower's CPU per write, and of
# that how much is their garbage collector's (leader- and
# follower-gc-us/write, the last two figures of each run's line).
#
# Why: on a shared or virtual machine one run's figure moves by ±20%, and
# this machine kind's host has been seen to change its speed by 2× within
# minutes (docs/benchmarks.md): a change of a few percent shows only in
# the medians of runs taken in turn, and in the CPU per write more than in
# writes/s.
set -euo pipefail
cd "$(dirname "$0")/.."
pairs=5 writes=30000 envA="" envB="" flat=""
bench='ControlAPIWrite/procs=separate/managers=3/store=empty/via=socket/op=create$/clients=64$'
usage() {
	echo "usage: $0 [-pairs N] [-writes N] [-bench REGEX] [-env-a ENV] [-env-b ENV] [-flat] A B" >&2
	exit 2
}
while (($#)); do
	case "$1" in
	-pairs) pairs=$2; shift 2 ;;
	-writes) writes=$2; shift 2 ;;
	-bench) bench=$2; shift 2 ;;
	-env-a) envA=$2; shift 2 ;;
	-env-b) envB=$2; shift 2 ;;
	-flat) flat=1 bench='ControlAPIWrite/procs=separate/managers=3/store=(empty|100k)/via=socket/op=update$/clients=64$'; shift ;;
	-*) usage ;;
	*) break ;;
	esac
done
(($# == 2)) || usage
dir=$(mktemp -d)
cleanup() {
	for v in a b; do
		[[ -d "$dir/wt-$v" ]] && git worktree remove --force "$dir/wt-$v" >/dev/null 2>&1
	done
	git worktree prune
	rm -rf "$dir"
}
trap cleanup EXIT

# build V REV: the daemon and the benchmark of REV, into $dir/V-*.
build() {
	local v=$1 rev=$2 src=.
	if [[ "$rev" != "." ]]; then
		src="$dir/wt-$v"
		git worktree add --detach --force "$src" "$rev" >/dev/null
	fi
	(cd "$src" && go build -o "$dir/$v-apiaryd" ./examples/apiaryd && go test -c -o "$dir/$v-writebench.test" ./swarm/swarmtest)
	echo "$src"
}
srcA=$(build a "$1")
srcB=$(build b "$2")

out="$dir/runs"
for p in $(seq "$pairs"); do
	for v in a b; do
		src=$srcA env=$envA
		if [[ $v == b ]]; then src=$srcB env=$envB; fi
		(cd "$src/swarm/swarmtest" && APIARY_WRITEBENCH_BIN="$dir/$v-apiaryd" APIARY_WRITEBENCH_DAEMON_ENV="$env" \
			"$dir/$v-writebench.test" -test.run '^$' -test.bench "$bench" -test.benchtime "${writes}x" -test.timeout 2h) |
			awk -v v="$v" -v p="$p" '/writes\/s/{
				for (i = 1; i < NF; i++) {
					if ($(i+1) == "writes/s") w = $i
					if ($(i+1) == "p99-ms") q = $i
					if ($(i+1) == "total-cpu-us/write") c = $i
					if ($(i+1) == "leader-cpu-us/write") l = $i
					if ($(i+1) == "follower-cpu-us/write") f = $i
					if ($(i+1) == "client-cpu-us/write") k = $i
					if ($(i+1) == "leader-gc-us/write") lg = $i
					if ($(i+1) == "follower-gc-us/write") fg = $i
				}
				st = $1; sub(/.*store=/, "", st); sub(/\/.*/, "", st)
				print v, p, w, c, q, st, l, f, k, lg, fg; fflush()
			}' | tee -a "$out"
	done
done
# median(s): the median of the numbers in the string s.
median='
	function median(s,   n, x, i, j, t) {
		n = split(s, x, " ")
		for (i = 2; i <= n; i++) for (j = i; j > 1 && x[j-1] + 0 > x[j] + 0; j--) { t = x[j]; x[j] = x[j-1]; x[j-1] = t }
		return n % 2 ? x[(n+1)/2] : (x[n/2] + x[n/2+1]) / 2
	}'
if [[ -n $flat ]]; then
	echo "variant  100k / empty: writes/s  CPU per write   (medians of the invocations' ratios)"
	awk -v a="$1 $envA" -v b="$2 $envB" "$median"'
		{ w[$1, $2, $6] = $3; c[$1, $2, $6] = $4; l[$1, $2, $6] = $7; f[$1, $2, $6] = $8
		  lg[$1, $2, $6] = $10; fg[$1, $2, $6] = $11; ps[$2] = 1 }
		END {
			for (p in ps) for (v = 0; v < 2; v++) {
				x = v ? "b" : "a"
				if (w[x, p, "empty"] > 0 && w[x, p, "100k"] != "") {
					rw[x] = rw[x] " " w[x, p, "100k"] / w[x, p, "empty"]
					rc[x] = rc[x] " " c[x, p, "100k"] / c[x, p, "empty"]
					dl[x] = dl[x] " " l[x, p, "100k"] - l[x, p, "empty"]
					df[x] = df[x] " " f[x, p, "100k"] - f[x, p, "empty"]
					if (lg[x, p, "100k"] != "" && lg[x, p, "empty"] != "") {
						dlg[x] = dlg[x] " " lg[x, p, "100k"] - lg[x, p, "empty"]
						dfg[x] = dfg[x] " " fg[x, p, "100k"] - fg[x, p, "empty"]
					}
				}
			}
			printf "A %-20s %.3f  %.3f   (%s)\n", a, median(rw["a"]), median(rc["a"]), rw["a"]
			printf "B %-20s %.3f  %.3f   (%s)\n", b, median(rw["b"]), median(rc["b"]), rw["b"]
			printf "CPU per write the 100k store adds (µs, medians): A leader %.0f, each follower %.0f; B leader %.0f, each follower %.0f\n",
				median(dl["a"]), median(df["a"]), median(dl["b"]), median(df["b"])
			for (v = 0; v < 2; v++) {
				x = v ? "b" : "a"
				if (dlg[x] != "")
					printf "of which garbage collection (µs, medians): %s leader %.0f, each follower %.0f\n", toupper(x), median(dlg[x]), median(dfg[x])
			}
		}' "$out"
	exit 0
fi
echo "variant  writes/s  total CPU µs/write  p99 ms   (medians; ratio: median of the pairs' B / A)"
awk -v a="$1 $envA" -v b="$2 $envB" "$median"'
	{ w[$1] = w[$1] " " $3; c[$1] = c[$1] " " $4; q[$1] = q[$1] " " $5; r[$1, $2] = $3; rc[$1, $2] = $4
	  rl[$1, $2] = $7; rf[$1, $2] = $8; rk[$1, $2] = $9; ps[$2] = 1 }
	END {
		printf "A %-20s %8.0f  %8.1f  %7.1f\n", a, median(w["a"]), median(c["a"]), median(q["a"])
		printf "B %-20s %8.0f  %8.1f  %7.1f\n", b, median(w["b"]), median(c["b"]), median(q["b"])
		for (p in ps) if (r["a", p] > 0 && r["b", p] != "") {
			ratios = ratios " " r["b", p] / r["a", p]; cpu = cpu " " rc["b", p] / rc["a", p]
			if (rl["a", p] > 0 && rf["a", p] > 0 && rk["a", p] > 0) {
				lead = lead " " rl["b", p] / rl["a", p]; foll = foll " " rf["b", p] / rf["a", p]; cli = cli " " rk["b", p] / rk["a", p]
			}
		}
		printf "B / A: writes/s %.3f, total CPU per write %.3f\n", median(ratios), median(cpu)
		# Per role: a change to one role shows there, where the noise of
		# the total hides it.
		if (lead != "") printf "B / A, CPU per write: leader %.3f, each follower %.3f, client %.3f\n", median(lead), median(foll), median(cli)
	}' "$out"
