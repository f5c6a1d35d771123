/* cli-bench-report.c — the outputs of llmhost bench: the table (stdout), CSV,
 * JSON (cJSON) and a self-contained SVG bar chart written by hand.
 * docs/bench.md documents every column and field. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli-bench.h"

static const char *kind_name(llmh_cli_bench_kind k) {
    return k == LLMH_CLI_BENCH_PP ? "pp" : k == LLMH_CLI_BENCH_TG ? "tg" : "pg";
}

static int write_failed(FILE *f, const char *what) {
    if (fflush(f) != 0 || ferror(f)) {
        fprintf(stderr, "llmhost: bench: writing the %s: %s\n", what, strerror(errno));
        return 1;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* table                                                                      */
/* ------------------------------------------------------------------------ */
void llmh_cli_bench_print_table(const llmh_cli_bench_run *r, FILE *out) {
    int nv = r->n_variants;
    int wt = 4, wv = 7;
    for (int t = 0; t < r->n_tests; t++) {
        int n = (int)strlen(r->tests[t].name);
        if (n > wt) wt = n;
    }
    for (int v = 0; v < nv; v++) {
        int n = (int)strlen(r->variants[v].name);
        if (n > wv) wv = n;
    }
    if (wv > 40) wv = 40;
    fprintf(out, "\n%-*s %6s %4s  %-*s %9s %9s %9s", wt, "test", "depth", "np", wv, "variant", "t/s", "min", "max");
    if (nv > 1) fprintf(out, " %7s %15s", "ratio", "ratio min-max");
    fprintf(out, " %9s %7s\n", "bound", "% bound");
    for (int t = 0; t < r->n_tests; t++) {
        const llmh_cli_bench_test *test = &r->tests[t];
        for (int v = 0; v < nv; v++) {
            const llmh_cli_bench_row *row = llmh_cli_bench_at(r, t, v);
            fprintf(out, "%-*s %6d %4d  %-*.*s %9.1f %9.1f %9.1f", wt, test->name, test->depth, test->np, wv, wv,
                    r->variants[v].name, row->median, row->min, row->max);
            if (nv > 1) {
                char range[32];
                if (v == 0) snprintf(range, sizeof range, "(base)");
                else snprintf(range, sizeof range, "%.3f-%.3f", row->ratio_min, row->ratio_max);
                fprintf(out, " %7.3f %15s", row->ratio, range);
            }
            if (row->bound > 0) fprintf(out, " %9.1f %6.1f%%\n", row->bound, 100.0 * row->median / row->bound);
            else fprintf(out, " %9s %7s\n", "-", "-");
        }
    }
    fprintf(out, "\n%d repetitions after %d warm-up run%s per test, variants alternated; t/s = median, ratio = "
                 "median of the per-repetition ratios to '%s'\n",
            r->reps, r->warmup, r->warmup == 1 ? "" : "s", r->variants[0].name);
    if (r->bandwidth_gbs > 0)
        fprintf(out, "memory read bandwidth: %.1f GB/s (%d threads, %d MB, best of 5); bound = decode tokens/s if "
                     "every byte read per step came at that speed\n",
                r->bandwidth_gbs, r->bandwidth_threads, r->bandwidth_mb);
    for (int v = 0; v < nv; v++) {
        const llmh_cli_bench_variant *var = &r->variants[v];
        fprintf(out, "%s: %s, backend %s", var->name, var->arch, var->backend);
        if (var->threads > 0) fprintf(out, " (threads=%d)", var->threads);
        fprintf(out, ", %.1f MB of weights", (double)var->weight_bytes / 1e6);
        if (var->adapter_bytes) fprintf(out, " + %.1f MB of LoRA adapters", (double)var->adapter_bytes / 1e6);
        fprintf(out, " read per token, KV %.1f KB per position", (double)var->kv_bytes_per_pos / 1e3);
        if (var->file_bytes) fprintf(out, ", file %.1f MB", (double)var->file_bytes / 1e6);
        fprintf(out, ", load %.3f s  [%s]\n", var->load_seconds, var->source);
    }
    fprintf(out, "peak RSS (all variants loaded, %lld-token KV per sequence): %.1f MB\n", (long long)r->n_ctx,
            r->peak_rss_mb);
}

/* ------------------------------------------------------------------------ */
/* CSV                                                                        */
/* ------------------------------------------------------------------------ */
/* RFC 4180: quote a field holding a comma, quote or line break. */
static void csv_field(FILE *f, const char *s) {
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

int llmh_cli_bench_write_csv(const llmh_cli_bench_run *r, FILE *f) {
    fprintf(f, "test,kind,n_prompt,n_gen,depth,np,variant,reps,tps_median,tps_min,tps_max,ratio,ratio_min,ratio_max,"
               "bound_tps,bound_fraction\n");
    for (int t = 0; t < r->n_tests; t++) {
        const llmh_cli_bench_test *test = &r->tests[t];
        for (int v = 0; v < r->n_variants; v++) {
            const llmh_cli_bench_row *row = llmh_cli_bench_at(r, t, v);
            fprintf(f, "%s,%s,%d,%d,%d,%d,", test->name, kind_name(test->kind), test->n_prompt, test->n_gen,
                    test->depth, test->np);
            csv_field(f, r->variants[v].name);
            fprintf(f, ",%d,%.3f,%.3f,%.3f,%.5f,%.5f,%.5f,", r->reps, row->median, row->min, row->max, row->ratio,
                    row->ratio_min, row->ratio_max);
            if (row->bound > 0) fprintf(f, "%.3f,%.5f\n", row->bound, row->median / row->bound);
            else fprintf(f, ",\n");
        }
    }
    return write_failed(f, "CSV");
}

/* ------------------------------------------------------------------------ */
/* JSON                                                                       */
/* ------------------------------------------------------------------------ */
static int json_fill(const llmh_cli_bench_run *r, cJSON *root) {
    cJSON *o;
    if (!cJSON_AddStringToObject(root, "llmhost", llmh_version()) || !cJSON_AddStringToObject(root, "date", r->date))
        return -1;
    if (r->bench_file ? !cJSON_AddStringToObject(root, "bench_file", r->bench_file)
                      : !cJSON_AddNullToObject(root, "bench_file"))
        return -1;
    if (!(o = cJSON_AddObjectToObject(root, "settings")) || !cJSON_AddNumberToObject(o, "reps", r->reps) ||
        !cJSON_AddNumberToObject(o, "warmup", r->warmup) || !cJSON_AddNumberToObject(o, "n_ctx", (double)r->n_ctx) ||
        !cJSON_AddNumberToObject(o, "n_batch", r->n_batch) ||
        (r->kv ? !cJSON_AddStringToObject(o, "kv", r->kv) : !cJSON_AddNullToObject(o, "kv")))
        return -1;
    if (r->bandwidth_gbs > 0) {
        if (!(o = cJSON_AddObjectToObject(root, "bandwidth")) || !cJSON_AddNumberToObject(o, "gbs", r->bandwidth_gbs) ||
            !cJSON_AddNumberToObject(o, "threads", r->bandwidth_threads) ||
            !cJSON_AddNumberToObject(o, "buffer_mb", r->bandwidth_mb))
            return -1;
    } else if (!cJSON_AddNullToObject(root, "bandwidth")) {
        return -1;
    }
    if (!cJSON_AddNumberToObject(root, "peak_rss_mb", r->peak_rss_mb)) return -1;
    cJSON *vars = cJSON_AddArrayToObject(root, "variants");
    if (!vars) return -1;
    for (int v = 0; v < r->n_variants; v++) {
        const llmh_cli_bench_variant *var = &r->variants[v];
        cJSON *e = cJSON_CreateObject();
        if (!e || !cJSON_AddItemToArray(vars, e)) {
            cJSON_Delete(e);
            return -1;
        }
        if (!cJSON_AddStringToObject(e, "name", var->name) || !cJSON_AddStringToObject(e, "source", var->source) ||
            !cJSON_AddStringToObject(e, "arch", var->arch) || !cJSON_AddStringToObject(e, "backend", var->backend) ||
            !cJSON_AddNumberToObject(e, "threads", var->threads) ||
            !cJSON_AddNumberToObject(e, "weight_bytes", (double)var->weight_bytes) ||
            !cJSON_AddNumberToObject(e, "adapter_bytes", (double)var->adapter_bytes) ||
            !cJSON_AddNumberToObject(e, "kv_bytes_per_position", (double)var->kv_bytes_per_pos) ||
            !cJSON_AddNumberToObject(e, "file_bytes", (double)var->file_bytes) ||
            !cJSON_AddNumberToObject(e, "load_seconds", var->load_seconds))
            return -1;
    }
    cJSON *res = cJSON_AddArrayToObject(root, "results");
    if (!res) return -1;
    for (int t = 0; t < r->n_tests; t++) {
        const llmh_cli_bench_test *test = &r->tests[t];
        for (int v = 0; v < r->n_variants; v++) {
            const llmh_cli_bench_row *row = llmh_cli_bench_at(r, t, v);
            cJSON *e = cJSON_CreateObject();
            if (!e || !cJSON_AddItemToArray(res, e)) {
                cJSON_Delete(e);
                return -1;
            }
            cJSON *samples = cJSON_CreateDoubleArray(row->samples, r->reps);
            if (!samples || !cJSON_AddStringToObject(e, "test", test->name) ||
                !cJSON_AddStringToObject(e, "kind", kind_name(test->kind)) ||
                !cJSON_AddNumberToObject(e, "n_prompt", test->n_prompt) ||
                !cJSON_AddNumberToObject(e, "n_gen", test->n_gen) || !cJSON_AddNumberToObject(e, "depth", test->depth) ||
                !cJSON_AddNumberToObject(e, "np", test->np) ||
                !cJSON_AddStringToObject(e, "variant", r->variants[v].name) ||
                !cJSON_AddItemToObject(e, "samples_tps", samples)) {
                cJSON_Delete(samples);
                return -1;
            }
            if (!cJSON_AddNumberToObject(e, "median_tps", row->median) ||
                !cJSON_AddNumberToObject(e, "min_tps", row->min) || !cJSON_AddNumberToObject(e, "max_tps", row->max) ||
                !cJSON_AddNumberToObject(e, "ratio", row->ratio) ||
                !cJSON_AddNumberToObject(e, "ratio_min", row->ratio_min) ||
                !cJSON_AddNumberToObject(e, "ratio_max", row->ratio_max))
                return -1;
            if (row->bound > 0) {
                if (!cJSON_AddNumberToObject(e, "bound_tps", row->bound) ||
                    !cJSON_AddNumberToObject(e, "bound_fraction", row->median / row->bound))
                    return -1;
            } else if (!cJSON_AddNullToObject(e, "bound_tps") || !cJSON_AddNullToObject(e, "bound_fraction")) {
                return -1;
            }
        }
    }
    return 0;
}

int llmh_cli_bench_write_json(const llmh_cli_bench_run *r, FILE *f) {
    cJSON *root = cJSON_CreateObject();
    char *text = NULL;
    if (!root || json_fill(r, root) || !(text = cJSON_Print(root))) {
        cJSON_Delete(root);
        fprintf(stderr, "llmhost: bench: out of memory building the JSON\n");
        return 1;
    }
    cJSON_Delete(root);
    fputs(text, f);
    fputc('\n', f);
    cJSON_free(text);
    return write_failed(f, "JSON");
}

/* ------------------------------------------------------------------------ */
/* SVG                                                                        */
/* ------------------------------------------------------------------------ */
#define SVG_W 900
#define SVG_BAR_H 18
#define SVG_BAR_GAP 6
#define SVG_PANEL_TITLE 24
#define SVG_PANEL_AXIS 22
#define SVG_PANEL_GAP 14

static const char *const svg_palette[] = {"#4e79a7", "#f28e2b", "#59a14f", "#e15759",
                                          "#76b7b2", "#edc948", "#b07aa1", "#9c755f"};

static void xml_text(FILE *f, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&apos;", f); break;
        default:
            if ((unsigned char)*s >= 0x20 || *s == '\t') fputc(*s, f);
        }
    }
}

/* A round axis maximum >= v and its tick step (1, 2, 2.5 or 5 x 10^k, 4-6 ticks). */
static void nice_axis(double v, double *axis_max, double *step) {
    if (!(v > 0) || !isfinite(v)) v = 1;
    double raw = v / 5.0, mag = pow(10.0, floor(log10(raw))), s = mag;
    static const double mult[] = {1, 2, 2.5, 5, 10};
    for (size_t i = 0; i < sizeof mult / sizeof mult[0]; i++)
        if (mult[i] * mag >= raw) {
            s = mult[i] * mag;
            break;
        }
    *step = s;
    *axis_max = ceil(v / s - 1e-9) * s;
    if (*axis_max < v) *axis_max += s;
}

static void fmt_tick(char *buf, size_t n, double v) {
    if (v >= 100 || v == floor(v)) snprintf(buf, n, "%.0f", v);
    else if (v >= 1) snprintf(buf, n, "%.1f", v);
    else snprintf(buf, n, "%.2g", v);
}

int llmh_cli_bench_write_svg(const llmh_cli_bench_run *r, FILE *f) {
    int nv = r->n_variants;
    size_t longest = 4;
    for (int v = 0; v < nv; v++) {
        size_t n = strlen(r->variants[v].name);
        if (n > longest) longest = n;
    }
    if (longest > 28) longest = 28;
    int x0 = 16 + 7 * (int)longest + 10; /* bars start after the variant names */
    int x1 = SVG_W - 240;                /* and end before the value labels */
    int legend_rows = (nv + 3) / 4;
    int top = 52 + 18 * legend_rows;
    int panel_h = SVG_PANEL_TITLE + nv * (SVG_BAR_H + SVG_BAR_GAP) + SVG_PANEL_AXIS + SVG_PANEL_GAP;
    int height = top + r->n_tests * panel_h + 40;

    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
            "font-family=\"Helvetica, Arial, sans-serif\" font-size=\"12\">\n",
            SVG_W, height, SVG_W, height);
    fprintf(f, "<title>llmhost bench: tokens/s per test and variant</title>\n");
    fprintf(f, "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n", SVG_W, height);
    fprintf(f, "<text x=\"16\" y=\"24\" font-size=\"16\" font-weight=\"bold\">llmhost bench: tokens/s (median of %d; "
               "whiskers min-max)</text>\n", r->reps);
    for (int v = 0; v < nv; v++) {
        int lx = 16 + (v % 4) * 210, ly = 44 + 18 * (v / 4);
        fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"12\" fill=\"%s\"/>", lx, ly - 10,
                svg_palette[v % 8]);
        fprintf(f, "<text x=\"%d\" y=\"%d\">", lx + 18, ly);
        xml_text(f, r->variants[v].name);
        fprintf(f, "%s</text>\n", v == 0 && nv > 1 ? " (base)" : "");
    }

    for (int t = 0; t < r->n_tests; t++) {
        const llmh_cli_bench_test *test = &r->tests[t];
        int py = top + t * panel_h;
        double vmax = 0;
        for (int v = 0; v < nv; v++) {
            const llmh_cli_bench_row *row = llmh_cli_bench_at(r, t, v);
            if (row->max > vmax) vmax = row->max;
            if (row->bound > vmax) vmax = row->bound;
        }
        double axis_max, step;
        nice_axis(vmax, &axis_max, &step);
        double scale = (double)(x1 - x0) / axis_max;
        int bars_y = py + SVG_PANEL_TITLE;
        int bars_h = nv * (SVG_BAR_H + SVG_BAR_GAP);
        fprintf(f, "<g class=\"panel\">\n<text x=\"16\" y=\"%d\" font-weight=\"bold\">", py + 16);
        xml_text(f, test->name);
        fprintf(f, "</text><text x=\"%d\" y=\"%d\" fill=\"#555555\">depth %d, %d sequence%s</text>\n",
                16 + 8 * (int)strlen(test->name) + 12, py + 16, test->depth, test->np, test->np == 1 ? "" : "s");
        /* grid and ticks */
        for (int k = 0; k * step <= axis_max + 1e-9 * axis_max; k++) {
            double val = k * step;
            double x = x0 + val * scale;
            char tick[32];
            fmt_tick(tick, sizeof tick, val);
            fprintf(f,
                    "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#dddddd\"/>"
                    "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" font-size=\"10\" fill=\"#555555\">%s</text>\n",
                    x, bars_y - 2, x, bars_y + bars_h, x, bars_y + bars_h + 12, tick);
        }
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\" font-size=\"10\" fill=\"#555555\">tokens/s</text>\n",
                x0 - 8, bars_y + bars_h + 12);
        for (int v = 0; v < nv; v++) {
            const llmh_cli_bench_row *row = llmh_cli_bench_at(r, t, v);
            int by = bars_y + v * (SVG_BAR_H + SVG_BAR_GAP);
            double cy = by + SVG_BAR_H / 2.0;
            fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" dominant-baseline=\"middle\">", x0 - 8, cy);
            xml_text(f, r->variants[v].name);
            fprintf(f, "</text>\n");
            fprintf(f, "<rect class=\"bar\" x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\"><title>", x0, by,
                    row->median * scale, SVG_BAR_H, svg_palette[v % 8]);
            xml_text(f, r->variants[v].name);
            fprintf(f, " %s depth %d np %d: median %.1f t/s (min %.1f, max %.1f)", test->name, test->depth, test->np,
                    row->median, row->min, row->max);
            fprintf(f, "</title></rect>\n");
            double wx0 = x0 + row->min * scale, wx1 = x0 + row->max * scale;
            fprintf(f,
                    "<g class=\"whisker\" stroke=\"#222222\" stroke-width=\"1.2\"><line x1=\"%.1f\" y1=\"%.1f\" "
                    "x2=\"%.1f\" y2=\"%.1f\"/><line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>"
                    "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/></g>\n",
                    wx0, cy, wx1, cy, wx0, cy - 5, wx0, cy + 5, wx1, cy - 5, wx1, cy + 5);
            if (row->bound > 0) {
                double bx = x0 + row->bound * scale;
                fprintf(f,
                        "<line class=\"bound\" x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#c00000\" "
                        "stroke-width=\"1.5\" stroke-dasharray=\"3,2\"><title>bandwidth bound %.1f t/s (%.0f%% "
                        "reached)</title></line>\n",
                        bx, by - 2, bx, by + SVG_BAR_H + 2, row->bound, 100.0 * row->median / row->bound);
            }
            fprintf(f, "<text x=\"%d\" y=\"%.1f\" dominant-baseline=\"middle\">%.1f t/s", x1 + 10, cy, row->median);
            if (nv > 1 && v > 0) fprintf(f, " \xc2\xb7 %.3f\xc3\x97", row->ratio);
            if (row->bound > 0) fprintf(f, " \xc2\xb7 %.0f%% of bound", 100.0 * row->median / row->bound);
            fprintf(f, "</text>\n");
        }
        fprintf(f, "</g>\n");
    }
    int fy = top + r->n_tests * panel_h + 14;
    fprintf(f, "<text x=\"16\" y=\"%d\" font-size=\"10\" fill=\"#555555\">", fy);
    fprintf(f, "llmhost %s, %s. %d repetitions after %d warm-up, variants alternated; ratios (\xc3\x97) are medians of "
               "per-repetition ratios to the base.", llmh_version(), r->date, r->reps, r->warmup);
    fprintf(f, "</text>\n");
    if (r->bandwidth_gbs > 0)
        fprintf(f,
                "<text x=\"16\" y=\"%d\" font-size=\"10\" fill=\"#555555\">Red dashes: decode bound at the measured "
                "read bandwidth of %.1f GB/s (%d threads).</text>\n",
                fy + 14, r->bandwidth_gbs, r->bandwidth_threads);
    fprintf(f, "</svg>\n");
    return write_failed(f, "SVG");
}
