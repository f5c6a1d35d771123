#!/bin/sh
# llama2c-out-of-tree.sh — the llama2.c format plugin example as a third
# party builds it (ctest label `abi`):
#  1. install the main build with --prefix <tmp>/stage<CMAKE_INSTALL_PREFIX>
#     (the SDK package is relocatable; nothing is written outside <tmp>);
#  2. configure + build examples/llama2c-format against that prefix only
#     (find_package(llmh-sdk)) and install it into the package's
#     LLMH_PLUGIN_DIR (inside that prefix);
#  3. the installed llmhost, with LLMH_PLUGIN_PATH unset, must pick the
#     plugin for stories260K.bin on its own (format "auto") and describe the
#     model; `plugin check` must accept it.
#
# usage: llama2c-out-of-tree.sh BUILD_DIR EXAMPLE_DIR CMAKE INSTALL_PREFIX C_COMPILER SHARED_DIR
set -eu
build=$1 example=$2 cmake=$3 install_prefix=$4 cc=$5 shared=$6

case $install_prefix in
/*) ;;
*) echo "FAIL: CMAKE_INSTALL_PREFIX '$install_prefix' is not absolute"; exit 1 ;;
esac
[ -f "$shared/models/stories260K.bin" ] || { echo "FIXTURE MISSING: $shared/models/stories260K.bin"; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/llmh-l2c-XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
stage=$tmp/stage
prefix=$stage$install_prefix

fail() {
    echo "FAIL: $*"
    exit 1
}

run_logged() { # name command...
    log=$tmp/$1.log
    shift
    if ! "$@" >"$log" 2>&1; then
        cat "$log"
        fail "$* (log above)"
    fi
}

echo "== stage-install the main build into $prefix"
run_logged install-main "$cmake" --install "$build" --prefix "$prefix"
[ -x "$prefix/bin/llmhost" ] || fail "no $prefix/bin/llmhost after install"

echo "== configure + build examples/llama2c-format against $prefix only"
run_logged configure env -u LLMH_PLUGIN_PATH "$cmake" -S "$example" -B "$tmp/example" \
    -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF \
    -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF -DCMAKE_C_COMPILER="$cc" \
    -DCMAKE_BUILD_TYPE=Release
grep -q "$prefix" "$tmp/example/CMakeCache.txt" || fail "the example did not use the SDK in $prefix"
plugin_dir=$(sed -n 's/.*llmh-sdk: plugins install into //p' "$tmp/configure.log")
[ -n "$plugin_dir" ] || fail "the example's configure did not report LLMH_PLUGIN_DIR"
run_logged build "$cmake" --build "$tmp/example"
run_logged install-example "$cmake" --install "$tmp/example"
plugin=$plugin_dir/libllmh-format-llama2c.so
[ -f "$plugin" ] || fail "the example was not installed at $plugin"

echo "== llmhost plugin check"
out=$tmp/out.txt
(cd "$tmp" && env -u LLMH_PLUGIN_PATH "$prefix/bin/llmhost" plugin check "$plugin") >"$out" 2>&1 || {
    cat "$out"
    fail "llmhost plugin check rejected $plugin"
}
grep -q "llama2c" "$out" || { cat "$out"; fail "plugin check did not describe 'llama2c'"; }

echo "== llmhost inspect stories260K.bin (format auto, LLMH_PLUGIN_PATH unset)"
(cd "$tmp" && env -u LLMH_PLUGIN_PATH "$prefix/bin/llmhost" inspect "$shared/models/stories260K.bin") >"$out" 2>&1 || {
    cat "$out"
    fail "llmhost inspect stories260K.bin failed"
}
cat "$out"
for p in "format:        llama2c (plugin llama2c 1.0.0, $plugin" 'architecture:  llama' \
    'block_count  *5$' 'attention.head_count_kv  *4$' 'vocab size  *512 (tokenizer.ggml.tokens)' \
    'bos  *1 "<s>"' 'eos  *2 "</s>"' 'tensors (48' 'total tensor bytes: 1171200'; do
    grep -q -- "$p" "$out" || fail "inspect output lacks '$p'"
done
echo "PASS"
