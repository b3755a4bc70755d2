#!/usr/bin/env bash
# Peak memory and wall time of one LM extraction job, this tree against an earlier commit,
# on the same shard of a finished run; and whether the two shards are byte-identical.
#
# Usage: bash benchmarks/extract_peak.sh RUN_DIR MODEL BEFORE_REV OUT.json [CONFIG...]
#   e.g. bash benchmarks/extract_peak.sh /tmp/g3 gemma3 6ee5f0a \
#          benchmarks/results/gemma3_extract_peak.json config/config.yaml config/gemma3.yaml
# RUN_DIR holds the run's results/ (its model folder, readout, tokenizer and tokens); the job's
# command is the one the DAG would run (snakemake -n -p), writing to a temporary file instead.
set -euo pipefail
run=$(realpath "$1"); model=$2; before=$3; out=$(realpath -m "$4"); shift 4
here=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d); trap 'git -C "$here" worktree remove --force "$tmp/before" >/dev/null 2>&1; rm -rf "$tmp"' EXIT
git -C "$here" worktree add -q --detach "$tmp/before" "$before"
configs=(); for c in "$@"; do configs+=("$here/$c"); done
cmd=$(cd "$run" && PYTHONPATH="$here/src" snakemake -s "$here/Snakefile" -n -p --forcerun extract_shard \
      "results/probed/$model/acts/lensfit/shard-00000.safetensors" --configfile "${configs[@]}" 2>/dev/null \
      | grep "iterlens extract-shard .*--model results/models/$model .*--split lensfit --index 00000" \
      | sed -n '1s/^Shell command: //; 1s/ > .*$//p')
[ -n "$cmd" ] || { echo "no extract_shard job of $model in $run" >&2; exit 1; }
for side in before after; do
  src="$here/src"; [ "$side" = before ] && src="$tmp/before/src"
  shard="$tmp/$side.safetensors"
  (cd "$run" && PYTHONPATH="$src" python "$here/benchmarks/peak_memory.py" --out "$tmp/$side.json" -- \
      bash -c "${cmd/--out results\/probed\/$model\/acts\/lensfit\/shard-00000.safetensors/--out $shard}" >/dev/null 2>&1)
done
python - "$tmp" "$before" "$(git -C "$here" rev-parse --short HEAD)" "$out" <<'PY'
import filecmp, json, sys
tmp, before, after, out = sys.argv[1:]
sides = {s: json.load(open(f"{tmp}/{s}.json")) for s in ("before", "after")}
result = {
    "date": sides["after"]["date"], "machine": sides["after"]["machine"],
    "command": sides["after"]["command"],
    "before": {"commit": before, **{k: sides["before"][k] for k in ("wall_s", "peak_rss_gib")}},
    "after": {"commit": after + " (+ working tree)", **{k: sides["after"][k] for k in ("wall_s", "peak_rss_gib")}},
    "shards_identical": filecmp.cmp(f"{tmp}/before.safetensors", f"{tmp}/after.safetensors", shallow=False),
}
json.dump(result, open(out, "w"), indent=1)
print(json.dumps(result, indent=1))
PY
