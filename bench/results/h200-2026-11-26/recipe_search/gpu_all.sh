# One device call: training-recipe search (PyTorch, parallel), then the GPU kernel check.
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 RCACHE=${RCACHE:-/tmp/rcache}; mkdir -p $RCACHE
OUT=${OUT:-/tmp/out}; mkdir -p $OUT /tmp/rlogs
N=${N:-30000}; E=${E:-15}; SEARCH_S=${SEARCH_S:-200}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $OUT/device.txt 2>&1
t0=$(date +%s)
timeout 60 python .scratch/recipe.py --gen $N > /tmp/rlogs/gen.log 2>&1; echo "gen rc $? $(( $(date +%s) - t0 )) s" >> $OUT/recipes.txt
while read -r cfg; do
  name=$(python -c "import json,sys; print(json.loads(sys.argv[1])['name'])" "$cfg")
  OMP_NUM_THREADS=1 timeout $SEARCH_S python .scratch/recipe.py --one $N "$cfg" > /tmp/rlogs/$name.log 2>&1 &
done < <(python .scratch/configs2.py $E)
wait
for f in /tmp/rlogs/*.log; do echo "== $f"; grep -v Warning $f | tail -n 20; done >> $OUT/recipes.txt
echo "search done $(( $(date +%s) - t0 )) s" >> $OUT/recipes.txt
export DEEPINSIDE_CACHE=/tmp/dcache
timeout 60 python .scratch/sal64.py 16 > $OUT/sal64.txt 2>&1

timeout ${TRAIN_S:-50} python -m viz.cli train --backend cuda --images 3200 --epochs 1 --out /tmp/t.safetensors > $OUT/train_cuda.txt 2>&1; echo "train rc $?" >> $OUT/train_cuda.txt
echo "all done $(( $(date +%s) - t0 )) s"
cat $OUT/sal64.txt; tail -n 5 $OUT/train_cuda.txt
