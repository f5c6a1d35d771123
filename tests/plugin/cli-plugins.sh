#!/bin/sh
# cli-plugins.sh — `llmhost plugins` and `llmhost plugin check` against the
# registry test plugins (ctest label `plugin`).
# usage: cli-plugins.sh LLMHOST REGTEST_PLUGIN_DIR
set -eu
llmhost=$1 dir=$2
tmp=$(mktemp -d "${TMPDIR:-/tmp}/llmh-cli-XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
fail() {
    echo "FAIL: $*"
    [ -f "$tmp/out" ] && cat "$tmp/out"
    exit 1
}

# Table: the good plugin listed with its columns, then a refused: section
# naming each broken file with its reason.
LLMH_PLUGIN_PATH=$dir "$llmhost" plugins >"$tmp/out" 2>&1 || fail "llmhost plugins exited $?"
grep -q "^KIND  *NAME  *VERSION  *ABI  *PATH  *DESCRIPTION" "$tmp/out" || fail "no table header"
grep -E "^sampler +regtest-good +1\.2\.3 +1\.[0-9]+ +$dir/libllmh-sampler-regtest-good\.so +llmhost registry test plugin \(provides: regtest_a regtest_b\)$" \
    "$tmp/out" >/dev/null || fail "regtest-good row missing or malformed"
grep -q "^refused:$" "$tmp/out" || fail "no refused: section"
grep -q "^  $dir/libllmh-sampler-regtest-minor.so: ABI mismatch: plugin built for 1\.[0-9]*, host is 1\.[0-9]* (needs minor <= [0-9]*)$" \
    "$tmp/out" || fail "minor ABI refusal line"
grep -q "^  $dir/libllmh-sampler-regtest-nodesc.so: not a plugin (no llmh_plugin_describe symbol)$" \
    "$tmp/out" || fail "no-descriptor refusal line"
grep -q "^  $dir/libllmh-sampler-regtest-probe0.so: probe returned 0: regtest: no frobnicator on this machine$" \
    "$tmp/out" || fail "probe refusal line"
if grep -q "^sampler  *regtest-probe0 " "$tmp/out"; then fail "a refused plugin is listed as usable"; fi

# JSON: parseable, same content.
LLMH_PLUGIN_PATH=$dir "$llmhost" plugins --json >"$tmp/out" 2>/dev/null || fail "plugins --json exited $?"
if command -v python3 >/dev/null 2>&1; then
    python3 - "$tmp/out" "$dir" <<'PY' || fail "JSON content"
import json, sys
d = json.load(open(sys.argv[1]))
good = [p for p in d["plugins"] if p["name"] == "regtest-good"]
assert len(good) == 1 and good[0]["kind"] == "sampler" and good[0]["provides"] == ["regtest_a", "regtest_b"], good
assert good[0]["path"] == sys.argv[2] + "/libllmh-sampler-regtest-good.so"
reasons = {r["path"].rsplit("/", 1)[1]: r["reason"] for r in d["refused"]}
assert reasons["libllmh-sampler-regtest-major.so"].startswith("ABI mismatch: plugin major 2"), reasons
assert "duplicate name 'regtest-good' for kind sampler" in reasons["libllmh-sampler-regtest-zdup.so"]
PY
else
    grep -q '"name":[[:space:]]*"regtest-good"' "$tmp/out" || fail "JSON lacks regtest-good"
fi

# plugin check: 0 and a description for a good plugin, 1 and the reason for a bad one.
"$llmhost" plugin check "$dir/libllmh-sampler-regtest-good.so" >"$tmp/out" 2>&1 || fail "check of good plugin exited $?"
grep -q "^name: *regtest-good$" "$tmp/out" || fail "check: no name line"
grep -q "^  apply  *present  *required$" "$tmp/out" || fail "check: no slot lines"
grep -q "^result: *ok" "$tmp/out" || fail "check: no ok result"
rc=0
"$llmhost" plugin check "$dir/libllmh-sampler-regtest-noslot.so" >"$tmp/out" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "check of a broken plugin exited $rc, expected 1"
grep -q "libllmh-sampler-regtest-noslot.so: bad descriptor: sampler iface slot 'apply' is required but NULL" \
    "$tmp/out" || fail "check: refusal reason"
rc=0
"$llmhost" plugin >"$tmp/out" 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "'plugin' without check FILE exited $rc, expected 2 (usage)"
echo PASS
