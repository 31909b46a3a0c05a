#!/bin/bash
# The default model's GPU pipeline, run as one background job on a lent GPU machine (the device
# tool; see benchmarks/results/README.md): three FERNet-L teachers (seeds 0-2) -> their ensemble on
# PublicTest -> FERNet-S/M students distilled from it. Epoch counts are fitted to the time budgets
# from a one-epoch probe. Usage (repo root, data carried in .gpu/):
#   setsid nohup bash benchmarks/gpu/distill_fer2013.sh /tmp/kd TEACHER_S STUDENT_S > /tmp/kd.log 2>&1 &
set -u
W=${1:-/tmp/kd}; TEACHER_BUDGET=${2:-420}; STUDENT_BUDGET=${3:-480}
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
mkdir -p $W
R=$W/fer2013.csv.gz
stamp() { echo "[$(date +%T)] $*"; }
stamp start; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, lightning; print('torch', torch.__version__, 'lightning', lightning.__version__)"
[ -f $R ] || python3 benchmarks/gpu/fer2013_pack.py unpack .gpu/fer2013.xz $R || exit 1
stamp data ready
common="data.root=$R trainer.progress_bar=false trainer.deterministic=false ${EXTRA:-}"
# seconds an epoch from a probe's training throughput (28,709 faces; +10 % for validation and
# checkpoints), which leaves out the one-off start-up a probe's wall time holds
epoch_seconds() { python3 -c "import json,sys; s=json.load(open(sys.argv[1])); print(28709 / s['train_images_per_second'] * 1.1 + 0.5)" $1/summary.json; }
fit_epochs() { python3 -c "import sys; print(max(${MIN_EPOCHS:-5}, min(int(sys.argv[3]), int(float(sys.argv[1]) / float(sys.argv[2])))))" $1 $2 $3; }

# -- teachers ---------------------------------------------------------------------------------
for s in 0 1 2; do
  python3 -m openfer train --recipe fernet_l_fer2013 $common trainer.seed=$s trainer.max_epochs=1 \
      --output $W/probe_t$s > $W/probe_t$s.log 2>&1 &
done; wait
T=$(epoch_seconds $W/probe_t0); ET=$(fit_epochs $TEACHER_BUDGET $T 200)
stamp "teacher probe: $T s/epoch (3 side by side) -> $ET epochs"
for s in 0 1 2; do
  timeout $((TEACHER_BUDGET * 2)) python3 -m openfer train --recipe fernet_l_fer2013 $common \
      trainer.seed=$s trainer.max_epochs=$ET --output $W/teacher$s > $W/teacher$s.log 2>&1 &
done; wait
stamp teachers done
for s in 0 1 2; do python3 -c "import json; s=json.load(open('$W/teacher$s/summary.json')); print('teacher$s', s['epochs'], s['wall_seconds'], s['metrics'])"; done
python3 -m openfer eval --model $W/teacher0/best.safetensors --model $W/teacher1/best.safetensors \
    --model $W/teacher2/best.safetensors --dataset fer2013 --root $R --split PublicTest --json \
    > $W/ensemble_publictest.json
python3 -m openfer eval --model $W/teacher0/best.safetensors --model $W/teacher1/best.safetensors \
    --model $W/teacher2/best.safetensors --dataset fer2013 --root $R --split PublicTest --json --tta \
    > $W/ensemble_publictest_tta.json
python3 -c "import json; [print(f, {k: json.load(open('$W/'+f))[k] for k in ('accuracy','mean_class_accuracy','macro_f1')}) for f in ('ensemble_publictest.json','ensemble_publictest_tta.json')]"
touch $W/TEACHERS_DONE

# -- students ---------------------------------------------------------------------------------
teachers="distill.teachers=[$W/teacher0,$W/teacher1,$W/teacher2]"
variants=("s_a09_t2 model.name=fernet_s"
          "s_a1_t1 model.name=fernet_s distill.alpha=1.0 distill.temperature=1.0"
          "s_a09_t4_nomix model.name=fernet_s distill.temperature=4.0 augment.mixup=0"
          "m_a09_t2 model.name=fernet_m")
for v in "${variants[@]}"; do
  set -- $v; name=$1; shift
  python3 -m openfer train --recipe fernet_s_distill_fer2013 $common "$teachers" \
      trainer.max_epochs=1 "$@" --output $W/probe_$name > $W/probe_$name.log 2>&1 &
done; wait
S=$(epoch_seconds $W/probe_m_a09_t2); ES=$(fit_epochs $STUDENT_BUDGET $S 300)
stamp "student probe: $S s/epoch (${#variants[@]} side by side) -> $ES epochs each"
for v in "${variants[@]}"; do
  set -- $v; name=$1; shift
  timeout $((STUDENT_BUDGET * 2)) python3 -m openfer train --recipe fernet_s_distill_fer2013 $common \
      "$teachers" trainer.max_epochs=$ES "$@" --output $W/$name > $W/$name.log 2>&1 &
done; wait
stamp students done
for v in "${variants[@]}"; do set -- $v; python3 -c "import json; s=json.load(open('$W/$1/summary.json')); print('$1', s['epochs'], s['wall_seconds'], s['metrics'])"; done
touch $W/ALL_DONE
