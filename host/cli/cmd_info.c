/* `vkllm info MODEL`: a GGUF file's version, architecture, hyper-parameters, tokenizer and tensor table. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/cli/cli.h"
#include "host/format/gguf.h"
#include "host/format/quant.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: vkllm info [--kv] MODEL.gguf\n\n"
                 "Prints the GGUF version, architecture, name, hyper-parameters, tokenizer and the tensor\n"
                 "table (name, type, shape, bytes) with totals.\n\n"
                 "  --kv     also print every key/value of the file (long arrays abbreviated)\n"
                 "  -h, --help\n");
}

/* Prints a string value with non-printable bytes escaped, at most max bytes (0: no limit). */
static void print_str(const char *s, uint64_t len, uint64_t max)
{
    putchar('"');
    uint64_t n = max && len > max ? max : len;
    for (uint64_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c == '\n')
            printf("\\n");
        else if (c < 0x20 || c == 0x7f)
            printf("\\x%02x", c);
        else
            putchar(c);   /* UTF-8 sequences pass through */
    }
    putchar('"');
    if (n < len)
        printf("... (%" PRIu64 " bytes)", len);
}

/* Element i of a numeric array (raw little-endian data). */
static void print_arr_elem(const uint8_t *p, gguf_value_type t, uint64_t i)
{
    size_t sz = vkl_gguf_type_size(t);
    uint8_t b[8] = {0};
    for (size_t k = 0; k < sz; k++)   /* little-endian bytes -> host value, whatever the host order */
        b[k] = p[i * sz + k];
    uint64_t u = 0;
    for (size_t k = sz; k-- > 0;)
        u = (u << 8) | b[k];
    switch (t) {
    case GGUF_TYPE_UINT8: case GGUF_TYPE_UINT16: case GGUF_TYPE_UINT32: case GGUF_TYPE_UINT64:
        printf("%" PRIu64, u);
        break;
    case GGUF_TYPE_INT8: printf("%d", (int)(int8_t)u); break;
    case GGUF_TYPE_INT16: printf("%d", (int)(int16_t)u); break;
    case GGUF_TYPE_INT32: printf("%" PRId32, (int32_t)(uint32_t)u); break;
    case GGUF_TYPE_INT64: printf("%" PRId64, (int64_t)u); break;
    case GGUF_TYPE_BOOL: printf("%s", u ? "true" : "false"); break;
    case GGUF_TYPE_FLOAT32: {
        uint32_t w = (uint32_t)u;
        float f;
        memcpy(&f, &w, sizeof f);
        printf("%g", f);
        break;
    }
    case GGUF_TYPE_FLOAT64: {
        double d;
        memcpy(&d, &u, sizeof d);
        printf("%g", d);
        break;
    }
    default: printf("?"); break;
    }
}

static void print_value(const gguf_file *f, uint64_t i, uint64_t max_elems, uint64_t max_str)
{
    const char *key = vkl_gguf_kv_key(f, i);
    gguf_value_type t = vkl_gguf_kv_type(f, i);
    uint64_t u;
    int64_t s;
    double d;
    bool b;
    const char *str;
    uint64_t len;
    switch (t) {
    case GGUF_TYPE_UINT8: case GGUF_TYPE_UINT16: case GGUF_TYPE_UINT32: case GGUF_TYPE_UINT64:
        if (vkl_gguf_get_u64(f, key, &u))
            printf("%" PRIu64, u);
        break;
    case GGUF_TYPE_INT8: case GGUF_TYPE_INT16: case GGUF_TYPE_INT32: case GGUF_TYPE_INT64:
        if (vkl_gguf_get_i64(f, key, &s))
            printf("%" PRId64, s);
        break;
    case GGUF_TYPE_FLOAT32: case GGUF_TYPE_FLOAT64:
        if (vkl_gguf_get_f64(f, key, &d))
            printf("%g", d);
        break;
    case GGUF_TYPE_BOOL:
        if (vkl_gguf_get_bool(f, key, &b))
            printf("%s", b ? "true" : "false");
        break;
    case GGUF_TYPE_STRING:
        if (vkl_gguf_get_str(f, key, &str, &len))
            print_str(str, len, max_str);
        break;
    case GGUF_TYPE_ARRAY: {
        gguf_value_type et;
        uint64_t n;
        if (!vkl_gguf_get_arr_info(f, key, &et, &n))
            break;
        printf("[%s x %" PRIu64 "]", vkl_gguf_type_name(et), n);
        if (et == GGUF_TYPE_ARRAY || n == 0)
            break;
        printf(" ");
        const uint8_t *data = vkl_gguf_get_arr_data(f, key);
        uint64_t shown = n < max_elems ? n : max_elems;
        for (uint64_t k = 0; k < shown; k++) {
            if (k)
                printf(", ");
            if (et == GGUF_TYPE_STRING) {
                if (vkl_gguf_get_arr_str(f, key, k, &str, &len))
                    print_str(str, len, 32);
            } else if (data) {
                print_arr_elem(data, et, k);
            }
        }
        if (shown < n)
            printf(", ...");
        break;
    }
    }
}

static void print_shape(const gguf_tensor *t, char *buf, size_t size)
{
    int k = snprintf(buf, size, "[");
    for (uint32_t d = 0; d < t->n_dims && k > 0 && (size_t)k < size; d++)
        k += snprintf(buf + k, size - (size_t)k, "%s%" PRIu64, d ? ", " : "", t->ne[d]);
    if (k > 0 && (size_t)k < size)
        snprintf(buf + k, size - (size_t)k, "]");
}

static void print_bytes(uint64_t n)
{
    if (n >= (1ull << 30))
        printf("%.2f GiB", n / 1073741824.0);
    else if (n >= (1ull << 20))
        printf("%.2f MiB", n / 1048576.0);
    else if (n >= 1024)
        printf("%.1f KiB", n / 1024.0);
    else
        printf("%" PRIu64 " B", n);
}

static void print_count(uint64_t n)
{
    if (n >= 1000000000ull)
        printf("%.2f B", n / 1e9);
    else if (n >= 1000000ull)
        printf("%.2f M", n / 1e6);
    else if (n >= 1000ull)
        printf("%.1f K", n / 1e3);
    else
        printf("%" PRIu64, n);
}

static const char *tokenizer_kind(const char *model, uint64_t len)
{
    if (len == 5 && !memcmp(model, "llama", 5))
        return "SentencePiece";
    if (len == 4 && !memcmp(model, "gpt2", 4))
        return "byte-level BPE";
    if (len == 4 && !memcmp(model, "bert", 4))
        return "WordPiece";
    if (len == 2 && !memcmp(model, "t5", 2))
        return "Unigram";
    return NULL;
}

int cmd_info(int argc, char **argv)
{
    const char *path = NULL;
    bool all_kv = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--kv")) {
            all_kv = true;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "vkllm: info: unknown option '%s' (try 'vkllm info --help')\n", argv[i]);
            return 1;
        } else if (path) {
            fprintf(stderr, "vkllm: info: expected one model file, got '%s' and '%s'\n", path, argv[i]);
            return 1;
        } else {
            path = argv[i];
        }
    }
    if (!path) {
        fprintf(stderr, "vkllm: info: no model file given (usage: vkllm info [--kv] MODEL.gguf)\n");
        return 1;
    }
    gguf_file *f;
    if (vkl_gguf_open(path, &f) != VKLLM_OK) {
        fprintf(stderr, "vkllm: %s\n", vkr_last_error());
        return 1;
    }

    const char *s;
    uint64_t len;
    printf("file:          %s (", path);
    print_bytes(vkl_gguf_file_size(f));
    printf(")\n");
    printf("GGUF version:  %u (alignment %u, data at byte %" PRIu64 ")\n", vkl_gguf_version(f), vkl_gguf_alignment(f),
           vkl_gguf_data_offset(f));
    char arch[64] = "";
    if (vkl_gguf_get_str(f, "general.architecture", &s, &len)) {
        snprintf(arch, sizeof arch, "%.*s", (int)(len < 63 ? len : 63), s);
        printf("architecture:  %s\n", arch);
    } else {
        printf("architecture:  (missing)\n");
    }
    if (vkl_gguf_get_str(f, "general.name", &s, &len))
        printf("name:          %.*s\n", (int)(len < 200 ? len : 200), s);
    uint32_t ft;
    if (vkl_gguf_get_u32(f, "general.file_type", &ft))
        printf("file type:     %u%s%s%s\n", ft, vkl_ggml_file_type_name(ft) ? " (" : "",
               vkl_ggml_file_type_name(ft) ? vkl_ggml_file_type_name(ft) : "", vkl_ggml_file_type_name(ft) ? ")" : "");

    /* hyper-parameters: every "<arch>." key */
    size_t alen = strlen(arch);
    bool any = false;
    for (uint64_t i = 0; i < vkl_gguf_n_kv(f); i++) {
        const char *key = vkl_gguf_kv_key(f, i);
        if (!alen || strncmp(key, arch, alen) || key[alen] != '.')
            continue;
        if (!any)
            printf("hyper-parameters:\n");
        any = true;
        printf("  %-40s ", key);
        print_value(f, i, 8, 80);
        printf("\n");
    }

    if (vkl_gguf_get_str(f, "tokenizer.ggml.model", &s, &len)) {
        const char *kind = tokenizer_kind(s, len);
        printf("tokenizer:     %.*s", (int)(len < 64 ? len : 64), s);
        if (kind)
            printf(" (%s)", kind);
        gguf_value_type et;
        uint64_t n;
        if (vkl_gguf_get_arr_info(f, "tokenizer.ggml.tokens", &et, &n))
            printf(", %" PRIu64 " tokens", n);
        const char *pre;
        uint64_t plen;
        if (vkl_gguf_get_str(f, "tokenizer.ggml.pre", &pre, &plen))
            printf(", pre-tokenizer %.*s", (int)(plen < 64 ? plen : 64), pre);
        uint32_t id;
        if (vkl_gguf_get_u32(f, "tokenizer.ggml.bos_token_id", &id))
            printf(", bos %u", id);
        if (vkl_gguf_get_u32(f, "tokenizer.ggml.eos_token_id", &id))
            printf(", eos %u", id);
        if (vkl_gguf_get_arr_info(f, "tokenizer.ggml.merges", &et, &n))
            printf(", %" PRIu64 " merges", n);
        printf("\n");
    } else {
        printf("tokenizer:     (none)\n");
    }

    if (all_kv) {
        printf("key/values: %" PRIu64 "\n", vkl_gguf_n_kv(f));
        for (uint64_t i = 0; i < vkl_gguf_n_kv(f); i++) {
            printf("  %-40s %-8s ", vkl_gguf_kv_key(f, i), vkl_gguf_type_name(vkl_gguf_kv_type(f, i)));
            print_value(f, i, 8, 120);
            printf("\n");
        }
    }

    uint64_t nt = vkl_gguf_n_tensors(f);
    printf("tensors: %" PRIu64 "\n", nt);
    printf("  %5s  %-36s %-8s %-24s %14s\n", "#", "name", "type", "shape", "bytes");
    uint64_t total_bytes = 0, total_elems = 0, unknown = 0;
    uint64_t per_type_count[64] = {0}, per_type_bytes[64] = {0};
    for (uint64_t i = 0; i < nt; i++) {
        const gguf_tensor *t = vkl_gguf_tensor_at(f, i);
        const char *tn = vkl_ggml_type_name(t->type);
        char tbuf[24], shape[128];
        if (!tn) { /* a type we cannot run: its name if GGUF defines one */
            if (vkl_ggml_type_label(t->type))
                snprintf(tbuf, sizeof tbuf, "%s", vkl_ggml_type_label(t->type));
            else
                snprintf(tbuf, sizeof tbuf, "type %u", t->type);
            tn = tbuf;
            unknown++;
        }
        print_shape(t, shape, sizeof shape);
        printf("  %5" PRIu64 "  %-36s %-8s %-24s ", i, t->name, tn, shape);
        if (t->data)
            printf("%14" PRIu64 "\n", t->nbytes);
        else
            printf("%14s\n", "?");
        total_bytes += t->nbytes;
        total_elems += t->n_elements;
        if (t->type < 64) {
            per_type_count[t->type]++;
            per_type_bytes[t->type] += t->nbytes;
        }
    }
    printf("total: %" PRIu64 " tensors, %" PRIu64 " parameters (", nt, total_elems);
    print_count(total_elems);
    printf("), ");
    print_bytes(total_bytes);
    printf("\n");
    for (size_t i = 0; i < vkl_ggml_type_count(); i++) {   /* the mix of types, in the type table's order */
        const ggml_type_info *ty = vkl_ggml_type_at(i);
        if (ty->id >= 64 || !per_type_count[ty->id])
            continue;
        printf("  %-6s %6" PRIu64 " tensors, ", ty->name, per_type_count[ty->id]);
        print_bytes(per_type_bytes[ty->id]);
        printf("%s\n", ty->kernels ? "" : " (no kernels for this type yet)");
    }
    if (unknown)
        printf("  %" PRIu64 " tensor(s) of a type vkllm cannot run\n", unknown);
    vkl_gguf_close(f);
    return 0;
}
