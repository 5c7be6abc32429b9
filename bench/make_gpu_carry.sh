#!/usr/bin/env bash
# Builds outputs/gpu_carry/bitsandbytes for bench/gpu_check.py on the GPU machine, which has torch,
# transformers and peft but no bitsandbytes and no registry to install it from. The venv's wheel is
# ~125 MB (one library per CUDA/ROCm/XPU version); the carry keeps its Python files, its dist-info
# and the one CUDA library that machine's torch loads (~5 MB), and travels with the `run` tool's
# carry: ["outputs/gpu_carry"] (outputs/ is git-ignored) on PYTHONPATH=outputs/gpu_carry:platform.
#
#   bench/make_gpu_carry.sh            # CUDA 13.0: torch 2.11.0+cu130 there
#   BNB_CUDA=128 bench/make_gpu_carry.sh   # another CUDA, if that machine's torch.version.cuda differs
set -euo pipefail
cd "$(dirname "$0")/.."

cuda="${BNB_CUDA:-130}"
src="$(.venv/bin/python -c 'import importlib.util as u; print(u.find_spec("bitsandbytes").submodule_search_locations[0])')"
site="$(dirname "$src")"
library="libbitsandbytes_cuda${cuda}.so"
if [[ ! -f "$src/$library" ]]; then
    have="$(cd "$src" && ls libbitsandbytes_cuda*.so 2>/dev/null | sed 's/libbitsandbytes_cuda\(.*\)\.so/\1/' | tr '\n' ' ')"
    echo "error: BNB_CUDA=$cuda: the venv's bitsandbytes has no $library; it has CUDA versions: ${have:-none}" >&2
    exit 1
fi

dest=outputs/gpu_carry
rm -rf "$dest"
mkdir -p "$dest/bitsandbytes"
(cd "$src" && find . -name '*.py' -not -path '*/__pycache__/*' -print0 | tar --null -cf - -T - "$library" py.typed) \
    | tar -C "$dest/bitsandbytes" -xf -
cp -r "$site"/bitsandbytes-*.dist-info "$dest/"
echo "$dest: $(du -sh "$dest" | cut -f1) (bitsandbytes $(sed -n 's/^Version: //p' "$dest"/bitsandbytes-*.dist-info/METADATA), $library)"
echo "run on the GPU machine (carry: [\"$dest\"], timeout_s: 540):"
echo "  PYTHONPATH=$dest:platform PYTHONUNBUFFERED=1 python3 bench/gpu_check.py --out \$OUT/gpu_check.json"
