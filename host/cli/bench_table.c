#include "host/cli/bench_table.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void table_free(table *t)
{
    for (int i = 0; i < t->n_rows * t->n_cols; i++)
        free(t->cells[i]);
    free(t->cells);
    t->cells = NULL;
    t->n_rows = t->cap = 0;
}

void table_add_row(table *t)
{
    if (t->oom)
        return;
    if (t->n_rows == t->cap) {
        int cap = t->cap ? 2 * t->cap : 16;
        char **cells = realloc(t->cells, (size_t)cap * t->n_cols * sizeof *cells);
        if (!cells) {
            t->oom = true;
            return;
        }
        t->cells = cells;
        t->cap = cap;
    }
    for (int c = 0; c < t->n_cols; c++)
        t->cells[t->n_rows * t->n_cols + c] = NULL;
    t->n_rows++;
}

void table_set(table *t, const char *key, const char *fmt, ...)
{
    if (t->oom || t->n_rows == 0)
        return;
    int c = 0;
    while (c < t->n_cols && strcmp(t->cols[c].key, key) != 0)
        c++;
    if (c == t->n_cols)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (!s) {
        t->oom = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    char **cell = &t->cells[(t->n_rows - 1) * t->n_cols + c];
    free(*cell);
    *cell = s;
}

/* A small nonzero value gets the decimals it needs to stay nonzero (a slow call on a loaded CPU device is
 * 0.004 GB/s, not 0.00), up to 6. */
void table_num(table *t, const char *key, double v, int prec)
{
    if (!isfinite(v))
        return;
    while (prec < 6 && v != 0 && fabs(v) < 0.5 * pow(10, -prec))
        prec++;
    table_set(t, key, "%.*f", prec, v);
}

static const char *cell(const table *t, int r, int c) { return t->cells[r * t->n_cols + c]; }

void table_clear_value(table *t, const char *key, const char *value)
{
    for (int c = 0; c < t->n_cols; c++)
        if (!strcmp(t->cols[c].key, key))
            for (int r = 0; r < t->n_rows; r++) {
                char **s = &t->cells[r * t->n_cols + c];
                if (*s && !strcmp(*s, value)) {
                    free(*s);
                    *s = NULL;
                }
            }
}

static void print_md(const table *t)
{
    int width[32] = {0};
    for (int c = 0; c < t->n_cols && c < 32; c++) {
        if (!(t->cols[c].in & IN_MD))
            continue;
        width[c] = (int)strlen(t->cols[c].head);
        for (int r = 0; r < t->n_rows; r++) {
            const char *s = cell(t, r, c);
            int w = s ? (int)strlen(s) : 1;
            /* "±" and "µ" take two bytes for one column */
            for (const char *p = s; p && *p; p++)
                if (((unsigned char)*p & 0xC0) == 0x80)
                    w--;
            if (w > width[c])
                width[c] = w;
        }
    }
    for (int r = -2; r < t->n_rows; r++) {
        printf("|");
        for (int c = 0; c < t->n_cols && c < 32; c++) {
            if (!(t->cols[c].in & IN_MD))
                continue;
            if (r == -1) {
                for (int k = 0; k < width[c] + 2; k++)
                    putchar(k == 0 || k == width[c] + 1 ? ' ' : k == width[c] && t->cols[c].right ? ':' : '-');
                putchar('|');
                continue;
            }
            const char *s = r == -2 ? t->cols[c].head : cell(t, r, c);
            if (!s)
                s = "-";
            int pad = width[c] - (int)strlen(s);
            for (const char *p = s; *p; p++)
                if (((unsigned char)*p & 0xC0) == 0x80)
                    pad++;
            if (pad < 0)
                pad = 0;
            if (t->cols[c].right)
                printf(" %*s%s |", pad, "", s);
            else
                printf(" %s%*s |", s, pad, "");
        }
        printf("\n");
    }
}

static void print_json_string(const char *s)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p == '\n')
            printf("\\n");
        else if (*p < 0x20)
            printf("\\u%04x", *p);
        else
            putchar(*p);
    }
    putchar('"');
}

static void print_json(const table *t)
{
    printf("[");
    for (int r = 0; r < t->n_rows; r++) {
        printf("%s\n  {", r ? "," : "");
        bool first = true;
        for (int c = 0; c < t->n_cols; c++) {
            if (!(t->cols[c].in & IN_DATA))
                continue;
            printf("%s\n    \"%s\": ", first ? "" : ",", t->cols[c].key);
            first = false;
            const char *s = cell(t, r, c);
            if (!s)
                printf("null");
            else if (t->cols[c].kind == K_STR)
                print_json_string(s);
            else
                printf("%s", s);
        }
        printf("\n  }");
    }
    printf("\n]\n");
}

/* Quoted only when it has to be. */
static void print_csv_field(const char *s)
{
    if (!strpbrk(s, ",\"\n\r")) {
        printf("%s", s);
        return;
    }
    putchar('"');
    for (const char *p = s; *p; p++) {
        if (*p == '"')
            putchar('"');
        putchar(*p);
    }
    putchar('"');
}

static void print_csv(const table *t)
{
    bool first = true;
    for (int c = 0; c < t->n_cols; c++)
        if (t->cols[c].in & IN_DATA) {
            printf("%s%s", first ? "" : ",", t->cols[c].key);
            first = false;
        }
    printf("\n");
    for (int r = 0; r < t->n_rows; r++) {
        first = true;
        for (int c = 0; c < t->n_cols; c++) {
            if (!(t->cols[c].in & IN_DATA))
                continue;
            if (!first)
                putchar(',');
            first = false;
            const char *s = cell(t, r, c);
            if (s)
                print_csv_field(s);
        }
        printf("\n");
    }
}

void table_print(const table *t, out_format f)
{
    if (f == OUT_JSON)
        print_json(t);
    else if (f == OUT_CSV)
        print_csv(t);
    else
        print_md(t);
}
