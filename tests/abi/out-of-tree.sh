#!/bin/sh
# out-of-tree.sh — the SDK as a third party sees it (ctest label `abi`).
#
#  1. install the main build with --prefix <tmp>/stage<CMAKE_INSTALL_PREFIX>
#     (the SDK package is relocatable; nothing is written outside <tmp>);
#  2. configure + build examples/out-of-tree-plugin against that prefix only
#     (find_package(llmh-sdk) with -DCMAKE_PREFIX_PATH=<prefix>);
#  3. install it into the package's LLMH_PLUGIN_DIR (inside that prefix);
#  4. run the installed <prefix>/bin/llmhost with LLMH_PLUGIN_PATH unset and
#     check that it lists the plugin from the staged plugin dir, loads its own
#     installed libllmh (RPATH), and that `plugin check` accepts the plugin.
#
# usage: out-of-tree.sh BUILD_DIR EXAMPLE_DIR CMAKE INSTALL_PREFIX C_COMPILER
set -eu
build=$1 example=$2 cmake=$3 install_prefix=$4 cc=$5

case $install_prefix in
/*) ;;
*) echo "FAIL: CMAKE_INSTALL_PREFIX '$install_prefix' is not absolute"; exit 1 ;;
esac

tmp=$(mktemp -d "${TMPDIR:-/tmp}/llmh-oot-XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
stage=$tmp/stage
prefix=$stage$install_prefix

fail() {
    echo "FAIL: $*"
    exit 1
}

run_logged() { # name command... : run, show the log on failure
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
config=$(find "$prefix" -name llmh-sdk-config.cmake | head -n 1)
[ -n "$config" ] || fail "no llmh-sdk-config.cmake installed under $prefix"

echo "== configure + build the example against $prefix only"
run_logged configure env -u LLMH_PLUGIN_PATH "$cmake" -S "$example" -B "$tmp/example" \
    -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF \
    -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF -DCMAKE_C_COMPILER="$cc" \
    -DCMAKE_BUILD_TYPE=Release
# The package it found must be the staged one.
grep -q "$prefix" "$tmp/example/CMakeCache.txt" || fail "example did not use the SDK in $prefix"
plugin_dir=$(sed -n 's/.*llmh-sdk: plugins install into //p' "$tmp/configure.log")
[ -n "$plugin_dir" ] || fail "the example's configure did not report LLMH_PLUGIN_DIR"
run_logged build "$cmake" --build "$tmp/example"

echo "== install the example into LLMH_PLUGIN_DIR ($plugin_dir)"
run_logged install-example "$cmake" --install "$tmp/example"
plugin=$plugin_dir/libllmh-sampler-xtc.so
[ -f "$plugin" ] || fail "example not installed at $plugin"

echo "== the installed llmhost uses the installed libllmh"
ldd "$prefix/bin/llmhost" >"$tmp/ldd.log" 2>&1 || true
grep "libllmh" "$tmp/ldd.log" | grep -q "$prefix" || {
    cat "$tmp/ldd.log"
    fail "$prefix/bin/llmhost does not load libllmh from $prefix (RPATH)"
}

echo "== llmhost plugins (LLMH_PLUGIN_PATH unset)"
out=$tmp/plugins.txt
(cd "$tmp" && env -u LLMH_PLUGIN_PATH "$prefix/bin/llmhost" plugins) >"$out" 2>&1 || {
    cat "$out"
    fail "llmhost plugins failed"
}
cat "$out"
grep -E "^sampler +xtc +1\.0\.0 +1\.[0-9]+ +" "$out" | grep -q "$plugin" ||
    fail "the example plugin 'xtc' ($plugin) is not listed"
# Nothing may come from the build tree: this is the installed program.
if grep -q "$build/" "$out"; then fail "llmhost listed plugins from the build tree $build"; fi

echo "== llmhost plugin check"
(cd "$tmp" && env -u LLMH_PLUGIN_PATH "$prefix/bin/llmhost" plugin check "$plugin") >"$out" 2>&1 || {
    cat "$out"
    fail "llmhost plugin check rejected $plugin"
}
cat "$out"
grep -q "^name: *xtc$" "$out" || fail "plugin check did not describe 'xtc'"
grep -q "^result: *ok" "$out" || fail "plugin check did not report ok"
echo "PASS"
