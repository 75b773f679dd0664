/* GGUF reader (versions 2 and 3) and streaming writer (version 3), written from the GGUF specification.
 *
 * File layout (all little-endian):
 *   u32 magic "GGUF", u32 version, u64 n_tensors, u64 n_kv,
 *   n_kv    x { string key, u32 value_type, value },
 *   n_tensors x { string name, u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset },
 *   padding to general.alignment (default 32), then the data section; tensor offsets are relative to it.
 *   string = u64 length + bytes (no NUL); array = u32 element type + u64 count + elements.
 *
 * The reader never trusts a length or count: every read is checked against the bytes left in the file
 * before anything is read or allocated, and every size computation is checked for overflow. */
#define _POSIX_C_SOURCE 200809L

#include "host/format/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "host/format/quant.h"

#define GGUF_DEFAULT_ALIGNMENT 32u
#define GGUF_HEADER_BYTES 24u
#define GGUF_MAX_KEY_LEN 65535u  /* the specification's limit on key length */
#define GGUF_MAX_NESTING 8       /* arrays of arrays deeper than this are rejected */
/* Smallest possible encodings, used to reject counts that cannot fit the file before allocating:
 * key/value: u64 key length + 1 key byte + u32 type + 1 value byte;
 * tensor info: u64 name length + 1 name byte + u32 n_dims + one u64 dim + u32 type + u64 offset. */
#define GGUF_MIN_KV_BYTES 14u
#define GGUF_MIN_TENSOR_INFO_BYTES 33u

typedef unsigned long long ull;

/* ---------------------------------------------------------------------------------------------------- */
/* Little-endian helpers */

static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint64_t le64(const uint8_t *p) { return (uint64_t)le32(p) | ((uint64_t)le32(p + 4) << 32); }

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}
static void put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)v);
    put32(p + 4, (uint32_t)(v >> 32));
}

/* Size in bytes of a scalar value type; 0 for string, array and unknown types. */
size_t vkl_gguf_type_size(gguf_value_type t)
{
    switch (t) {
    case GGUF_TYPE_UINT8: case GGUF_TYPE_INT8: case GGUF_TYPE_BOOL: return 1;
    case GGUF_TYPE_UINT16: case GGUF_TYPE_INT16: return 2;
    case GGUF_TYPE_UINT32: case GGUF_TYPE_INT32: case GGUF_TYPE_FLOAT32: return 4;
    case GGUF_TYPE_UINT64: case GGUF_TYPE_INT64: case GGUF_TYPE_FLOAT64: return 8;
    case GGUF_TYPE_STRING: case GGUF_TYPE_ARRAY: return 0;
    }
    return 0;
}

const char *vkl_gguf_type_name(gguf_value_type t)
{
    switch (t) {
    case GGUF_TYPE_UINT8: return "u8";
    case GGUF_TYPE_INT8: return "i8";
    case GGUF_TYPE_UINT16: return "u16";
    case GGUF_TYPE_INT16: return "i16";
    case GGUF_TYPE_UINT32: return "u32";
    case GGUF_TYPE_INT32: return "i32";
    case GGUF_TYPE_FLOAT32: return "f32";
    case GGUF_TYPE_BOOL: return "bool";
    case GGUF_TYPE_STRING: return "string";
    case GGUF_TYPE_ARRAY: return "array";
    case GGUF_TYPE_UINT64: return "u64";
    case GGUF_TYPE_INT64: return "i64";
    case GGUF_TYPE_FLOAT64: return "f64";
    }
    return "unknown";
}

static bool type_is_known(uint32_t t) { return t <= GGUF_TYPE_FLOAT64; }

/* ---------------------------------------------------------------------------------------------------- */
/* Reader state */

typedef struct gguf_kv {
    char *key;                 /* NUL-terminated copy */
    gguf_value_type type;
    const uint8_t *val;        /* scalar: its bytes; string: its characters; array: its first element */
    uint64_t len;              /* string: length in bytes; array: element count */
    gguf_value_type arr_type;  /* arrays: the element type */
    uint64_t *str_pos;         /* arrays of strings: file position of each element's length field */
} gguf_kv;

struct gguf_file {
    const uint8_t *base;       /* the metadata: vkl_gguf_open's own copy, or vkl_gguf_open_memory's buffer */
    uint64_t meta_size;        /* bytes at base: the whole buffer, or the start of the file read so far */
    uint64_t size;             /* of the whole file */
    const uint8_t *data_base;  /* what gguf_tensor.data points into: the mapping, or the buffer */
    uint8_t *meta;             /* vkl_gguf_open: owned copy of the file's start */
    void *map;                 /* vkl_gguf_open: read-only mapping of the file for gguf_tensor.data, else NULL */
    size_t map_size;
    int fd;                    /* vkl_gguf_open: kept open for vkl_gguf_tensor_read; -1 for vkl_gguf_open_memory */
    char *path;                /* vkl_gguf_open: for messages */
    bool meta_short;           /* the last parse ran past meta_size while meta_size < size */
    uint32_t version;
    uint32_t alignment;
    uint64_t data_offset;      /* start of the data section in the file */
    uint64_t n_kv, cap_kv;     /* n_kv entries are initialized */
    gguf_kv *kv;
    uint64_t n_tensors, cap_tensors;
    gguf_tensor *tensors;
    uint64_t *kv_hash, *tensor_hash;   /* open addressing, slot = index + 1, 0 = empty */
    uint64_t kv_hash_mask, tensor_hash_mask;
};

typedef struct reader {
    const uint8_t *b;
    uint64_t size, pos;
    bool past_end;             /* a read was refused for want of bytes (vkl_gguf_open may then read more) */
} reader;

static uint64_t rd_left(const reader *r) { return r->size - r->pos; }

/* Whether n more bytes are there; notes when they are not. */
static bool rd_has(reader *r, uint64_t n)
{
    if (n <= rd_left(r))
        return true;
    r->past_end = true;
    return false;
}

/* Whether count elements of at least min_elem bytes each can follow; notes when they cannot. */
static bool rd_has_elems(reader *r, uint64_t count, uint64_t min_elem)
{
    if (count <= rd_left(r) / min_elem)
        return true;
    r->past_end = true;
    return false;
}

static bool rd_u32(reader *r, uint32_t *v)
{
    if (!rd_has(r, 4))
        return false;
    *v = le32(r->b + r->pos);
    r->pos += 4;
    return true;
}

static bool rd_u64(reader *r, uint64_t *v)
{
    if (!rd_has(r, 8))
        return false;
    *v = le64(r->b + r->pos);
    r->pos += 8;
    return true;
}

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;   /* FNV-1a */
    for (; *s; s++) {
        h ^= (uint8_t)*s;
        h *= 1099511628211ull;
    }
    return h;
}

/* Builds a table of n names; returns the index of the first duplicate in *dup (or UINT64_MAX). */
static vkllm_status build_hash(uint64_t n, const char *(*name_of)(const gguf_file *, uint64_t), const gguf_file *f,
                               uint64_t **table, uint64_t *mask, uint64_t *dup)
{
    uint64_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    uint64_t *t = calloc(cap, sizeof *t);
    if (!t)
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory building a GGUF index");
    *dup = UINT64_MAX;
    for (uint64_t i = 0; i < n; i++) {
        const char *name = name_of(f, i);
        uint64_t h = hash_str(name) & (cap - 1);
        while (t[h]) {
            if (!strcmp(name_of(f, t[h] - 1), name)) {
                *dup = i;
                break;
            }
            h = (h + 1) & (cap - 1);
        }
        if (*dup != UINT64_MAX)
            break;
        t[h] = i + 1;
    }
    *table = t;
    *mask = cap - 1;
    return VKLLM_OK;
}

static const char *kv_name(const gguf_file *f, uint64_t i) { return f->kv[i].key; }
static const char *tensor_name(const gguf_file *f, uint64_t i) { return f->tensors[i].name; }

static int64_t hash_find(const uint64_t *table, uint64_t mask, const char *(*name_of)(const gguf_file *, uint64_t),
                         const gguf_file *f, const char *name)
{
    if (!table || !name)
        return -1;
    uint64_t h = hash_str(name) & mask;
    while (table[h]) {
        if (!strcmp(name_of(f, table[h] - 1), name))
            return (int64_t)(table[h] - 1);
        h = (h + 1) & mask;
    }
    return -1;
}

/* Reads a string's length and checks its bytes are inside the file; on success r->pos is past it. */
static bool rd_string(reader *r, const uint8_t **s, uint64_t *len)
{
    uint64_t n;
    if (!rd_u64(r, &n) || !rd_has(r, n))
        return false;
    *s = r->b + r->pos;
    *len = n;
    r->pos += n;
    return true;
}

/* A copy of a name (key or tensor name) as a C string. Fails (storing "<what>: <reason>") on empty names,
 * NUL bytes and allocation failure. */
static vkllm_status copy_name(const uint8_t *s, uint64_t len, char **out, const char *what, uint64_t i)
{
    *out = NULL;
    if (len == 0)
        return vkr_error(VKLLM_ERR_FORMAT, "%s %llu: empty name", what, (ull)i);
    if (memchr(s, 0, len))
        return vkr_error(VKLLM_ERR_FORMAT, "%s %llu: name contains a NUL byte", what, (ull)i);
    char *c = malloc(len + 1);
    if (!c)
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "%s %llu: out of host memory", what, (ull)i);
    memcpy(c, s, len);
    c[len] = '\0';
    *out = c;
    return VKLLM_OK;
}

/* Skips (validating) one value of type t; depth counts enclosing arrays. On failure writes the reason
 * into msg and sets *trunc when the reason is that the value runs past the end of the file. */
static bool skip_value(reader *r, uint32_t t, int depth, char *msg, size_t msg_size, bool *trunc)
{
    if (!type_is_known(t)) {
        snprintf(msg, msg_size, "unknown value type %u", t);
        return false;
    }
    if (t == GGUF_TYPE_STRING) {
        uint64_t n;
        if (!rd_u64(r, &n)) {
            snprintf(msg, msg_size, "string length extends past end of file");
            *trunc = true;
            return false;
        }
        if (!rd_has(r, n)) {
            snprintf(msg, msg_size, "string length %llu extends past end of file", (ull)n);
            *trunc = true;
            return false;
        }
        r->pos += n;
        return true;
    }
    if (t != GGUF_TYPE_ARRAY) {
        size_t sz = vkl_gguf_type_size((gguf_value_type)t);
        if (!rd_has(r, sz)) {
            snprintf(msg, msg_size, "%s value extends past end of file", vkl_gguf_type_name((gguf_value_type)t));
            *trunc = true;
            return false;
        }
        r->pos += sz;
        return true;
    }
    /* array */
    if (depth >= GGUF_MAX_NESTING) {
        snprintf(msg, msg_size, "arrays nested more than %d deep", GGUF_MAX_NESTING);
        return false;
    }
    uint32_t et;
    uint64_t count;
    if (!rd_u32(r, &et) || !rd_u64(r, &count)) {
        snprintf(msg, msg_size, "array header extends past end of file");
        *trunc = true;
        return false;
    }
    if (!type_is_known(et)) {
        snprintf(msg, msg_size, "array of unknown element type %u", et);
        return false;
    }
    /* minimum bytes per element: scalars their size, strings their length field, arrays their header */
    uint64_t min_elem = et == GGUF_TYPE_STRING ? 8 : et == GGUF_TYPE_ARRAY ? 12 : vkl_gguf_type_size((gguf_value_type)et);
    if (!rd_has_elems(r, count, min_elem)) {
        snprintf(msg, msg_size, "array count %llu of %s elements extends past end of file", (ull)count,
                 vkl_gguf_type_name((gguf_value_type)et));
        *trunc = true;
        return false;
    }
    if (et != GGUF_TYPE_STRING && et != GGUF_TYPE_ARRAY) {
        r->pos += count * min_elem;
        return true;
    }
    for (uint64_t i = 0; i < count; i++) {
        if (!skip_value(r, et, depth + 1, msg, msg_size, trunc)) {
            char inner[200];
            snprintf(inner, sizeof inner, "%s", msg);
            snprintf(msg, msg_size, "array element %llu: %s", (ull)i, inner);
            return false;
        }
    }
    return true;
}

/* Parses key/value i at r->pos into f->kv[f->n_kv]. */
static vkllm_status parse_kv(gguf_file *f, reader *r, uint64_t i)
{
    const uint8_t *ks;
    uint64_t klen;
    if (!rd_string(r, &ks, &klen))
        return vkr_error(VKLLM_ERR_FORMAT, "truncated file: key/value %llu: key extends past end of file", (ull)i);
    if (klen > GGUF_MAX_KEY_LEN)
        return vkr_error(VKLLM_ERR_FORMAT, "key/value %llu: key length %llu exceeds %u", (ull)i, (ull)klen,
                         GGUF_MAX_KEY_LEN);
    gguf_kv kv;
    memset(&kv, 0, sizeof kv);
    vkllm_status st = copy_name(ks, klen, &kv.key, "key/value", i);
    if (st != VKLLM_OK)
        return st;
    /* From here kv.key is owned: store the entry at once so vkl_gguf_close frees it on any error. */
    f->kv[f->n_kv++] = kv;
    gguf_kv *e = &f->kv[f->n_kv - 1];

    uint32_t t;
    if (!rd_u32(r, &t))
        return vkr_error(VKLLM_ERR_FORMAT, "truncated file: key/value %llu (%s) extends past end of file", (ull)i,
                         e->key);
    if (!type_is_known(t))
        return vkr_error(VKLLM_ERR_FORMAT, "key/value %llu (%s): unknown value type %u", (ull)i, e->key, t);
    e->type = (gguf_value_type)t;

    char msg[256];
    bool trunc = false;
    if (t == GGUF_TYPE_STRING) {
        if (!rd_string(r, &e->val, &e->len))
            return vkr_error(VKLLM_ERR_FORMAT, "truncated file: key/value %llu (%s) extends past end of file: "
                             "string value", (ull)i, e->key);
        return VKLLM_OK;
    }
    if (t != GGUF_TYPE_ARRAY) {
        e->val = r->b + r->pos;
        if (!skip_value(r, t, 0, msg, sizeof msg, &trunc))
            return vkr_error(VKLLM_ERR_FORMAT, "truncated file: key/value %llu (%s) extends past end of file",
                             (ull)i, e->key);
        return VKLLM_OK;
    }
    /* array: element type, count, then elements */
    uint32_t et;
    uint64_t count;
    if (!rd_u32(r, &et) || !rd_u64(r, &count))
        return vkr_error(VKLLM_ERR_FORMAT, "truncated file: key/value %llu (%s) extends past end of file: "
                         "array header", (ull)i, e->key);
    if (!type_is_known(et))
        return vkr_error(VKLLM_ERR_FORMAT, "key/value %llu (%s): array of unknown element type %u", (ull)i,
                         e->key, et);
    e->arr_type = (gguf_value_type)et;
    e->len = count;
    e->val = r->b + r->pos;
    uint64_t min_elem = et == GGUF_TYPE_STRING ? 8 : et == GGUF_TYPE_ARRAY ? 12 : vkl_gguf_type_size((gguf_value_type)et);
    if (!rd_has_elems(r, count, min_elem))
        return vkr_error(VKLLM_ERR_FORMAT, "truncated file: key/value %llu (%s): array count %llu of %s elements "
                         "extends past end of file", (ull)i, e->key, (ull)count, vkl_gguf_type_name(e->arr_type));
    if (et == GGUF_TYPE_STRING) {
        /* count <= bytes left / 8, so this allocation is bounded by the file size */
        e->str_pos = malloc((size_t)(count ? count : 1) * sizeof *e->str_pos);
        if (!e->str_pos)
            return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "key/value %llu (%s): out of host memory for %llu strings",
                             (ull)i, e->key, (ull)count);
        for (uint64_t j = 0; j < count; j++) {
            e->str_pos[j] = r->pos;
            const uint8_t *s;
            uint64_t n;
            if (!rd_string(r, &s, &n))
                return vkr_error(VKLLM_ERR_FORMAT, "truncated file: key/value %llu (%s) extends past end of file: "
                                 "string %llu of %llu", (ull)i, e->key, (ull)j, (ull)count);
        }
        return VKLLM_OK;
    }
    if (et == GGUF_TYPE_ARRAY) {
        for (uint64_t j = 0; j < count; j++)
            if (!skip_value(r, GGUF_TYPE_ARRAY, 1, msg, sizeof msg, &trunc))
                return vkr_error(VKLLM_ERR_FORMAT, "%skey/value %llu (%s): array element %llu: %s",
                                 trunc ? "truncated file: " : "", (ull)i, e->key, (ull)j, msg);
        return VKLLM_OK;
    }
    r->pos += count * min_elem;
    return VKLLM_OK;
}

/* Reads any integer-typed value as a sign flag + 64-bit magnitude. */
static bool kv_int(const gguf_kv *e, bool *neg, uint64_t *mag)
{
    int64_t s;
    *neg = false;
    switch (e->type) {
    case GGUF_TYPE_UINT8: *mag = e->val[0]; return true;
    case GGUF_TYPE_UINT16: *mag = le16(e->val); return true;
    case GGUF_TYPE_UINT32: *mag = le32(e->val); return true;
    case GGUF_TYPE_UINT64: *mag = le64(e->val); return true;
    case GGUF_TYPE_INT8: s = (int8_t)e->val[0]; break;
    case GGUF_TYPE_INT16: s = (int16_t)le16(e->val); break;
    case GGUF_TYPE_INT32: s = (int32_t)le32(e->val); break;
    case GGUF_TYPE_INT64: s = (int64_t)le64(e->val); break;
    default: return false;
    }
    if (s < 0) {
        *neg = true;
        *mag = (uint64_t)0 - (uint64_t)s;   /* well defined for INT64_MIN too */
    } else {
        *mag = (uint64_t)s;
    }
    return true;
}

static vkllm_status parse_tensor_info(gguf_file *f, reader *r, uint64_t i)
{
    const uint8_t *ns;
    uint64_t nlen;
    if (!rd_string(r, &ns, &nlen))
        return vkr_error(VKLLM_ERR_FORMAT, "truncated file: tensor info %llu: name extends past end of file", (ull)i);
    gguf_tensor t;
    memset(&t, 0, sizeof t);
    char *name;
    vkllm_status st = copy_name(ns, nlen, &name, "tensor info", i);
    if (st != VKLLM_OK)
        return st;
    t.name = name;
    f->tensors[f->n_tensors++] = t;
    gguf_tensor *e = &f->tensors[f->n_tensors - 1];

    if (!rd_u32(r, &e->n_dims))
        return vkr_error(VKLLM_ERR_FORMAT, "truncated file: tensor %s: info extends past end of file", name);
    if (e->n_dims < 1 || e->n_dims > GGUF_MAX_DIMS)
        return vkr_error(VKLLM_ERR_FORMAT, "tensor %s: n_dims %u is not in 1..%d", name, e->n_dims, GGUF_MAX_DIMS);
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++)
        e->ne[d] = 1;
    uint64_t n = 1;
    bool overflow = false;
    for (uint32_t d = 0; d < e->n_dims; d++) {
        if (!rd_u64(r, &e->ne[d]))
            return vkr_error(VKLLM_ERR_FORMAT, "truncated file: tensor %s: info extends past end of file", name);
        if (e->ne[d] == 0)
            return vkr_error(VKLLM_ERR_FORMAT, "tensor %s: dimension %u is 0", name, d);
        if (e->ne[d] > (uint64_t)INT64_MAX)
            return vkr_error(VKLLM_ERR_FORMAT, "tensor %s: dimension %u (%llu) is too large", name, d, (ull)e->ne[d]);
        if (!overflow && n > (uint64_t)INT64_MAX / e->ne[d])
            overflow = true;
        else
            n *= e->ne[d];
    }
    if (overflow)
        return vkr_error(VKLLM_ERR_FORMAT, "tensor %s: element count overflows (product of dimensions %llu x %llu x "
                         "%llu x %llu is too large)", name, (ull)e->ne[0], (ull)e->ne[1], (ull)e->ne[2], (ull)e->ne[3]);
    e->n_elements = n;
    if (!rd_u32(r, &e->type) || !rd_u64(r, &e->offset))
        return vkr_error(VKLLM_ERR_FORMAT, "truncated file: tensor %s: info extends past end of file", name);

    uint32_t bs = vkl_ggml_block_size(e->type);
    if (bs) {
        if (e->ne[0] % bs)
            return vkr_error(VKLLM_ERR_FORMAT, "tensor %s: row length %llu is not a multiple of the block size %u "
                             "of type %s", name, (ull)e->ne[0], bs, vkl_ggml_type_name(e->type));
        uint64_t row = vkl_ggml_row_bytes(e->type, e->ne[0]);
        uint64_t rows = n / e->ne[0];
        if (row == 0 || rows > UINT64_MAX / row)
            return vkr_error(VKLLM_ERR_FORMAT, "tensor %s: byte size overflows", name);
        e->nbytes = row * rows;
    }
    return VKLLM_OK;
}

/* Checks each tensor's offset and extent against the data section (after general.alignment is known). */
static int by_offset(const void *a, const void *b)
{
    const gguf_tensor *x = *(const gguf_tensor *const *)a, *y = *(const gguf_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Tensors must not share bytes: a tensor that runs into the next one has a byte size (from its type and
 * shape) that does not match the file, e.g. a type id changed to a larger type. */
static vkllm_status check_no_overlap(gguf_file *f)
{
    if (f->n_tensors < 2)
        return VKLLM_OK;
    gguf_tensor **order = malloc((size_t)f->n_tensors * sizeof *order);
    if (!order)
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory for %llu tensors", (ull)f->n_tensors);
    for (uint64_t i = 0; i < f->n_tensors; i++)
        order[i] = &f->tensors[i];
    qsort(order, (size_t)f->n_tensors, sizeof *order, by_offset);
    vkllm_status st = VKLLM_OK;
    for (uint64_t i = 0; i + 1 < f->n_tensors && st == VKLLM_OK; i++) {
        const gguf_tensor *a = order[i], *b = order[i + 1];
        if (a->nbytes && b->nbytes && a->offset + a->nbytes > b->offset)   /* both checked against the file */
            st = vkr_error(VKLLM_ERR_FORMAT, "tensor %s: its %llu bytes (type %s, %llu elements) overlap tensor %s "
                           "at offset %llu: the size its type and shape give does not match the file", a->name,
                           (ull)a->nbytes, vkl_ggml_type_name(a->type), (ull)a->n_elements, b->name, (ull)b->offset);
    }
    free(order);
    return st;
}

static vkllm_status check_tensor_data(gguf_file *f)
{
    uint64_t avail = f->data_offset <= f->size ? f->size - f->data_offset : 0;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        gguf_tensor *e = &f->tensors[i];
        if (e->offset % f->alignment)
            return vkr_error(VKLLM_ERR_FORMAT, "tensor %s: offset %llu is not a multiple of the alignment %u", e->name,
                             (ull)e->offset, f->alignment);
        if (f->data_offset > f->size || e->offset > avail || e->nbytes > avail - e->offset)
            return vkr_error(VKLLM_ERR_FORMAT, "tensor %s: data extends past end of file (offset %llu + %llu bytes, "
                             "data section holds %llu bytes)", e->name, (ull)e->offset, (ull)e->nbytes, (ull)avail);
        e->data = e->nbytes ? f->data_base + f->data_offset + e->offset : NULL;
    }
    return check_no_overlap(f);
}

static vkllm_status parse_header(gguf_file *f, reader *r);

/* Parses base[0, meta_size); f->meta_short says whether reading more of the file could help. */
static vkllm_status parse(gguf_file *f)
{
    reader r = {f->base, f->meta_size, 0, false};
    vkllm_status st = parse_header(f, &r);
    f->meta_short = st != VKLLM_OK && r.past_end && f->meta_size < f->size;
    return st;
}

static vkllm_status parse_header(gguf_file *f, reader *r)
{
    if (f->size < 4 || memcmp(f->base, "GGUF", 4) != 0)
        return vkr_error(VKLLM_ERR_FORMAT, "bad magic: not a GGUF file");
    if (f->size < GGUF_HEADER_BYTES)
        return vkr_error(VKLLM_ERR_FORMAT, "truncated file: %llu bytes, too short for a GGUF header", (ull)f->size);
    r->pos = 4;
    uint64_t n_tensors = 0, n_kv = 0;
    rd_u32(r, &f->version);
    rd_u64(r, &n_tensors);
    rd_u64(r, &n_kv);
    if (f->version != 2 && f->version != 3) {
        uint32_t v = f->version;
        uint32_t swapped = (v >> 24) | ((v >> 8) & 0xff00u) | ((v << 8) & 0xff0000u) | (v << 24);
        if (swapped == 2 || swapped == 3)
            return vkr_error(VKLLM_ERR_FORMAT, "unsupported GGUF version %u: big-endian files are not supported", v);
        return vkr_error(VKLLM_ERR_FORMAT, "unsupported GGUF version %u (only versions 2 and 3 are supported)", v);
    }
    uint64_t left = rd_left(r);
    r->past_end = true;   /* for the count checks below: a longer read of the file might satisfy them */
    if (n_kv > left / GGUF_MIN_KV_BYTES)
        return vkr_error(VKLLM_ERR_FORMAT, "key/value count %llu cannot fit in a file of %llu bytes", (ull)n_kv,
                         (ull)f->size);
    if (n_tensors > left / GGUF_MIN_TENSOR_INFO_BYTES)
        return vkr_error(VKLLM_ERR_FORMAT, "tensor count %llu cannot fit in a file of %llu bytes", (ull)n_tensors,
                         (ull)f->size);
    if (n_kv * GGUF_MIN_KV_BYTES > left - n_tensors * GGUF_MIN_TENSOR_INFO_BYTES)
        return vkr_error(VKLLM_ERR_FORMAT, "key/value count %llu and tensor count %llu cannot fit in a file of %llu "
                         "bytes", (ull)n_kv, (ull)n_tensors, (ull)f->size);
    r->past_end = false;

    /* Counts are bounded by the file size now; arrays grow as entries are actually parsed. */
    vkllm_status st;
    for (uint64_t i = 0; i < n_kv; i++) {
        if (f->n_kv == f->cap_kv) {
            uint64_t cap = f->cap_kv ? f->cap_kv * 2 : 16;
            if (cap > n_kv)
                cap = n_kv;
            gguf_kv *p = realloc(f->kv, (size_t)cap * sizeof *p);
            if (!p)
                return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory reading %llu key/values", (ull)n_kv);
            f->kv = p;
            f->cap_kv = cap;
        }
        if ((st = parse_kv(f, r, i)) != VKLLM_OK)
            return st;
    }
    uint64_t dup = UINT64_MAX;
    if ((st = build_hash(f->n_kv, kv_name, f, &f->kv_hash, &f->kv_hash_mask, &dup)) != VKLLM_OK)
        return st;
    if (dup != UINT64_MAX)
        return vkr_error(VKLLM_ERR_FORMAT, "duplicate key %s (key/value %llu)", f->kv[dup].key, (ull)dup);

    for (uint64_t i = 0; i < n_tensors; i++) {
        if (f->n_tensors == f->cap_tensors) {
            uint64_t cap = f->cap_tensors ? f->cap_tensors * 2 : 16;
            if (cap > n_tensors)
                cap = n_tensors;
            gguf_tensor *p = realloc(f->tensors, (size_t)cap * sizeof *p);
            if (!p)
                return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory reading %llu tensor infos",
                                 (ull)n_tensors);
            f->tensors = p;
            f->cap_tensors = cap;
        }
        if ((st = parse_tensor_info(f, r, i)) != VKLLM_OK)
            return st;
    }
    if ((st = build_hash(f->n_tensors, tensor_name, f, &f->tensor_hash, &f->tensor_hash_mask, &dup)) != VKLLM_OK)
        return st;
    if (dup != UINT64_MAX)
        return vkr_error(VKLLM_ERR_FORMAT, "duplicate tensor name %s (tensor %llu)", f->tensors[dup].name, (ull)dup);

    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    int64_t ai = vkl_gguf_find_key(f, "general.alignment");
    if (ai >= 0) {
        bool neg;
        uint64_t a;
        if (!kv_int(&f->kv[ai], &neg, &a))
            return vkr_error(VKLLM_ERR_FORMAT, "general.alignment has type %s, expected an integer",
                             vkl_gguf_type_name(f->kv[ai].type));
        if (neg || a == 0 || (a & (a - 1)) || a > (1u << 30))
            return vkr_error(VKLLM_ERR_FORMAT, "general.alignment %s%llu is not a power of two in 1..2^30",
                             neg ? "-" : "", (ull)a);
        f->alignment = (uint32_t)a;
    }
    uint64_t pad = (f->alignment - r->pos % f->alignment) % f->alignment;
    f->data_offset = r->pos + pad;   /* r->pos <= size, pad < 2^30: cannot overflow a 64-bit value here */
    return check_tensor_data(f);
}

static vkllm_status open_parsed(gguf_file *f, gguf_file **out)
{
    vkllm_status st = parse(f);
    if (st != VKLLM_OK) {
        vkl_gguf_close(f);
        return st;
    }
    *out = f;
    return VKLLM_OK;
}

vkllm_status vkl_gguf_open_memory(const void *data, size_t size, gguf_file **out)
{
    if (!out)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "gguf_open_memory: out is NULL");
    *out = NULL;
    if (!data && size)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "gguf_open_memory: data is NULL");
    gguf_file *f = calloc(1, sizeof *f);
    if (!f)
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    static const uint8_t empty[1] = {0};
    f->fd = -1;
    f->base = f->data_base = data ? data : empty;
    f->size = f->meta_size = size;
    return open_parsed(f, out);
}

/* Frees what parse() built, so that it can run again on a longer start of the file. */
static void free_parsed(gguf_file *f)
{
    for (uint64_t i = 0; i < f->n_kv; i++) {
        free(f->kv[i].key);
        free(f->kv[i].str_pos);
    }
    free(f->kv);
    for (uint64_t i = 0; i < f->n_tensors; i++)
        free((char *)f->tensors[i].name);
    free(f->tensors);
    free(f->kv_hash);
    free(f->tensor_hash);
    f->kv = NULL;
    f->tensors = NULL;
    f->kv_hash = f->tensor_hash = NULL;
    f->n_kv = f->cap_kv = f->n_tensors = f->cap_tensors = 0;
}

/* Reads bytes [pos, pos + n) of the file; false (errno 0) when it ends before them. */
static bool read_at(int fd, void *dst, uint64_t n, uint64_t pos)
{
    uint8_t *d = dst;
    while (n) {
        size_t chunk = n < (1u << 30) ? (size_t)n : (1u << 30);
        ssize_t got = pread(fd, d, chunk, (off_t)pos);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            if (got == 0)
                errno = 0;
            return false;
        }
        d += got;
        pos += (uint64_t)got;
        n -= (uint64_t)got;
    }
    return true;
}

/* The metadata comes from a copy read with pread, never from the mapping, so a file truncated by another
 * process meanwhile is an error and not a SIGBUS. The start of the file is read in growing pieces until the
 * header, every key/value and every tensor info fit. */
static vkllm_status read_metadata(gguf_file *f)
{
    uint64_t want = f->size < (4u << 20) ? f->size : (4u << 20);
    for (;;) {
        uint8_t *meta = malloc(want ? (size_t)want : 1);
        if (!meta)
            return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory reading %llu bytes of metadata",
                             (ull)want);
        free_parsed(f);
        free(f->meta);
        f->meta = meta;
        f->base = meta;
        f->meta_size = want;
        if (!read_at(f->fd, meta, want, 0))
            return vkr_error(VKLLM_ERR_IO, "file changed or truncated while loading (%s)",
                             errno ? strerror(errno) : "it ends early");
        vkllm_status st = parse(f);
        if (st == VKLLM_OK || !f->meta_short)
            return st;
        want = want > f->size / 4 ? f->size : want * 4;
    }
}

vkllm_status vkl_gguf_open(const char *path, gguf_file **out)
{
    if (!out || !path)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "gguf_open: path or out is NULL");
    *out = NULL;
    /* O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below as not a regular file. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return vkr_error(VKLLM_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return vkr_error(VKLLM_ERR_IO, "cannot stat %s: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return vkr_error(VKLLM_ERR_IO, "cannot open %s: not a regular file", path);
    }
    if ((uint64_t)sb.st_size > (uint64_t)SIZE_MAX) {
        close(fd);
        return vkr_error(VKLLM_ERR_IO, "cannot map %s: file too large for this address space", path);
    }
    gguf_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        close(fd);
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    }
    f->fd = fd;
    static const uint8_t empty[1] = {0};
    f->base = f->data_base = empty;
    f->size = (uint64_t)sb.st_size;
    if (sb.st_size > 0) {
        void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            int e = errno;
            vkl_gguf_close(f);
            return vkr_error(VKLLM_ERR_IO, "cannot map %s: %s", path, strerror(e));
        }
        f->map = m;
        f->map_size = (size_t)sb.st_size;
        f->data_base = m;
    }
    vkllm_status st = read_metadata(f);
    if (st != VKLLM_OK) {
        /* prefix the path so a user sees which file is bad, keeping the original message */
        char msg[512];
        snprintf(msg, sizeof msg, "%s", vkr_last_error());
        vkl_gguf_close(f);
        return vkr_error(st, "%s: %s", path, msg);
    }
    *out = f;
    return VKLLM_OK;
}

vkllm_status vkl_gguf_tensor_read(const gguf_file *f, const gguf_tensor *t, void *dst)
{
    if (!t->nbytes)
        return VKLLM_OK;
    if (f->fd < 0) {
        memcpy(dst, t->data, t->nbytes);
        return VKLLM_OK;
    }
    if (!read_at(f->fd, dst, t->nbytes, f->data_offset + t->offset))
        return vkr_error(VKLLM_ERR_IO, "%s: file changed or truncated while loading (tensor %s: %s)", f->path, t->name,
                         errno ? strerror(errno) : "the file ends before its data");
    return VKLLM_OK;
}

vkllm_status vkl_gguf_tensor_load(const gguf_file *f, const gguf_tensor *t, void **out)
{
    *out = malloc(t->nbytes ? (size_t)t->nbytes : 1);
    if (!*out)
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "tensor %s: out of host memory for %llu bytes", t->name,
                         (ull)t->nbytes);
    vkllm_status st = vkl_gguf_tensor_read(f, t, *out);
    if (st != VKLLM_OK) {
        free(*out);
        *out = NULL;
    }
    return st;
}

void vkl_gguf_close(gguf_file *f)
{
    if (!f)
        return;
    free_parsed(f);
    if (f->map)
        munmap(f->map, f->map_size);
    if (f->fd >= 0)
        close(f->fd);
    free(f->meta);
    free(f->path);
    free(f);
}

/* ---------------------------------------------------------------------------------------------------- */
/* Accessors */

uint32_t vkl_gguf_version(const gguf_file *f) { return f->version; }
uint32_t vkl_gguf_alignment(const gguf_file *f) { return f->alignment; }
uint64_t vkl_gguf_data_offset(const gguf_file *f) { return f->data_offset; }
uint64_t vkl_gguf_file_size(const gguf_file *f) { return f->size; }
uint64_t vkl_gguf_n_kv(const gguf_file *f) { return f->n_kv; }

const char *vkl_gguf_kv_key(const gguf_file *f, uint64_t i) { return i < f->n_kv ? f->kv[i].key : NULL; }

gguf_value_type vkl_gguf_kv_type(const gguf_file *f, uint64_t i)
{
    return i < f->n_kv ? f->kv[i].type : GGUF_TYPE_UINT8;
}

int64_t vkl_gguf_find_key(const gguf_file *f, const char *key)
{
    return hash_find(f->kv_hash, f->kv_hash_mask, kv_name, f, key);
}

static const gguf_kv *find_kv(const gguf_file *f, const char *key)
{
    int64_t i = vkl_gguf_find_key(f, key);
    return i < 0 ? NULL : &f->kv[i];
}

bool vkl_gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out)
{
    const gguf_kv *e = find_kv(f, key);
    bool neg;
    uint64_t m;
    if (!e || !kv_int(e, &neg, &m) || neg || m > UINT32_MAX)
        return false;
    *out = (uint32_t)m;
    return true;
}

bool vkl_gguf_get_u64(const gguf_file *f, const char *key, uint64_t *out)
{
    const gguf_kv *e = find_kv(f, key);
    bool neg;
    uint64_t m;
    if (!e || !kv_int(e, &neg, &m) || neg)
        return false;
    *out = m;
    return true;
}

bool vkl_gguf_get_i64(const gguf_file *f, const char *key, int64_t *out)
{
    const gguf_kv *e = find_kv(f, key);
    bool neg;
    uint64_t m;
    if (!e || !kv_int(e, &neg, &m))
        return false;
    if (neg) {
        if (m > (uint64_t)INT64_MAX + 1)
            return false;
        *out = m == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)m;
    } else {
        if (m > (uint64_t)INT64_MAX)
            return false;
        *out = (int64_t)m;
    }
    return true;
}

bool vkl_gguf_get_i32(const gguf_file *f, const char *key, int32_t *out)
{
    int64_t v;
    if (!vkl_gguf_get_i64(f, key, &v) || v < INT32_MIN || v > INT32_MAX)
        return false;
    *out = (int32_t)v;
    return true;
}

bool vkl_gguf_get_f64(const gguf_file *f, const char *key, double *out)
{
    const gguf_kv *e = find_kv(f, key);
    if (!e)
        return false;
    if (e->type == GGUF_TYPE_FLOAT32) {
        uint32_t b = le32(e->val);
        float v;
        memcpy(&v, &b, sizeof v);
        *out = v;
        return true;
    }
    if (e->type == GGUF_TYPE_FLOAT64) {
        uint64_t b = le64(e->val);
        double v;
        memcpy(&v, &b, sizeof v);
        *out = v;
        return true;
    }
    return false;
}

bool vkl_gguf_get_f32(const gguf_file *f, const char *key, float *out)
{
    double v;
    if (!vkl_gguf_get_f64(f, key, &v))
        return false;
    *out = (float)v;
    return true;
}

bool vkl_gguf_get_bool(const gguf_file *f, const char *key, bool *out)
{
    const gguf_kv *e = find_kv(f, key);
    if (!e || e->type != GGUF_TYPE_BOOL)
        return false;
    *out = e->val[0] != 0;
    return true;
}

bool vkl_gguf_get_str(const gguf_file *f, const char *key, const char **s, uint64_t *len)
{
    const gguf_kv *e = find_kv(f, key);
    if (!e || e->type != GGUF_TYPE_STRING)
        return false;
    *s = (const char *)e->val;
    *len = e->len;
    return true;
}

bool vkl_gguf_get_arr_info(const gguf_file *f, const char *key, gguf_value_type *elem_type, uint64_t *count)
{
    const gguf_kv *e = find_kv(f, key);
    if (!e || e->type != GGUF_TYPE_ARRAY)
        return false;
    if (elem_type)
        *elem_type = e->arr_type;
    if (count)
        *count = e->len;
    return true;
}

const void *vkl_gguf_get_arr_data(const gguf_file *f, const char *key)
{
    const gguf_kv *e = find_kv(f, key);
    if (!e || e->type != GGUF_TYPE_ARRAY || e->arr_type == GGUF_TYPE_STRING || e->arr_type == GGUF_TYPE_ARRAY)
        return NULL;
    return e->val;
}

bool vkl_gguf_get_arr_str(const gguf_file *f, const char *key, uint64_t i, const char **s, uint64_t *len)
{
    const gguf_kv *e = find_kv(f, key);
    if (!e || e->type != GGUF_TYPE_ARRAY || e->arr_type != GGUF_TYPE_STRING || i >= e->len)
        return false;
    const uint8_t *p = f->base + e->str_pos[i];
    *len = le64(p);
    *s = (const char *)(p + 8);
    return true;
}

uint64_t vkl_gguf_n_tensors(const gguf_file *f) { return f->n_tensors; }

const gguf_tensor *vkl_gguf_tensor_at(const gguf_file *f, uint64_t i) { return i < f->n_tensors ? &f->tensors[i] : NULL; }

const gguf_tensor *vkl_gguf_find_tensor(const gguf_file *f, const char *name)
{
    int64_t i = hash_find(f->tensor_hash, f->tensor_hash_mask, tensor_name, f, name);
    return i < 0 ? NULL : &f->tensors[i];
}

/* ---------------------------------------------------------------------------------------------------- */
/* Streaming writer */

typedef struct writer_tensor {
    char *name;
    uint32_t type, n_dims;
    uint64_t ne[GGUF_MAX_DIMS];
    uint64_t nbytes, offset;
} writer_tensor;

struct gguf_writer {
    FILE *fp;
    char *path;                /* the target, replaced only by a complete file */
    char *tmp;                 /* what is written: vkl_gguf_writer_temp_name(path) */
    uint8_t *kv;               /* serialized key/values */
    size_t kv_len, kv_cap;
    uint64_t n_kv;
    char **keys;               /* for the duplicate check */
    uint64_t keys_cap;
    writer_tensor *t;
    uint64_t n_t, cap_t;
    uint64_t data_size;        /* bytes of the data section so far (each tensor padded) */
    bool header_written;
    uint64_t cur, cur_written; /* tensor being written and its bytes so far */
    vkllm_status failed;       /* sticky I/O failure */
};

#define GGUF_WRITER_ALIGNMENT 32u

static vkllm_status w_io_error(gguf_writer *w)
{
    w->failed = vkr_error(VKLLM_ERR_IO, "cannot write %s: %s", w->path, strerror(errno));
    return w->failed;
}

static vkllm_status w_write(gguf_writer *w, const void *p, size_t n)
{
    if (n && fwrite(p, 1, n, w->fp) != n)
        return w_io_error(w);
    return VKLLM_OK;
}

static vkllm_status w_pad(gguf_writer *w, uint64_t pos)
{
    static const uint8_t zeros[GGUF_WRITER_ALIGNMENT];
    uint64_t pad = (GGUF_WRITER_ALIGNMENT - pos % GGUF_WRITER_ALIGNMENT) % GGUF_WRITER_ALIGNMENT;
    return w_write(w, zeros, (size_t)pad);
}

int vkl_gguf_writer_temp_name(const char *path, char *buf, size_t len)
{
    return snprintf(buf, len, "%s.partial-%ld", path, (long)getpid());
}

vkllm_status vkl_gguf_writer_open(const char *path, gguf_writer **out)
{
    if (!path || !out)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "gguf_writer_open: path or out is NULL");
    *out = NULL;
    /* Only a regular file is replaced: never a device (/dev/stdout), a FIFO or a directory. A symbolic link
     * is followed: the file it names is replaced, not the link. */
    struct stat sb;
    if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode))
        return vkr_error(VKLLM_ERR_IO, "cannot write %s: not a regular file", path);
    char *real = realpath(path, NULL);   /* NULL when it does not exist yet */
    if (real)
        path = real;
    gguf_writer *w = calloc(1, sizeof *w);
    if (!w) {
        free(real);
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    }
    size_t plen = strlen(path), tlen = plen + 32;
    w->path = malloc(plen + 1);
    w->tmp = malloc(tlen);
    if (!w->path || !w->tmp) {
        free(w->path);
        free(w->tmp);
        free(w);
        free(real);
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    }
    memcpy(w->path, path, plen + 1);
    vkl_gguf_writer_temp_name(path, w->tmp, tlen);
    free(real);
    path = w->path;
    /* The temporary file sits next to the target, so that rename() replaces it in one step. */
    int fd = open(w->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0666);
    w->fp = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!w->fp) {
        vkllm_status st = vkr_error(VKLLM_ERR_IO, "cannot create %s: %s", path, strerror(errno));
        if (fd >= 0) {
            close(fd);
            remove(w->tmp);
        }
        free(w->path);
        free(w->tmp);
        free(w);
        return st;
    }
    setvbuf(w->fp, NULL, _IOFBF, 1u << 22);
    *out = w;
    return VKLLM_OK;
}

static vkllm_status w_check_open(gguf_writer *w, const char *what)
{
    if (!w)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "%s: writer is NULL", what);
    if (w->failed != VKLLM_OK)
        return vkr_error(w->failed, "%s: an earlier write to %s failed", what, w->path);
    if (w->header_written)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "%s: the header of %s is already written", what, w->path);
    return VKLLM_OK;
}

static vkllm_status kv_reserve(gguf_writer *w, size_t more)
{
    if (more > SIZE_MAX - w->kv_len)
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "gguf writer: header too large");
    if (w->kv_len + more <= w->kv_cap)
        return VKLLM_OK;
    size_t cap = w->kv_cap ? w->kv_cap : 4096;
    while (cap < w->kv_len + more) {
        if (cap > SIZE_MAX / 2)
            return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "gguf writer: header too large");
        cap *= 2;
    }
    uint8_t *p = realloc(w->kv, cap);
    if (!p)
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory for the GGUF header");
    w->kv = p;
    w->kv_cap = cap;
    return VKLLM_OK;
}

static void kv_put(gguf_writer *w, const void *p, size_t n)
{
    memcpy(w->kv + w->kv_len, p, n);
    w->kv_len += n;
}
static void kv_put32(gguf_writer *w, uint32_t v)
{
    uint8_t b[4];
    put32(b, v);
    kv_put(w, b, 4);
}
static void kv_put64(gguf_writer *w, uint64_t v)
{
    uint8_t b[8];
    put64(b, v);
    kv_put(w, b, 8);
}

/* Checks the key, reserves room for key + type + `value_bytes`, writes key and type; records the key. */
static vkllm_status kv_begin(gguf_writer *w, const char *key, gguf_value_type type, uint64_t value_bytes)
{
    vkllm_status st = w_check_open(w, "gguf writer");
    if (st != VKLLM_OK)
        return st;
    if (!key || !*key)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "gguf writer: empty key");
    size_t klen = strlen(key);
    if (klen > GGUF_MAX_KEY_LEN)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "gguf writer: key %.40s... is longer than %u bytes", key,
                         GGUF_MAX_KEY_LEN);
    for (uint64_t i = 0; i < w->n_kv; i++)
        if (!strcmp(w->keys[i], key))
            return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "gguf writer: duplicate key %s", key);
    if (value_bytes > SIZE_MAX - 12 - klen)
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "gguf writer: value of %s too large", key);
    if ((st = kv_reserve(w, 12 + klen + (size_t)value_bytes)) != VKLLM_OK)
        return st;
    if (w->n_kv == w->keys_cap) {
        uint64_t cap = w->keys_cap ? w->keys_cap * 2 : 32;
        char **p = realloc(w->keys, (size_t)cap * sizeof *p);
        if (!p)
            return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
        w->keys = p;
        w->keys_cap = cap;
    }
    char *k = malloc(klen + 1);
    if (!k)
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    memcpy(k, key, klen + 1);
    w->keys[w->n_kv++] = k;
    kv_put64(w, klen);
    kv_put(w, key, klen);
    kv_put32(w, (uint32_t)type);
    return VKLLM_OK;
}

vkllm_status vkl_gguf_writer_kv(gguf_writer *w, const char *key, gguf_value_type type, const void *value)
{
    size_t sz = vkl_gguf_type_size(type);
    if (!sz)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "gguf writer: key %s: type %s is not a scalar type",
                         key ? key : "(null)", vkl_gguf_type_name(type));
    if (!value)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "gguf writer: key %s: value is NULL", key ? key : "(null)");
    vkllm_status st = kv_begin(w, key, type, sz);
    if (st != VKLLM_OK)
        return st;
    uint8_t b[8];
    switch (sz) {   /* host value -> little-endian */
    case 1: b[0] = type == GGUF_TYPE_BOOL ? (uint8_t)(*(const bool *)value ? 1 : 0) : *(const uint8_t *)value; break;
    case 2: { uint16_t v; memcpy(&v, value, 2); b[0] = (uint8_t)v; b[1] = (uint8_t)(v >> 8); break; }
    case 4: { uint32_t v; memcpy(&v, value, 4); put32(b, v); break; }
    default: { uint64_t v; memcpy(&v, value, 8); put64(b, v); break; }
    }
    kv_put(w, b, sz);
    return VKLLM_OK;
}

vkllm_status vkl_gguf_writer_kv_u32(gguf_writer *w, const char *key, uint32_t v)
{
    return vkl_gguf_writer_kv(w, key, GGUF_TYPE_UINT32, &v);
}

vkllm_status vkl_gguf_writer_kv_f32(gguf_writer *w, const char *key, float v)
{
    return vkl_gguf_writer_kv(w, key, GGUF_TYPE_FLOAT32, &v);
}

vkllm_status vkl_gguf_writer_kv_bool(gguf_writer *w, const char *key, bool v)
{
    return vkl_gguf_writer_kv(w, key, GGUF_TYPE_BOOL, &v);
}

vkllm_status vkl_gguf_writer_kv_str(gguf_writer *w, const char *key, const char *v)
{
    if (!v)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "gguf writer: key %s: string is NULL", key ? key : "(null)");
    size_t n = strlen(v);
    vkllm_status st = kv_begin(w, key, GGUF_TYPE_STRING, 8 + (uint64_t)n);
    if (st != VKLLM_OK)
        return st;
    kv_put64(w, n);
    kv_put(w, v, n);
    return VKLLM_OK;
}

vkllm_status vkl_gguf_writer_kv_arr_str(gguf_writer *w, const char *key, const char *const *v, uint64_t n)
{
    if (!v && n)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "gguf writer: key %s: array is NULL", key ? key : "(null)");
    uint64_t bytes = 12;
    for (uint64_t i = 0; i < n; i++) {
        if (!v[i])
            return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "gguf writer: key %s: string %llu is NULL",
                             key ? key : "(null)", (ull)i);
        bytes += 8 + strlen(v[i]);
    }
    vkllm_status st = kv_begin(w, key, GGUF_TYPE_ARRAY, bytes);
    if (st != VKLLM_OK)
        return st;
    kv_put32(w, GGUF_TYPE_STRING);
    kv_put64(w, n);
    for (uint64_t i = 0; i < n; i++) {
        size_t len = strlen(v[i]);
        kv_put64(w, len);
        kv_put(w, v[i], len);
    }
    return VKLLM_OK;
}

vkllm_status vkl_gguf_writer_kv_arr(gguf_writer *w, const char *key, gguf_value_type elem_type, const void *v, uint64_t n)
{
    size_t sz = vkl_gguf_type_size(elem_type);
    if (!sz)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "gguf writer: key %s: element type %s is not a scalar type",
                         key ? key : "(null)", vkl_gguf_type_name(elem_type));
    if (!v && n)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "gguf writer: key %s: array is NULL", key ? key : "(null)");
    if (n > (UINT64_MAX - 12) / sz)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "gguf writer: key %s: array too large", key ? key : "(null)");
    vkllm_status st = kv_begin(w, key, GGUF_TYPE_ARRAY, 12 + n * sz);
    if (st != VKLLM_OK)
        return st;
    kv_put32(w, (uint32_t)elem_type);
    kv_put64(w, n);
    const uint8_t *src = v;
    for (uint64_t i = 0; i < n; i++) {
        uint8_t b[8];
        switch (sz) {
        case 1: b[0] = elem_type == GGUF_TYPE_BOOL ? (uint8_t)(((const bool *)v)[i] ? 1 : 0) : src[i]; break;
        case 2: { uint16_t x; memcpy(&x, src + 2 * i, 2); b[0] = (uint8_t)x; b[1] = (uint8_t)(x >> 8); break; }
        case 4: { uint32_t x; memcpy(&x, src + 4 * i, 4); put32(b, x); break; }
        default: { uint64_t x; memcpy(&x, src + 8 * i, 8); put64(b, x); break; }
        }
        kv_put(w, b, sz);
    }
    return VKLLM_OK;
}

vkllm_status vkl_gguf_writer_kv_arr_f32(gguf_writer *w, const char *key, const float *v, uint64_t n)
{
    return vkl_gguf_writer_kv_arr(w, key, GGUF_TYPE_FLOAT32, v, n);
}

vkllm_status vkl_gguf_writer_kv_arr_i32(gguf_writer *w, const char *key, const int32_t *v, uint64_t n)
{
    return vkl_gguf_writer_kv_arr(w, key, GGUF_TYPE_INT32, v, n);
}

vkllm_status vkl_gguf_writer_tensor_info(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                                     const uint64_t *ne)
{
    vkllm_status st = w_check_open(w, "gguf writer");
    if (st != VKLLM_OK)
        return st;
    if (!name || !*name)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "gguf writer: empty tensor name");
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS || !ne)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "gguf writer: tensor %s: n_dims %u is not in 1..%d", name, n_dims,
                         GGUF_MAX_DIMS);
    uint32_t bs = vkl_ggml_block_size(type);
    if (!bs)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "gguf writer: tensor %s: unsupported type %u", name, type);
    for (uint64_t i = 0; i < w->n_t; i++)
        if (!strcmp(w->t[i].name, name))
            return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "gguf writer: duplicate tensor name %s", name);
    writer_tensor t;
    memset(&t, 0, sizeof t);
    t.type = type;
    t.n_dims = n_dims;
    uint64_t n = 1;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) {
        t.ne[d] = d < n_dims ? ne[d] : 1;
        if (t.ne[d] == 0 || t.ne[d] > (uint64_t)INT64_MAX || n > (uint64_t)INT64_MAX / t.ne[d])
            return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "gguf writer: tensor %s: bad dimension %u (%llu)", name, d,
                             (ull)t.ne[d]);
        n *= t.ne[d];
    }
    if (t.ne[0] % bs)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "gguf writer: tensor %s: row length %llu is not a multiple of "
                         "the block size %u", name, (ull)t.ne[0], bs);
    uint64_t row = vkl_ggml_row_bytes(type, t.ne[0]);
    uint64_t rows = n / t.ne[0];
    if (!row || rows > UINT64_MAX / row)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "gguf writer: tensor %s: too large", name);
    t.nbytes = row * rows;
    uint64_t padded = t.nbytes + (GGUF_WRITER_ALIGNMENT - t.nbytes % GGUF_WRITER_ALIGNMENT) % GGUF_WRITER_ALIGNMENT;
    if (padded < t.nbytes || w->data_size > UINT64_MAX - padded)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "gguf writer: tensor %s: data section too large", name);
    size_t nlen = strlen(name);
    if (w->n_t == w->cap_t) {
        uint64_t cap = w->cap_t ? w->cap_t * 2 : 64;
        writer_tensor *p = realloc(w->t, (size_t)cap * sizeof *p);
        if (!p)
            return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
        w->t = p;
        w->cap_t = cap;
    }
    t.name = malloc(nlen + 1);
    if (!t.name)
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    memcpy(t.name, name, nlen + 1);
    t.offset = w->data_size;
    w->data_size += padded;
    w->t[w->n_t++] = t;
    return VKLLM_OK;
}

static vkllm_status write_header(gguf_writer *w)
{
    uint8_t b[GGUF_HEADER_BYTES];
    memcpy(b, "GGUF", 4);
    put32(b + 4, 3);
    put64(b + 8, w->n_t);
    put64(b + 16, w->n_kv);
    vkllm_status st;
    if ((st = w_write(w, b, sizeof b)) != VKLLM_OK || (st = w_write(w, w->kv, w->kv_len)) != VKLLM_OK)
        return st;
    uint64_t pos = GGUF_HEADER_BYTES + (uint64_t)w->kv_len;
    for (uint64_t i = 0; i < w->n_t; i++) {
        const writer_tensor *t = &w->t[i];
        uint8_t buf[8 + 4 + 8 * GGUF_MAX_DIMS + 4 + 8];
        size_t nlen = strlen(t->name);
        put64(buf, nlen);
        if ((st = w_write(w, buf, 8)) != VKLLM_OK || (st = w_write(w, t->name, nlen)) != VKLLM_OK)
            return st;
        size_t k = 0;
        put32(buf + k, t->n_dims);
        k += 4;
        for (uint32_t d = 0; d < t->n_dims; d++, k += 8)
            put64(buf + k, t->ne[d]);
        put32(buf + k, t->type);
        k += 4;
        put64(buf + k, t->offset);
        k += 8;
        if ((st = w_write(w, buf, k)) != VKLLM_OK)
            return st;
        pos += 8 + nlen + k;
    }
    if ((st = w_pad(w, pos)) != VKLLM_OK)
        return st;
    w->header_written = true;
    w->cur = 0;
    w->cur_written = 0;
    return VKLLM_OK;
}

vkllm_status vkl_gguf_writer_tensor_data(gguf_writer *w, const void *data, size_t size)
{
    if (!w)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "gguf writer: writer is NULL");
    if (w->failed != VKLLM_OK)
        return vkr_error(w->failed, "gguf writer: an earlier write to %s failed", w->path);
    vkllm_status st;
    if (!w->header_written && (st = write_header(w)) != VKLLM_OK)
        return st;
    if (size == 0)
        return VKLLM_OK;
    if (!data)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "gguf writer: data is NULL");
    if (w->cur >= w->n_t)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "gguf writer: %zu bytes of data given after the last tensor",
                         size);
    writer_tensor *t = &w->t[w->cur];
    if (size > t->nbytes - w->cur_written)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "gguf writer: tensor %s: %zu bytes given but only %llu remain",
                         t->name, size, (ull)(t->nbytes - w->cur_written));
    if ((st = w_write(w, data, size)) != VKLLM_OK)
        return st;
    w->cur_written += size;
    if (w->cur_written == t->nbytes) {
        if ((st = w_pad(w, t->nbytes)) != VKLLM_OK)
            return st;
        w->cur++;
        w->cur_written = 0;
    }
    return VKLLM_OK;
}

static void writer_free(gguf_writer *w)
{
    for (uint64_t i = 0; i < w->n_kv; i++)
        free(w->keys[i]);
    free(w->keys);
    for (uint64_t i = 0; i < w->n_t; i++)
        free(w->t[i].name);
    free(w->t);
    free(w->kv);
    free(w->path);
    free(w->tmp);
    free(w);
}

void vkl_gguf_writer_abort(gguf_writer *w)
{
    if (!w)
        return;
    if (w->fp)
        fclose(w->fp);
    remove(w->tmp);
    writer_free(w);
}

vkllm_status vkl_gguf_writer_close(gguf_writer *w)
{
    if (!w)
        return VKLLM_OK;
    vkllm_status st = w->failed;
    if (st != VKLLM_OK)
        st = vkr_error(st, "gguf writer: an earlier write to %s failed", w->path);
    if (st == VKLLM_OK && !w->header_written)
        st = write_header(w);
    if (st == VKLLM_OK && w->cur < w->n_t)
        st = vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "gguf writer: tensor %s: only %llu of %llu bytes written",
                       w->t[w->cur].name, (ull)w->cur_written, (ull)w->t[w->cur].nbytes);
    if (w->fp) {
        errno = 0;
        bool bad = ferror(w->fp) != 0 || fflush(w->fp) != 0 || fsync(fileno(w->fp)) != 0;
        if (fclose(w->fp) != 0 || bad) {
            if (st == VKLLM_OK)
                st = vkr_error(VKLLM_ERR_IO, "cannot write %s: %s", w->path, errno ? strerror(errno) : "write error");
        }
    }
    if (st == VKLLM_OK && rename(w->tmp, w->path) != 0)
        st = vkr_error(VKLLM_ERR_IO, "cannot replace %s: %s", w->path, strerror(errno));
    if (st != VKLLM_OK)
        remove(w->tmp);   /* never leave a half-written model behind; an existing target stays as it was */
    writer_free(w);
    return st;
}
