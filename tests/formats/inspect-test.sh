#!/bin/sh
# inspect-test.sh LLMHOST SHARED_DIR — `llmhost inspect` on real fixtures:
# the summary lines a user relies on must be there, errors must say why.
set -u
llmhost=$1
shared=$2
fail=0
out=$(mktemp)
trap 'rm -f "$out"' EXIT

expect() { # expect FILE PATTERN...
    f=$1; shift
    for p in "$@"; do
        if ! grep -q -- "$p" "$out"; then
            echo "FAIL: inspect $f: no line matching '$p'"; fail=1
        fi
    done
}

"$llmhost" inspect "$shared/models/stories260K.gguf" >"$out" 2>&1 || { echo "FAIL: inspect stories260K"; cat "$out"; fail=1; }
expect stories260K 'architecture:  llama' 'block_count  *5$' 'attention.head_count  *8$' \
    'attention.head_count_kv  *4$' 'vocab size  *512 (tokenizer.ggml.tokens)' 'bos  *1 "<s>"' \
    'eos  *2 "</s>"' 'chat template  *no' 'token_embd.weight  *f32  *\[64, 512\]  *131072' \
    'tensors (48' 'total tensor bytes: 1171200'

"$llmhost" inspect --kv --no-tensors "$shared/models/qwen2-tiny-q8_0.gguf" >"$out" 2>&1 || { echo "FAIL: inspect q8_0"; fail=1; }
expect qwen2-q8_0 'architecture:  qwen2' 'model  *gpt2 (pre-tokenizer qwen2)' 'vocab size  *151936' \
    'chat template  *yes (2507 bytes)' 'tokenizer.ggml.tokens  *array  *\[string x 151936\]' \
    'tokenizer.ggml.merges  *array  *\[string x 151387\]' 'llmh.source_format  *string "gguf"'

"$llmhost" inspect "$shared/models/llama-tiny-hf" >"$out" 2>&1 || { echo "FAIL: inspect llama-tiny-hf"; fail=1; }
expect llama-tiny-hf 'format:        safetensors' 'rope.freq_base  *500000' 'tokenizer.json' \
    'blk.0.attn_q.weight  *bf16  *\[64, 64\]  *8192  (plugin memory' 'tensors (20'

# errors: unrecognized file, forced wrong plugin
if "$llmhost" inspect "$shared/README.md" >"$out" 2>&1; then echo "FAIL: README.md accepted"; fail=1; fi
expect README 'no format plugin recognizes'
if "$llmhost" inspect --format safetensors "$shared/models/stories260K.gguf" >"$out" 2>&1; then
    echo "FAIL: forced safetensors on a GGUF accepted"; fail=1
fi
expect forced 'stories260K.gguf: header length'

[ $fail -eq 0 ] && echo "inspect: all checks passed"
exit $fail
