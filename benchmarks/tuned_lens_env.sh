#!/usr/bin/env bash
# Build tuned-lens's own pinned environment for benchmarks/tuned_lens_trainer.py.
#
# tuned-lens 0.2.0's trainer imports torchdata's datapipes (removed in torchdata 0.10) and
# passes load_in_8bit (removed in transformers 5), so it gets its own virtual environment:
# the CPU build of torch first (so nothing pulls a CUDA build), then tuned-lens with
# transformers 4.46 and torchdata 0.9 (the last release with datapipes, installed without
# its torch pin). Never part of the tests or the DAG.
#
# TRANSFORMERS picks another 4.x release: Gemma 3 needs 4.50 or newer
# (benchmarks/tuned_lens_load.py builds its environment with TRANSFORMERS=4.57.1).
#
# Usage: [TRANSFORMERS=4.x.y] benchmarks/tuned_lens_env.sh [ENV_DIR]   (default /tmp/tl-env)
set -euo pipefail
ENV=${1:-/tmp/tl-env}
TRANSFORMERS=${TRANSFORMERS:-4.46.3}
python3 -m venv "$ENV"
"$ENV/bin/pip" install -q "torch==2.13.0"
"$ENV/bin/pip" install -q "tuned-lens==0.2.0" "transformers==$TRANSFORMERS" "torch==2.13.0"
"$ENV/bin/pip" install -q --no-deps "torchdata==0.9.0"
"$ENV/bin/python" -c "import torchdata.datapipes, tuned_lens.scripts.train_loop; print('ok')"
