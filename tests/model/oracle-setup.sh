#!/bin/sh
# oracle-setup.sh PYTHON SHARED_DIR OUT_DIR — ctest fixture for test-model-oracle:
# generate a tiny qwen3 model (GGUF + HF) with ../shared/tools/mkmodel.py and
# compute reference logits with the independent numpy forward pass.
set -eu
py=$1 shared=$2 out=$3
here=$(dirname "$0")
tokens="785 6722 315 9625 374 1 2 3 100 1000 5000"
rm -rf "$out"
mkdir -p "$out"
"$py" "$here/hf-oracle.py" make "$shared/tools/mkmodel.py" "$shared/models/qwen2-tiny-hf" "$out" >/dev/null
"$py" "$here/hf-oracle.py" logits "$out/qwen3-tiny-hf" "$out/qwen3" $tokens
"$py" "$here/hf-oracle.py" logits "$shared/models/qwen2-tiny-hf" "$out/qwen2" $tokens
echo "oracle fixtures written to $out"
