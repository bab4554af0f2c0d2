# One device call: one round of the recipe search (all its configs at once, each for the steps
# the engine affords in 30 minutes on two CPU cores).  ROUND=1 SEARCH_S=390 bash gpu_search.sh
set -u
DIR=$(cd "$(dirname "$0")" && pwd); ROUND=${ROUND:?ROUND=1, 2 or 3}; cd "$DIR/../../../.."
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 RCACHE=/tmp/rcache; mkdir -p $RCACHE /tmp/rlogs
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $OUT/device.txt 2>&1
t0=$(date +%s)
timeout 90 python $DIR/recipe.py --gen 30000 > /tmp/rlogs/gen.log 2>&1; echo "gen rc $? $(( $(date +%s) - t0 )) s" > $OUT/search.txt
while read -r cfg; do
  name=$(python -c "import json,sys; print(json.loads(sys.argv[1])['name'])" "$cfg")
  OMP_NUM_THREADS=1 timeout ${SEARCH_S:-400} python $DIR/recipe.py --one 30000 "$cfg" > /tmp/rlogs/$name.log 2>&1 &
done < <(python $DIR/configs.py $ROUND)
wait
for f in /tmp/rlogs/*.log; do echo "== $f"; grep -v Warning $f | tail -n 30; done >> $OUT/search.txt
echo "search done $(( $(date +%s) - t0 )) s" >> $OUT/search.txt
tail -n 3 /tmp/rlogs/*.log
