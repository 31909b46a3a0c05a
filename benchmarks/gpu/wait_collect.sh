#!/bin/bash
# Wait (at most SECONDS) for distill_fer2013.sh's background job in W, then copy its results to
# $OUT: the log, one tar of every run's summary, metrics, recipe and epoch log, and the students'
# weights (the teachers' 19 MB files stay: the device tool returns files of at most 16 MiB).
W=${1:-/tmp/kd}; LIMIT=${2:-550}
start=$SECONDS
while [ $((SECONDS - start)) -lt $LIMIT ] && [ ! -f $W/ALL_DONE ]; do
  sleep 10
  kill -0 "$(cat $W/PID 2>/dev/null)" 2>/dev/null || { echo "the pipeline is not running"; break; }
  if [ $(((SECONDS - start) % 120)) -lt 10 ]; then
    echo "[$(date +%T)] gpu: $(nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader)"
  fi
done
cp /tmp/kd.log $OUT/ 2>/dev/null
(cd $W && tar cf $OUT/results.tar --exclude='*.ckpt' --exclude='*.safetensors' \
   --exclude='tensorboard' --exclude='fer2013.csv*' . 2>/dev/null)
# the students' weights (1.2-4.7 MB); an unfinished student's best checkpoint so far
for run in $(cut -d' ' -f1 $W/STUDENTS 2>/dev/null); do
  if [ -f $W/$run/best.safetensors ]; then cp $W/$run/best.safetensors $OUT/$run.safetensors
  elif [ -f $W/$run/checkpoints/best.ckpt ]; then cp $W/$run/checkpoints/best.ckpt $OUT/$run.best.ckpt
  fi
done
ls -la $OUT; grep -v -i warn /tmp/kd.log | tail -30
