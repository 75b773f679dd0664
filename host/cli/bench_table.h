/* `vkllm bench` results: a table of rows whose cells are strings, printed as a markdown table, JSON (an
 * array of objects) or CSV. Columns say where they appear (markdown and/or the data formats) and how JSON
 * writes them. */
#ifndef VKLLM_CLI_BENCH_TABLE_H
#define VKLLM_CLI_BENCH_TABLE_H

#include <stdbool.h>

enum { IN_MD = 1, IN_DATA = 2, IN_BOTH = 3 };   /* markdown column / JSON and CSV field */
enum { K_STR, K_NUM, K_RAW };                   /* JSON: quoted string / number / raw JSON text */

typedef struct column {
    const char *key;     /* JSON/CSV name */
    const char *head;    /* markdown heading */
    int kind;
    int in;
    int right;           /* markdown: right-aligned */
} column;

typedef struct table {
    const column *cols;
    int n_cols;
    char **cells;        /* n_rows x n_cols, NULL = no value */
    int n_rows, cap;
    bool oom;
} table;

typedef enum out_format { OUT_MD, OUT_JSON, OUT_CSV } out_format;

/* An empty table over `cols`; a failed allocation sets t->oom, after which the table ignores writes. */
#define TABLE_INIT(cols) ((table){(cols), (int)(sizeof(cols) / sizeof((cols)[0])), NULL, 0, 0, false})

void table_free(table *t);
void table_add_row(table *t);
/* Sets a cell of the last row (the key must be a column). */
void table_set(table *t, const char *key, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* A number with `prec` decimals; left empty if it is not finite. */
void table_num(table *t, const char *key, double v, int prec);
/* Empties the cells of column `key` that hold `value`. */
void table_clear_value(table *t, const char *key, const char *value);
void table_print(const table *t, out_format f);

#endif
