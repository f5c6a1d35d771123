#!/usr/bin/env python3
"""Differential check of llmhost's Jinja engine against Python's jinja2.

Renders templates with contexts through jinja2, set up as transformers sets
up chat templates (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks,
loopcontrols, tojson = json.dumps(ensure_ascii=False), raise_exception,
strftime_now), and through libllmh's llmh_template_render (ctypes), and
reports every difference. A developer tool, not a CI test (it needs jinja2):

    python3 tests/chat-template/tools/jinja-diff.py BUILD/lib/libllmh.so [--random N] [TEMPLATE.jinja ...]

Without template arguments it uses tests/chat-template/templates/*.jinja and
a set of expression snippets; --random N adds N random conversations (roles,
<think> tags, tool calls, reasoning, tools, enable_thinking) per template.
Exit status 1 when anything differs.
"""
import ctypes
import glob
import json
import os
import sys
from datetime import datetime

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = os.path.dirname(os.path.abspath(__file__))


def hf_env():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    def strftime_now(fmt):
        return datetime.now().strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


TOOL = {"type": "function", "function": {"name": "get_weather", "description": "Get the wéather",
                                          "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                         "required": ["city"]}}}
CALL = {"id": "call_abcdefghi", "type": "function",
        "function": {"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}}
CONTEXTS = [
    {"messages": [{"role": "user", "content": "Hello"}], "add_generation_prompt": True},
    {"messages": [{"role": "system", "content": " Be brief. "}, {"role": "user", "content": "Hi\n"},
                  {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Bye"}],
     "add_generation_prompt": False},
    {"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Hi"},
                  {"role": "assistant", "content": "<think>\nhmm\n</think>\n\nHello"},
                  {"role": "user", "content": "Q2"}], "add_generation_prompt": True, "enable_thinking": False},
    {"messages": [{"role": "user", "content": "2+2?"},
                  {"role": "assistant", "content": "4", "reasoning_content": "\nSimple.\n"}],
     "add_generation_prompt": False, "enable_thinking": True},
    {"messages": [{"role": "user", "content": "Weather in Paris?"},
                  {"role": "assistant", "content": "", "tool_calls": [CALL]},
                  {"role": "tool", "tool_call_id": "call_abcdefghi", "content": "22C"},
                  {"role": "tool", "tool_call_id": "call_abcdefghi", "content": "sunny"},
                  {"role": "assistant", "content": "Nice."}],
     "tools": [TOOL], "add_generation_prompt": True},
    {"messages": [{"role": "system", "content": "Tools!"}, {"role": "user", "content": "Go"},
                  {"role": "assistant", "content": "Calling.", "tool_calls": [CALL]},
                  {"role": "tool", "tool_call_id": "call_abcdefghi", "content": {"temp": 22}}],
     "tools": [TOOL], "add_generation_prompt": True},
]
for c in CONTEXTS:
    c.setdefault("bos_token", "<s>")
    c.setdefault("eos_token", "</s>")
    c.setdefault("date_string", "26 Jul 2024")

SNIPPETS = [
    "{{ [1, 'a', none, true, 1.5, {'k': [2]}] }}", "{{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }}",
    "{{ 'abc'[::-1] }} {{ 'héllo'[1:3] }} {{ [1,2,3,4][-3:-1] }} {{ [1,2,3][::2] }}",
    "{% for x in range(5) if x is odd %}{{ loop.index }}/{{ loop.length }}{{ loop.revindex }} {% endfor %}",
    "{% set ns = namespace(a=0) %}{% for i in range(3) %}{% set ns.a = ns.a + i %}{% endfor %}{{ ns.a }}",
    "{{ ' a b '.split() }} {{ 'a,b,,c'.split(',') }} {{ 'xxhixx'.strip('x') }} {{ '\\n\\na\\n'.lstrip() }}|",
    "{{ {'b': 1, 'a': [1, {'c': None}]} | tojson }} {{ {'b': 1, 'a': [1, {'c': None}]} | tojson(indent=2) }}",
    "{{ 'é😀\"\\n\\t\\u0001' | tojson }} {{ 1.0 | tojson }} {{ 1e100 | tojson }} {{ 0.1 | tojson }}",
    "{{ 1e16 }} {{ 1e15 }} {{ 0.0001 }} {{ 0.00001 }} {{ 123456789.125 }} {{ -0.0 }} {{ 3.0 * 2 }}",
    "{{ 'a' ~ 1 ~ none ~ true ~ 2.5 }} {{ none }} {{ true }} {{ [] | length }} {{ 'x' if 0 else 'y' }}",
    "{{ [3, 1, 2] | sort }} {{ ['b', 'a'] | sort(reverse=true) | join(',') }} {{ [1, 1, 2] | unique | list }}",
    "{{ 'Hello World' | lower }} {{ 'hello world' | title }} {{ 'hello' | capitalize }} {{ '  x ' | trim }}|",
    "{{ 3 is odd }} {{ 'a' is string }} {{ {} is mapping }} {{ 'a' is iterable }} {{ 1 is number }} {{ x is defined }}",
    "a\n  {% if true %}\n  b\n  {% endif %}\nc\n  {{ 'd' }}\n{# c #}\ne",
    "{%- for i in [1, 2] -%}\n  [{{ i }}]\n{%- endfor %}  \n  {%+ if 1 %}k{% endif %}",
    "{% macro f(a, b='B') %}{{ a }}{{ b }}{% endmacro %}{{ f(1) }}{{ f(2, b=3) }}",
    "{% for k, v in {'x': 1, 'y': 2}.items() %}{{ k }}={{ v }};{% endfor %}{{ {'x': 1}.get('z', 'd') }}",
    "{{ [{'r': 'u', 'c': 1}, {'r': 'a', 'c': 2}] | selectattr('r', 'equalto', 'u') | map(attribute='c') | list }}",
    "{{ 'x' | default('d') }} {{ undefined_thing | default('d') }} {{ '' | default('d', true) }}",
    "{{ 'a\\nb\\nc' | indent(2) }}|{{ 'a\\nb' | indent(2, true) }}",
    "{% for i in range(3) %}{{ loop.cycle('a', 'b') }}{% if i == 1 %}{% break %}{% endif %}{% endfor %}",
    "{% raw %}{{ x }}{% endraw %}",
    "  {% if true %}x{% endif %}\n  {#- c #}\n\t{% set y = 1 %}  y{{ y }}\n{%- if 1 %}\n\n{% endif %}z",
    "{{- ' a ' -}}\n\n  {{ 'b' }}  \n{%- for i in [1] %}\n    {{ i }}\n{% endfor -%}\n  end\n",
    "{% for m in ms %}{{ m.role }}{{ m['content'] }}{{ m.missing is defined }}{% endfor %}".replace("ms", "[{'role': 'u', 'content': 'c'}]"),
    "{{ 'a' in 'cat' }} {{ 'z' not in ['a'] }} {{ 1 in [1.0] }} {{ not 1 == 1 }} {{ 1 < 2 and 2 < 3 or false }}",
    "{{ (1, 2) | length }} {{ [1, 2][0:-1] }} {{ 'abc'.upper().lower() }} {{ 'a-b-c'.replace('-', '') }}",
    "{{ 'x\u00e9y' | length }} {{ 'x\u00e9y'[1] }} {{ '\u3000 x \u00a0'.strip() }}|{{ 'a b'.title() }}",
    "{{ 10 / 4 }} {{ 10 // 4 }} {{ 10 % 4 }} {{ 2 ** -1 }} {{ 1 + 2.5 }} {{ true + 1 }} {{ 3 * 'ab' }}",
    "{{ '%d items' | replace('%d', '3') }} {{ [1, 2] | join('-') }} {{ [1, 2] | first }} {{ [1, 2] | last }}",
    "{{ {'a': 1} | items | list }} {{ (1,) }} {{ (1, 2)[1:] }} {{ (1, 2) | list }} {{ {'b': 2, 'a': 1} | tojson(sort_keys=true) }} {{ [] | tojson(indent=2) }}",
    "{{ 'é' | tojson(ensure_ascii=true) }} {{ '\u007f\u0085' | tojson }} {{ none | tojson }} {{ [none] | string }}",
    "{% set x %}inner {{ 1 }}{% endset %}[{{ x }}]{% set y = [1] + [2] %}{{ y }}",
    "{% for a, b in [[1, 2], [3, 4]] %}{{ a + b }}{% else %}none{% endfor %}{% for i in [] %}x{% else %}empty{% endfor %}",
    "{{ range(3) | list }} {{ range(1, 10, 3) | list }} {{ range(3, 0, -1) | list }} {{ [1, 2, 3] | sum }} {{ [3, 9] | max }}",
    "{{ '1.5' | float }} {{ '7' | int }} {{ 'x' | int }} {{ 3.7 | int }} {{ -3 | abs }} {{ 2.555 | round(1) }}",
    "{% for i in [1, 2] %}{% if i == 2 %}[{{ x }}]{% endif %}{% set x = i %}{% endfor %}[{{ x }}]",
    "{{ ['b', 'A', 'a', 'C'] | sort }} {{ ['b', 'A'] | sort(case_sensitive=true) }} {{ ['a', 'A', 'b'] | unique | list }} {{ ['b', 'A'] | max }}",
    "{{ 'x-y z{w(v<u[t' | title }} {{ [1, 2, 3]['a'] }}|{{ 'abc'[1.0] }}|{{ true is odd }} {{ true | abs }}",
    "{{ 'x' % [1] }}|{{ '%s' % [1, 2] }}|{{ '%s-%s' % (1, 'a') }}|{{ '%(a)s %(b)d' % {'a': 'A', 'b': 2} }}",
    "{{ '%05d %+d % d %.3s %-6s|%6s|' % (42, 5, 3, 'abcdef', 'ab', 'é') }}{{ '%s' % (none,) }} {{ '%d' % true }}",
    "{{ '%.1f %e %g %x %X %o %r %c %%' % (2.25, 12345.678, 0.0001, 255, 255, 8, 'q', 65) }}",
    "{{ 1 if none is none }} {{ 'x' is not string }} {{ 4 is divisibleby 2 }} {{ 'AB' is upper }} {{ 2 is even }}",
]


def random_contexts(n, seed=3):
    """n random conversations: roles, think tags, tool calls, reasoning, tools, enable_thinking."""
    import random
    rnd = random.Random(seed)
    contents = ["Hi", " padded ", "<think>\nr\n</think>\n\nA", "<think>x</think>", "</think>tail",
                "<tool_response>\nok\n</tool_response>", "", "multi\nline\n", "é ünïcode 😀", "  \n "]
    out = []
    for _ in range(n):
        msgs = []
        if rnd.random() < 0.5:
            msgs.append({"role": "system", "content": rnd.choice(contents)})
        for _ in range(rnd.randrange(0, 6)):
            r = rnd.choice(["user", "user", "assistant", "assistant", "tool"])
            m = {"role": r, "content": rnd.choice(contents)}
            if r == "assistant" and rnd.random() < 0.3:
                m["tool_calls"] = [{"id": "call_%09d" % rnd.randrange(10**9), "type": "function",
                                    "function": {"name": "f", "arguments": rnd.choice(
                                        [{"a": 1}, {"q": "é", "n": [1, 2]}, "{\"x\":1}"])}}
                                   for _ in range(rnd.randrange(1, 3))]
            if r == "assistant" and rnd.random() < 0.2:
                m["reasoning_content"] = rnd.choice(["R", "\nR\n", None])
            if r == "tool":
                m["tool_call_id"] = "call_%09d" % rnd.randrange(10**9)
            msgs.append(m)
        ctx = {"messages": msgs, "add_generation_prompt": rnd.random() < 0.5, "bos_token": "<s>",
               "eos_token": "</s>", "date_string": "26 Jul 2024"}
        if rnd.random() < 0.3:
            ctx["tools"] = [TOOL]
        if rnd.random() < 0.5:
            ctx["enable_thinking"] = rnd.random() < 0.5
        out.append(ctx)
    return out


def main():
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        return 0 if len(sys.argv) >= 2 else 2
    contexts = CONTEXTS
    if "--random" in sys.argv:
        i = sys.argv.index("--random")
        contexts = CONTEXTS + random_contexts(int(sys.argv[i + 1]))
        del sys.argv[i:i + 2]
    try:
        lib = ctypes.CDLL(sys.argv[1])
    except OSError as e:
        print(f"jinja-diff: cannot load libllmh from '{sys.argv[1]}': {e}", file=sys.stderr)
        return 2
    lib.llmh_template_render.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
    lib.llmh_template_render.restype = ctypes.c_int
    lib.llmh_last_error.restype = ctypes.c_char_p
    libc = ctypes.CDLL(None)
    libc.free.argtypes = [ctypes.c_void_p]

    def ours(text, ctx):
        out = ctypes.c_void_p()
        st = lib.llmh_template_render(text.encode(), json.dumps(ctx).encode(), ctypes.byref(out))
        if st != 0:
            return None, lib.llmh_last_error().decode(errors="replace")
        s = ctypes.string_at(out).decode()
        libc.free(out)
        return s, None

    env = hf_env()
    cases = []
    templates = sys.argv[2:] or sorted(glob.glob(os.path.join(HERE, "..", "templates", "*.jinja")))
    for path in templates:
        text = open(path, encoding="utf-8").read()
        for i, ctx in enumerate(contexts):
            cases.append((f"{os.path.basename(path)} #{i}", text, ctx))
    if len(sys.argv) == 2:
        for i, s in enumerate(SNIPPETS):
            cases.append((f"snippet #{i}", s, {}))
    bad = 0
    quiet = len(cases) > 200
    for name, text, ctx in cases:
        try:
            want, werr = env.from_string(text).render(**ctx), None
        except Exception as e:  # noqa: BLE001 - any jinja2 failure is an expected error
            want, werr = None, f"{type(e).__name__}: {e}"
        got, gerr = ours(text, ctx)
        if (want is None) != (got is None) or (want is not None and want != got):
            bad += 1
            print(f"DIFF {name}\n  jinja2: {want!r} {werr or ''}\n  llmh:   {got!r} {gerr or ''}")
        else:
            if not quiet:
                print(f"same {name}" + (f" (both fail: {gerr})" if got is None else ""))
    print(f"{len(cases) - bad}/{len(cases)} the same")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
