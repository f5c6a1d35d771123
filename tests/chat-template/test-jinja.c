/*
 * test-jinja.c — the Jinja-subset engine construct by construct (jinja.h,
 * llmh_template_render), its errors (line:col in every message) and a small
 * fuzz of truncated and garbled templates (errors, never crashes).
 *
 * Expected strings follow Jinja2 3.x with Hugging Face's chat-template
 * environment (trim_blocks, lstrip_blocks, no autoescape) and Python's str()
 * / json.dumps() for values.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jinja.h"
#include "llmh-template.h"
#include "testutil.h"

static void expect_r(const char *tmpl, const char *ctx, const char *want, int line) {
    char *out = NULL;
    llmh_status st = llmh_template_render(tmpl, ctx, &out);
    if (st != LLMH_OK) fprintf(stderr, "\n    line %d: %s", line, llmh_last_error());
    CU_ASSERT_EQUAL_FATAL(st, LLMH_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    if (strcmp(out, want))
        fprintf(stderr, "\n    line %d:\n    got  [%s]\n    want [%s]", line, out, want);
    CU_ASSERT_STRING_EQUAL(out, want);
    free(out);
}
#define EXPECT(t, c, w) expect_r((t), (c), (w), __LINE__)

/* The render fails with `status` and a message holding needle1 (and needle2). */
static void expect_err_r(const char *tmpl, const char *ctx, llmh_status status, const char *n1,
                         const char *n2, int line) {
    char *out = (char *)1;
    llmh_status st = llmh_template_render(tmpl, ctx, &out);
    if (st != status) fprintf(stderr, "\n    line %d: status %d (%s)", line, st, llmh_last_error());
    CU_ASSERT_EQUAL(st, status);
    CU_ASSERT_PTR_NULL(out);
    const char *msg = llmh_last_error();
    if (!strstr(msg, n1) || (n2 && !strstr(msg, n2)))
        fprintf(stderr, "\n    line %d: message [%s] lacks [%s] [%s]", line, msg, n1, n2 ? n2 : "");
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, n1));
    if (n2) CU_ASSERT_PTR_NOT_NULL(strstr(msg, n2));
}
#define EXPECT_ERR(t, c, s, n1, n2) expect_err_r((t), (c), (s), (n1), (n2), __LINE__)

static void test_output_and_literals(void) {
    EXPECT("Hello {{ name }}!", "{\"name\": \"World\"}", "Hello World!");
    EXPECT("{{ 'a' }}{{ \"b\" }}{{ 'c' 'd' }}", NULL, "abcd"); /* adjacent literals join */
    EXPECT("{{ 'it\\'s\\n\\t\\u00e9\\x41' }}", NULL, "it's\n\t\xc3\xa9" "A");
    /* Python str(): True/False/None, ints, repr floats, lists and dicts */
    EXPECT("{{ true }} {{ False }} {{ none }} {{ 42 }} {{ -7 }}", NULL, "True False None 42 -7");
    EXPECT("{{ 1.5 }} {{ 2.0 }} {{ 1e20 }} {{ 0.0001 }} {{ 1e-5 }} {{ 0.1 + 0.2 }}", NULL,
           "1.5 2.0 1e+20 0.0001 1e-05 0.30000000000000004");
    EXPECT("{{ [1, 'a', none, [true]] }} {{ {'k': 'v', 'n': 1} }}", NULL,
           "[1, 'a', None, [True]] {'k': 'v', 'n': 1}");
    EXPECT("{{ (1, 2)|length }}{{ ()|length }}{{ (1, 2)[1] }}", NULL, "202");
    EXPECT("[{{ missing }}]", NULL, "[]");             /* undefined prints as "" */
    /* JSON context: numbers integral -> int, else float; nesting */
    EXPECT("{{ a }} {{ b }} {{ c.d[1] }} {{ e }}", "{\"a\": 3, \"b\": 2.5, \"c\": {\"d\": [0, \"x\"]}, \"e\": null}",
           "3 2.5 x None");
    EXPECT("{# a comment #}x{#- trimmed -#}  y", NULL, "xy");
    EXPECT("", NULL, "");
}

static void test_whitespace_control(void) {
    /* {%- and -%} strip all whitespace on their side; {{- -}} likewise */
    EXPECT("a  {%- if true -%}  b  {%- endif -%}  c", NULL, "abc");
    EXPECT("a  {{- 'b' -}}  c", NULL, "abc");
    /* trim_blocks: the newline right after a block tag goes */
    EXPECT("{% if true %}\nyes\n{% endif %}\nend", NULL, "yes\nend");
    /* lstrip_blocks: spaces before a block tag at line start go */
    EXPECT("x\n    {% if true %}\n    y\n    {% endif %}\nz", NULL, "x\n    y\nz");
    /* but not before {{ }}, and not when text precedes the tag on its line */
    EXPECT("x\n    {{ 'v' }}\n", NULL, "x\n    v");
    EXPECT("a {% if true %}b{% endif %}", NULL, "a b");
    /* {%+ keeps the indentation; +%} keeps the newline */
    EXPECT("x\n  {%+ if true +%}\ny{% endif %}", NULL, "x\n  \ny");
    /* one trailing newline of the template is dropped, \r\n becomes \n */
    EXPECT("a\r\nb\n", NULL, "a\nb");
    EXPECT("a\n\n", NULL, "a\n");
    /* raw blocks: tags inside are text; whitespace control at both ends */
    EXPECT("{% raw %}{{ x }}{% if %}{% endraw %}|{%- raw -%}  a  {%- endraw -%}  |", NULL,
           "{{ x }}{% if %}|a|");
    EXPECT("<\n  {% raw %}\nx\n  {% endraw %}\ny", NULL, "<\nx\ny");
    /* a comment line disappears entirely */
    EXPECT("a\n  {# c #}\nb", NULL, "a\nb");
}

static void test_if(void) {
    const char *t = "{% if n > 2 %}big{% elif n == 2 %}two{% elif n %}one{% else %}zero{% endif %}";
    EXPECT(t, "{\"n\": 5}", "big");
    EXPECT(t, "{\"n\": 2}", "two");
    EXPECT(t, "{\"n\": 1}", "one");
    EXPECT(t, "{\"n\": 0}", "zero");
    /* truthiness: empty string/list/dict, none, undefined are false */
    EXPECT("{% for v in [0, 1, '', 'x', [], [0], {}, none] %}{{ 'T' if v else 'F' }}{% endfor %}"
           "{{ 'T' if nothing else 'F' }}",
           NULL, "FTFTFTFFF");
    EXPECT("{{ 'yes' if true }}|{{ 'yes' if false }}|", NULL, "yes||");
}

static void test_for_loop(void) {
    EXPECT("{% for x in ['a', 'b', 'c'] %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}"
           "{{ loop.revindex0 }}{{ loop.length }}{{ x }}{{ 'F' if loop.first }}{{ 'L' if loop.last }};"
           "{% endfor %}",
           NULL, "10323aF;21213b;32103cL;");
    /* previtem / nextitem */
    EXPECT("{% for x in [1, 2, 3] %}{{ loop.previtem }}<{{ x }}>{{ loop.nextitem }} {% endfor %}", NULL,
           "<1>2 1<2>3 2<3> ");
    /* loop filter: loop.* counts the filtered items */
    EXPECT("{% for x in range(10) if x % 3 == 0 %}{{ x }}/{{ loop.length }} {% endfor %}", NULL,
           "0/4 3/4 6/4 9/4 ");
    /* else runs when nothing was iterated; undefined iterates as empty */
    EXPECT("{% for x in [] %}x{% else %}empty{% endfor %}", NULL, "empty");
    EXPECT("{% for x in nothing %}x{% else %}none{% endfor %}", NULL, "none");
    /* dicts iterate over keys; items() gives pairs that unpack */
    EXPECT("{% for k in d %}{{ k }}{% endfor %} {% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}"
           " {% for k, v in d | items %}{{ k }}{{ v }}{% endfor %}",
           "{\"d\": {\"b\": 1, \"a\": 2}}", "ba b=1;a=2; b1a2");
    /* strings iterate by code point */
    EXPECT("{% for c in 'h\xc3\xa9!' %}[{{ c }}]{% endfor %}", NULL, "[h][\xc3\xa9][!]");
    /* break / continue */
    EXPECT("{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 5 %}{% break %}"
           "{% endif %}{{ x }}{% endfor %}",
           NULL, "0134");
    /* nested loops: the inner loop has its own `loop` */
    EXPECT("{% for a in [1, 2] %}{% for b in [1, 2] %}{{ loop.index }}{% endfor %}{{ loop.index }}|"
           "{% endfor %}",
           NULL, "121|122|");
    /* loop.cycle */
    EXPECT("{% for i in range(5) %}{{ loop.cycle('a', 'b') }}{% endfor %}", NULL, "ababa");
    /* each iteration has its own scope: a set is not seen by the next one */
    EXPECT("{% for i in [1, 2] %}{% if i == 2 %}[{{ x }}]{% endif %}{% set x = i %}{% endfor %}[{{ x }}]", NULL,
           "[][]");
    /* sets inside a loop do not leak out of it */
    EXPECT("{% set x = 'out' %}{% for i in [1] %}{% set x = 'in' %}{{ x }}{% endfor %} {{ x }}", NULL,
           "in out");
    EXPECT("{% for x in range(3) %}{{ x }}{% endfor %}{% for x in range(1, 7, 2) %}{{ x }}{% endfor %}"
           "{% for x in range(3, 0, -1) %}{{ x }}{% endfor %}",
           NULL, "012135321");
}

static void test_set_and_namespace(void) {
    EXPECT("{% set a = 1 %}{% set b = a + 1 %}{{ a }}{{ b }}", NULL, "12");
    /* set inside if leaks to the enclosing scope (if makes no scope) */
    EXPECT("{% if true %}{% set a = 'x' %}{% endif %}{{ a }}", NULL, "x");
    /* namespace(): attributes set from inside a loop are seen after it */
    EXPECT("{% set ns = namespace(count=0, found=false) %}{% for x in [3, 5, 8] %}"
           "{% if x > 4 %}{% set ns.count = ns.count + 1 %}{% set ns.found = true %}{% endif %}"
           "{% endfor %}{{ ns.count }} {{ ns.found }} {{ ns.other is defined }}",
           NULL, "2 True False");
    /* block set captures output */
    EXPECT("{% set s %}a{{ 1 + 1 }}b{% endset %}[{{ s }}]", NULL, "[a2b]");
    /* a context variable can be shadowed */
    EXPECT("{% set messages = messages[1:] %}{{ messages | length }}", "{\"messages\": [1, 2, 3]}", "2");
}

static void test_macro(void) {
    EXPECT("{% macro tag(name, value='none') %}<{{ name }}={{ value }}>{% endmacro %}"
           "{{ tag('a') }}{{ tag('b', 2) }}{{ tag(value=3, name='c') }}",
           NULL, "<a=none><b=2><c=3>");
    /* macros see template-level variables; recursion works */
    EXPECT("{% set sep = ',' %}{% macro count(n) %}{{ n }}{% if n > 0 %}{{ sep }}{{ count(n - 1) }}"
           "{% endif %}{% endmacro %}{{ count(3) }}",
           NULL, "3,2,1,0");
}

static void test_operators(void) {
    EXPECT("{{ 7 + 2 }} {{ 7 - 2 }} {{ 7 * 2 }} {{ 7 / 2 }} {{ 7 // 2 }} {{ 7 % 3 }} {{ 2 ** 10 }}", NULL,
           "9 5 14 3.5 3 1 1024");
    /* Python floor division and modulo signs */
    EXPECT("{{ -7 // 2 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ 6 / 3 }} {{ 1.5 * 2 }}", NULL, "-4 2 -2 2.0 3.0");
    EXPECT("{{ 'a' ~ 1 ~ none ~ true }} {{ 'ab' + 'cd' }} {{ [1] + [2] }} {{ 'ab' * 3 }}", NULL,
           "a1NoneTrue abcd [1, 2] ababab");
    EXPECT("{{ 1 == 1.0 }} {{ 'a' != 'b' }} {{ 2 < 3 }} {{ 3 <= 3 }} {{ 'b' > 'a' }} {{ 1 >= 2 }}", NULL,
           "True True True True True False");
    EXPECT("{{ 'ell' in 'hello' }} {{ 2 in [1, 2] }} {{ 'k' in {'k': 1} }} {{ 3 not in [1] }}", NULL,
           "True True True True");
    /* printf-style formatting */
    EXPECT("{{ '%s-%s' % (1, 'a') }}|{{ '%(a)s %(b)d' % {'a': 'A', 'b': 2} }}|{{ '%05d %+d %.3s %-4s|%.1f %x %r %%' % "
           "(42, 5, 'abcdef', 'ab', 2.25, 255, 'q') }}|{{ '%s' % [1, 2] }}",
           NULL, "1-a|A 2|00042 +5 abc ab  |2.2 ff 'q' %|[1, 2]");
    /* %o/%x/%X as Python: sign and magnitude, 0o/0x prefixes, zeros after the prefix */
    EXPECT("{{ '%#o|%x|%#X|%#x|%o|%#08x|%-6x|%+x|% o|%.4x|%6.3o|%x' % (8, -255, 255, 0, -8, 255, 10, 10, 8, 10, 8, true) }}",
           NULL, "0o10|-ff|0XFF|0x0|-10|0x0000ff|a     |+a| 10|000a|   010|1");
    /* and/or return an operand; not binds looser than comparisons */
    EXPECT("{{ 0 or 'x' }} {{ 1 and 'y' }} {{ not 1 == 2 }} {{ not (1 and 0) }}", NULL, "x y True True");
    /* filters bind tighter than arithmetic: messages|length - 1 */
    EXPECT("{{ xs|length - 1 }} {{ -2|abs }}", "{\"xs\": [1, 2, 3]}", "2 2"); /* (-2)|abs */
    /* conditional expression */
    EXPECT("{{ 'a' if x else 'b' }}{{ 'c' if not x else 'd' }}", "{\"x\": 0}", "bc");
    /* is not / not ... is */
    EXPECT("{{ x is not none }} {{ not x is defined }}", "{\"x\": 1}", "True False");
}

static void test_subscripts(void) {
    const char *ctx = "{\"xs\": [10, 20, 30, 40], \"s\": \"h\xc3\xa9llo\", \"d\": {\"role\": \"user\"}}";
    EXPECT("{{ xs[0] }} {{ xs[-1] }} {{ xs[1:3] }} {{ xs[::-1] }} {{ xs[1:] }} {{ xs[:-2] }} {{ xs[::2] }}",
           ctx, "10 40 [20, 30] [40, 30, 20, 10] [20, 30, 40] [10, 20] [10, 30]");
    EXPECT("{{ s[1] }} {{ s[-1] }} {{ s[1:3] }} {{ s[::-1] }} {{ s|length }}", ctx,
           "\xc3\xa9 o \xc3\xa9l oll\xc3\xa9h 5");
    EXPECT("{{ d.role }} {{ d['role'] }} {{ d.missing is defined }} {{ xs[9] is defined }} {{ xs.0 }}", ctx,
           "user user False False 10");
    /* a non-integer list index is undefined, as in Jinja's sandbox */
    EXPECT("{{ xs['a'] is defined }} {{ s[1.5] is defined }}", ctx, "False False");
    EXPECT("{{ xs[-9:2] }} {{ xs[5:] }} {{ xs[3:1] }}", ctx, "[10, 20] [] []");
}

static void test_string_methods(void) {
    EXPECT("{{ s.startswith('<a>') }} {{ s.endswith('</a>') }} {{ s.startswith(('x', '<')) }}",
           "{\"s\": \"<a>text</a>\"}", "True True True");
    EXPECT("{{ '  a b  '.strip() }}|{{ '\\n\\nx\\n'.lstrip('\\n') }}|{{ 'x\\n\\n'.rstrip('\\n') }}|"
           "{{ 'xxhixx'.strip('x') }}",
           NULL, "a b|x\n|x|hi");
    EXPECT("{{ 'a</think>b</think>c'.split('</think>') }} {{ 'a b\\t c'.split() }} {{ 'a,b,c'.split(',', 1) }}",
           NULL, "['a', 'b', 'c'] ['a', 'b', 'c'] ['a', 'b,c']");
    /* the Qwen3 reasoning extraction chain */
    EXPECT("{% set c = '<think>\\nR\\n</think>\\n\\nA' %}[{{ c.split('</think>')[-1].lstrip('\\n') }}]"
           "[{{ c.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') }}]",
           NULL, "[A][R]");
    EXPECT("{{ 'Hello'.lower() }} {{ 'Hello'.upper() }} {{ 'hello world'.title() }} {{ 'hELLO'.capitalize() }}",
           NULL, "hello HELLO Hello World Hello");
    EXPECT("{{ 'aaa'.replace('a', 'b', 2) }} {{ 'abc'.find('c') }} {{ 'abab'.count('ab') }} {{ ', '.join(['x', 'y']) }}",
           NULL, "bba 2 2 x, y");
    EXPECT("{{ d.get('a') }} {{ d.get('z', 'dflt') }} {{ d.get('z') }} {{ d.keys()|list }} {{ d.values()|list }}"
           " {{ d.items()|list|length }}",
           "{\"d\": {\"a\": 1}}", "1 dflt None ['a'] [1] 1");
    EXPECT("{{ [1, 2, 1].count(1) }} {{ [1, 2].index(2) }}", NULL, "2 1");
}

static void test_filters(void) {
    EXPECT("{{ [1, 2]|length }} {{ 'h\xc3\xa9'|length }} {{ {'a': 1}|count }} {{ nothing|length }}", NULL,
           "2 2 1 0");
    EXPECT("[{{ '  x \\n'|trim }}] [{{ 'xxa'|trim('x') }}]", NULL, "[x] [a]");
    EXPECT("{{ 5|string ~ 'x' }} {{ 'a'|safe }} {{ ['a', 'b']|first }} {{ 'xyz'|last }}", NULL, "5x a a z");
    EXPECT("{{ ['a', 'b', 'c']|join(', ') }} {{ [1, 2]|join }} {{ users|join('/', attribute='n') }}",
           "{\"users\": [{\"n\": \"u1\"}, {\"n\": \"u2\"}]}", "a, b, c 12 u1/u2");
    EXPECT("{{ 'Hi'|lower }} {{ 'Hi'|upper }} {{ 'a-b'|replace('-', '+') }} {{ 'x y'|title }}", NULL,
           "hi HI a+b X Y");
    EXPECT("{{ missing|default('d') }} {{ ''|default('d') }} {{ ''|default('d', true) }} {{ 0|d(5, true) }}",
           NULL, "d  d 5");
    EXPECT("{{ ms|selectattr('role', 'equalto', 'user')|map(attribute='c')|list }} "
           "{{ ms|rejectattr('role', 'eq', 'user')|map(attribute='c')|join }} "
           "{{ ms|selectattr('t')|list|length }} {{ [1, 2, 3, 4]|select('even')|list }} "
           "{{ ['a', 'B']|map('upper')|list }}",
           "{\"ms\": [{\"role\": \"user\", \"c\": 1, \"t\": true}, {\"role\": \"bot\", \"c\": 2}, "
           "{\"role\": \"user\", \"c\": 3}]}",
           "[1, 3] 2 1 [2, 4] ['A', 'B']");
    EXPECT("{{ [3, 1, 2]|sort }} {{ [3, 1, 2]|sort(reverse=true) }} {{ [1, 2]|reverse|list }} {{ 'ab'|reverse }}",
           NULL, "[1, 2, 3] [3, 2, 1] [2, 1] ba");
    /* Jinja's sort/unique/max ignore case unless case_sensitive=true */
    EXPECT("{{ ['b', 'A', 'a', 'C']|sort }} {{ ['b', 'A']|sort(case_sensitive=true) }} "
           "{{ ['a', 'A', 'b']|unique|list }} {{ ['b', 'A']|max }}",
           NULL, "['A', 'a', 'b', 'C'] ['A', 'b'] ['a', 'b'] b");
    /* the title filter starts words after - ( { [ < and white space only */
    EXPECT("{{ 'x-y z{w(v<u[t \\'q\\'s'|title }} {{ \"it's\".title() }}", NULL, "X-Y Z{W(V<U[T 'q's It'S");
    EXPECT("{{ '3'|int + 1 }} {{ 'x'|int }} {{ '2.5'|float }} {{ -3|abs }} {{ 2.567|round(2) }} {{ [1, 1, 2]|unique|list }}",
           NULL, "4 0 2.5 3 2.57 [1, 2]");
    EXPECT("{{ 'a\\nb'|indent(2) }}|{{ 'a\\nb'|indent(2, true) }}", NULL, "a\n  b|  a\n  b");
    EXPECT("{{ '<a & \"b\">'|e }} {{ [1, 5, 3]|max }} {{ [1, 5, 3]|min }} {{ [1, 5, 3]|sum }}", NULL,
           "&lt;a &amp; &#34;b&#34;&gt; 5 1 9");
}

static void test_tojson(void) {
    /* json.dumps defaults: ", " and ": " separators, ensure_ascii=False
     * (transformers' tojson), keys in insertion order */
    EXPECT("{{ v|tojson }}",
           "{\"v\": {\"b\": [1, 2.5, true, null, \"x\"], \"a\": {}, \"c\": [], \"u\": \"\xc3\xa9\\\"\\n\\u0001\"}}",
           "{\"b\": [1, 2.5, true, null, \"x\"], \"a\": {}, \"c\": [], \"u\": \"\xc3\xa9\\\"\\n\\u0001\"}");
    /* indent: "," item separator, newlines, nested levels */
    EXPECT("{{ v|tojson(indent=2) }}", "{\"v\": {\"a\": [1, {\"b\": null}], \"e\": []}}",
           "{\n  \"a\": [\n    1,\n    {\n      \"b\": null\n    }\n  ],\n  \"e\": []\n}");
    EXPECT("{{ v|tojson(sort_keys=true) }} {{ v|tojson(ensure_ascii=true) }} {{ v|tojson(separators=(',', ':')) }}",
           "{\"v\": {\"z\": \"\xc3\xa9\xf0\x9f\x98\x80\", \"a\": 1}}",
           "{\"a\": 1, \"z\": \"\xc3\xa9\xf0\x9f\x98\x80\"} {\"z\": \"\\u00e9\\ud83d\\ude00\", \"a\": 1} "
           "{\"z\":\"\xc3\xa9\xf0\x9f\x98\x80\",\"a\":1}");
    EXPECT("{{ 'a/b'|tojson }} {{ 3|tojson }} {{ 0.5|tojson }} {{ none|tojson }} {{ {1: 2}|tojson }}", NULL,
           "\"a/b\" 3 0.5 null {\"1\": 2}");
}

static void test_tests(void) {
    const char *ctx = "{\"s\": \"x\", \"i\": 1, \"f\": 1.5, \"l\": [1], \"d\": {\"k\": 1}, \"n\": null, "
                      "\"t\": true, \"z\": false}";
    EXPECT("{{ s is string }}{{ i is string }}{{ d is mapping }}{{ l is mapping }}{{ n is none }}"
           "{{ u is undefined }}{{ u is defined }}{{ s is defined }}",
           ctx, "TrueFalseTrueFalseTrueTrueFalseTrue");
    EXPECT("{{ s is iterable }}{{ l is iterable }}{{ d is iterable }}{{ i is iterable }}{{ l is sequence }}"
           "{{ n is sequence }}",
           ctx, "TrueTrueTrueFalseTrueFalse");
    EXPECT("{{ i is number }}{{ f is number }}{{ s is number }}{{ i is integer }}{{ f is float }}"
           "{{ t is true }}{{ z is false }}{{ i is true }}{{ t is boolean }}",
           ctx, "TrueTrueFalseTrueTrueTrueTrueFalseTrue");
    EXPECT("{{ 3 is odd }}{{ 4 is even }}{{ 9 is divisibleby 3 }}{{ 9 is divisibleby(2) }}"
           "{{ 'a' is equalto 'a' }}{{ 2 is in [1, 2] }}{{ 'ab' is lower }}{{ i is sameas 1 }}",
           ctx, "TrueTrueTrueFalseTrueTrueTrueTrue");
}

static void test_globals(void) {
    EXPECT("{{ range(3)|list }} {{ namespace(a=1).a }} {{ dict(x=1) }}", NULL, "[0, 1, 2] 1 {'x': 1}");
    EXPECT("{{ strftime_now is defined }} {{ raise_exception is defined }}", NULL, "True True");
    /* strftime_now formats the render's clock (local time, here TZ=UTC) */
    llmh_jinja *t = NULL;
    CU_ASSERT_EQUAL_FATAL(llmh__jinja_parse("{{ strftime_now('%d %b %Y') }}", strlen("{{ strftime_now('%d %b %Y') }}"), &t), LLMH_OK);
    llmh_jinja_opts o = {.now = 1721952000 /* 2024-07-26 00:00 UTC */};
    char *out = NULL;
    CU_ASSERT_EQUAL_FATAL(llmh__jinja_render(t, NULL, &o, &out, NULL), LLMH_OK);
    CU_ASSERT_STRING_EQUAL(out, "26 Jul 2024");
    free(out);
    /* a parsed template renders many times, with different variables */
    llmh__jinja_free(t);
    CU_ASSERT_EQUAL_FATAL(llmh__jinja_parse("{{ x }}", 7, &t), LLMH_OK);
    cJSON *v = cJSON_Parse("{\"x\": \"one\"}");
    size_t len = 0;
    CU_ASSERT_EQUAL_FATAL(llmh__jinja_render(t, v, NULL, &out, &len), LLMH_OK);
    CU_ASSERT_STRING_EQUAL(out, "one");
    CU_ASSERT_EQUAL(len, 3);
    free(out);
    cJSON_Delete(v);
    CU_ASSERT_EQUAL_FATAL(llmh__jinja_render(t, NULL, NULL, &out, &len), LLMH_OK);
    CU_ASSERT_STRING_EQUAL(out, "");
    free(out);
    /* output limit */
    o.now = 0;
    o.max_output = 10;
    llmh__jinja_free(t);
    CU_ASSERT_EQUAL_FATAL(llmh__jinja_parse("{% for i in range(100) %}abc{% endfor %}", strlen("{% for i in range(100) %}abc{% endfor %}"), &t), LLMH_OK);
    out = (char *)1;
    CU_ASSERT_EQUAL(llmh__jinja_render(t, NULL, &o, &out, NULL), LLMH_ERR_INVALID_ARG);
    CU_ASSERT_PTR_NULL(out);
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "output larger than 10 bytes"));
    llmh__jinja_free(t);
    /* step and string limits (small ones here; the defaults are 5M steps and 64 MiB) */
    static const char loops[] = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}";
    CU_ASSERT_EQUAL_FATAL(llmh__jinja_parse(loops, strlen(loops), &t), LLMH_OK);
    llmh_jinja_opts lim = {.max_string = 1 << 20, .max_steps = 100000};
    CU_ASSERT_EQUAL(llmh__jinja_render(t, NULL, &lim, &out, NULL), LLMH_ERR_INVALID_ARG);
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "line 1:"));
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "ran more than 100000 steps"));
    llmh__jinja_free(t);
    static const char dbl[] =
        "{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}";
    CU_ASSERT_EQUAL_FATAL(llmh__jinja_parse(dbl, strlen(dbl), &t), LLMH_OK);
    CU_ASSERT_EQUAL(llmh__jinja_render(t, NULL, &lim, &out, NULL), LLMH_ERR_INVALID_ARG);
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "line 1:76: string too long"));
    llmh__jinja_free(t);
    static const char rep[] = "{{ ('x' * 600000)|replace('x', 'yy') }}";
    CU_ASSERT_EQUAL_FATAL(llmh__jinja_parse(rep, strlen(rep), &t), LLMH_OK);
    CU_ASSERT_EQUAL(llmh__jinja_render(t, NULL, &lim, &out, NULL), LLMH_ERR_INVALID_ARG);
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "string too long"));
    llmh__jinja_free(t);
}

static void test_errors(void) {
    /* parse errors: LLMH_ERR_FORMAT with line:col */
    EXPECT_ERR("a\n{% if x %}b", NULL, LLMH_ERR_FORMAT, "line 2:4", "never closed");
    EXPECT_ERR("{% for x in y %}{% endif %}", NULL, LLMH_ERR_FORMAT, "line 1:20", "endif");
    EXPECT_ERR("{{ x ", NULL, LLMH_ERR_FORMAT, "line 1:1", "unclosed");
    EXPECT_ERR("{{ 'abc }}", NULL, LLMH_ERR_FORMAT, "line 1:4", "unterminated string");
    EXPECT_ERR("{% frobnicate %}", NULL, LLMH_ERR_FORMAT, "line 1:4", "unknown tag 'frobnicate'");
    EXPECT_ERR("{{ 1 + }}", NULL, LLMH_ERR_FORMAT, "line 1:8", "expected an expression");
    EXPECT_ERR("{{ (1 }}", NULL, LLMH_ERR_FORMAT, "line 1:7", "unbalanced '}' (expected ')')");
    EXPECT_ERR("{{ a ] }}", NULL, LLMH_ERR_FORMAT, "line 1:6", "unbalanced");
    EXPECT_ERR("{% break %}", NULL, LLMH_ERR_FORMAT, "line 1:4", "outside a loop");
    EXPECT_ERR("{# open", NULL, LLMH_ERR_FORMAT, "line 1:1", "unclosed comment");
    EXPECT_ERR("{% endfor %}", NULL, LLMH_ERR_FORMAT, "line 1:4", "no open block");
    EXPECT_ERR("a\n{% raw %}b", NULL, LLMH_ERR_FORMAT, "line 2:1", "{% raw %} is never closed");
    EXPECT_ERR("{{ 99999999999999999999 }}", NULL, LLMH_ERR_FORMAT, "line 1:4", "too large");
    EXPECT_ERR("x\n  {{ a $ b }}", NULL, LLMH_ERR_FORMAT, "line 2:8", "unexpected character '$'");
    /* render errors: LLMH_ERR_INVALID_ARG with line:col */
    EXPECT_ERR("\n  {{ raise_exception('Bad roles!') }}", NULL, LLMH_ERR_INVALID_ARG, "line 2:6",
               "raise_exception: Bad roles!");
    EXPECT_ERR("{{ x|frobnicate }}", NULL, LLMH_ERR_INVALID_ARG, "line 1:6", "unknown filter 'frobnicate'");
    EXPECT_ERR("{{ x is frob }}", NULL, LLMH_ERR_INVALID_ARG, "line 1:9", "unknown test 'frob'");
    EXPECT_ERR("{{ 'a' + 1 }}", NULL, LLMH_ERR_INVALID_ARG, "line 1:8", "string and int");
    EXPECT_ERR("{{ 'a' + missing }}", NULL, LLMH_ERR_INVALID_ARG, "line 1:8", "'missing' is undefined");
    EXPECT_ERR("{{ missing.attr }}", NULL, LLMH_ERR_INVALID_ARG, "line 1:12", "'missing' is undefined");
    EXPECT_ERR("{{ 1 // 0 }}", NULL, LLMH_ERR_INVALID_ARG, "line 1:6", "division by zero");
    EXPECT_ERR("{{ '%x' % 3.5 }}", NULL, LLMH_ERR_INVALID_ARG, "line 1:", "%x needs an integer, not float");
    EXPECT_ERR("{{ '%s %s' % (1,) }}", NULL, LLMH_ERR_INVALID_ARG, "line 1:12", "not enough arguments");
    EXPECT_ERR("{{ '%s' % (1, 2) }}", NULL, LLMH_ERR_INVALID_ARG, "line 1:9", "not all arguments converted");
    EXPECT_ERR("{{ '%d' % 'x' }}", NULL, LLMH_ERR_INVALID_ARG, "line 1:9", "%d needs a number");
    EXPECT_ERR("{{ '%q' % 1 }}", NULL, LLMH_ERR_INVALID_ARG, "line 1:9", "unsupported conversion");
    EXPECT_ERR("{{ '%.999f' % 1e300 }}", NULL, LLMH_ERR_INVALID_ARG, "line 1:13", "field too wide");
    EXPECT_ERR("{% set x = 1 %}{% set x.a = 2 %}", NULL, LLMH_ERR_INVALID_ARG, "line 1:25", "namespace");
    EXPECT_ERR("{% for x in 5 %}{% endfor %}", NULL, LLMH_ERR_INVALID_ARG, "line 1:13", "not iterable");
    EXPECT_ERR("{{ nope() }}", NULL, LLMH_ERR_INVALID_ARG, "line 1:4", "'nope' is undefined");
    EXPECT_ERR("{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}", NULL, LLMH_ERR_INVALID_ARG, "line 1:",
               "nested deeper");
    EXPECT_ERR("{{ 2 ** 64 }}", NULL, LLMH_ERR_INVALID_ARG, "line 1:6", "overflow");
    /* deep nesting is refused, not a stack overflow */
    char deep[2100];
    size_t k = 0;
    k += (size_t)snprintf(deep, sizeof deep, "{{ ");
    for (int i = 0; i < 1000; i++) deep[k++] = '(';
    deep[k++] = '1';
    for (int i = 0; i < 1000; i++) deep[k++] = ')';
    snprintf(deep + k, sizeof deep - k, " }}");
    EXPECT_ERR(deep, NULL, LLMH_ERR_FORMAT, "line 1:", "nesting deeper");
    /* bad arguments */
    char *out = (char *)1;
    CU_ASSERT_EQUAL(llmh_template_render(NULL, NULL, &out), LLMH_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(llmh_template_render("x", "{not json", &out), LLMH_ERR_INVALID_ARG);
    CU_ASSERT_PTR_NULL(out);
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "not valid JSON"));
    CU_ASSERT_EQUAL(llmh_template_render("x", "[1]", &out), LLMH_ERR_INVALID_ARG);
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "JSON object"));
    CU_ASSERT_EQUAL(llmh_template_render("x", NULL, NULL), LLMH_ERR_INVALID_ARG);
}

/* Truncations and byte flips of the real templates: every render either
 * succeeds or fails with a message naming line:col; none crashes (the
 * ASan/UBSan CI run checks memory). */
static void test_fuzz(void) {
    static const char *const files[] = {"Qwen-Qwen2.5-Instruct.jinja", "Qwen-Qwen3-0.6B.jinja",
                                        "meta-llama-Llama-3.2-3B-Instruct.jinja",
                                        "meta-llama-Meta-Llama-3-8B-Instruct.jinja"};
    static const char ctx[] =
        "{\"messages\": [{\"role\": \"system\", \"content\": \"S\"}, {\"role\": \"user\", \"content\": "
        "\"Hi\"}, {\"role\": \"assistant\", \"content\": \"<think>r</think>A\", \"tool_calls\": "
        "[{\"function\": {\"name\": \"f\", \"arguments\": {\"a\": 1}}}]}, {\"role\": \"tool\", "
        "\"content\": \"r\"}], \"tools\": [{\"type\": \"function\"}], \"add_generation_prompt\": true, "
        "\"bos_token\": \"<s>\"}";
    static const char garble[] = "{}%#-+()[]'\"|.,:~ \n\\ab1";
    uint64_t rng = 0x5eed;
    size_t n_ok = 0, n_err = 0;
    for (size_t f = 0; f < sizeof files / sizeof *files; f++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", LLMH_TEST_TEMPLATE_DIR, files[f]);
        size_t len = 0;
        char *text = llmh_test_read_file(path, &len);
        CU_ASSERT_PTR_NOT_NULL_FATAL(text);
        char *buf = malloc(len + 1);
        CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
        for (int round = 0; round < 150; round++) {
            memcpy(buf, text, len + 1);
            if (round % 3 == 0) { /* truncate */
                buf[llmh_test_rand(&rng) % (len + 1)] = 0;
            } else { /* flip a few bytes */
                int flips = 1 + (int)(llmh_test_rand(&rng) % 4);
                for (int i = 0; i < flips; i++)
                    buf[llmh_test_rand(&rng) % len] = garble[llmh_test_rand(&rng) % (sizeof garble - 1)];
            }
            char *out = NULL;
            llmh_status st = llmh_template_render(buf, ctx, &out);
            if (st == LLMH_OK) {
                CU_ASSERT_PTR_NOT_NULL(out);
                n_ok++;
            } else {
                CU_ASSERT_PTR_NULL(out);
                CU_ASSERT_TRUE(st == LLMH_ERR_FORMAT || st == LLMH_ERR_INVALID_ARG);
                CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "template line "));
                n_err++;
            }
            free(out);
        }
        free(buf);
        free(text);
    }
    CU_ASSERT_TRUE(n_ok > 0 && n_err > 0); /* both outcomes were exercised */
}

static int suite_init(void) {
    setenv("TZ", "UTC", 1);
    return 0;
}

int main(void) {
    static const llmh_test_case cases[] = {
        {"output and literals", test_output_and_literals},
        {"whitespace control (trim_blocks, lstrip_blocks)", test_whitespace_control},
        {"if / elif / else", test_if},
        {"for loops", test_for_loop},
        {"set and namespace", test_set_and_namespace},
        {"macros", test_macro},
        {"operators", test_operators},
        {"subscripts and slices", test_subscripts},
        {"string and dict methods", test_string_methods},
        {"filters", test_filters},
        {"tojson", test_tojson},
        {"tests (is ...)", test_tests},
        {"globals", test_globals},
        {"errors name line:col", test_errors},
        {"fuzz: truncated and garbled templates", test_fuzz},
        {NULL, NULL}};
    static const llmh_test_suite suites[] = {{"jinja", cases, suite_init, NULL}};
    return llmh_test_main(suites, 1);
}
