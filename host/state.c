/* Saving and restoring a context's sequence (include/vkllm.h: vkllm_state_*).
 *
 * Layout, in the writer's byte order: the header below, then the last token's logits (n_vocab f32), then
 * for every layer its K rows and its V rows of positions [pos - n, pos) in order (f16, n_head_kv * head_dim
 * each): n = pos, except local_rows in the sliding-window layers, whose ring (the last window + n_batch - 1
 * positions, see host/model/llama.c) may hold fewer. The checksum is FNV-1a over the header (checksum field zero)
 * and everything after it, so that a flipped byte anywhere is refused before anything reaches the device. */
#define _POSIX_C_SOURCE 200809L
#include "vkllm.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "host/api_internal.h"
#include "host/model/arch.h"
#include "host/format/gguf.h"
#include "host/model/llama.h"
#include "runtime/error.h"

#define STATE_MAGIC 0x534c4b56u   /* "VKLS" */
#define STATE_VERSION 2u   /* 2: local_rows */
#define STATE_KV_F16 1u

typedef struct state_header {
    uint32_t magic, version;
    char arch[32];
    uint32_t n_embd, n_layer, n_vocab, n_head_kv, head_dim, kv_type;
    uint32_t pos, local_rows;   /* positions held by each sliding-window layer: the last local_rows */
    uint64_t hparams_hash;   /* the hyper-parameters not named above: a state of a near twin is refused */
    uint64_t checksum;
} state_header;

_Static_assert(sizeof(state_header) == 88, "state_header has no padding");

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

#define FNV_OFFSET 0xcbf29ce484222325ull

static uint64_t hparams_hash(const llama_hparams *hp)
{
    uint32_t u[] = {hp->n_head, hp->n_ff, hp->n_rot, hp->n_ctx_train, hp->swa_window, (uint32_t)hp->rope_scaling};
    float f[] = {hp->rope_theta, hp->rms_eps, hp->rope_factor, hp->attn_scale, hp->attn_softcap, hp->final_softcap};
    return fnv1a(fnv1a(FNV_OFFSET, u, sizeof u), f, sizeof f);
}

/* The rows of the context's sliding-window layers when they keep a ring, else 0. */
static uint32_t ring_rows(const llama_context *lc, const llama_hparams *hp)
{
    for (uint32_t l = 0; l < hp->n_layer; l++)
        if (vkl_llama_context_cache_rows(lc, l) < vkl_llama_context_n_ctx(lc))
            return vkl_llama_context_cache_rows(lc, l);
    return 0;
}

static bool has_local_layers(const llama_hparams *hp)
{
    for (uint32_t l = 0; l < hp->n_layer; l++)
        if (vkl_arch_layer_is_local(hp, l))
            return true;
    return false;
}

static state_header header_of(vkllm_context *c)
{
    const llama_hparams *hp = &vkl_api_context_model(c)->hp;
    llama_context *lc = vkl_api_context_llama(c);
    state_header h;
    memset(&h, 0, sizeof h);
    h.magic = STATE_MAGIC;
    h.version = STATE_VERSION;
    snprintf(h.arch, sizeof h.arch, "%s", hp->fam->name);
    h.n_embd = hp->n_embd;
    h.n_layer = hp->n_layer;
    h.n_vocab = hp->n_vocab;
    h.n_head_kv = hp->n_head_kv;
    h.head_dim = hp->head_dim;
    h.kv_type = STATE_KV_F16;
    h.pos = vkllm_context_position(c);
    h.local_rows = h.pos;
    /* A ring last written up to `end` holds [end - rows, end): after a truncation to pos < end, fewer
     * than rows positions before pos (negative: none). */
    int64_t rows = ring_rows(lc, hp), held = rows + h.pos - (int64_t)vkl_llama_context_end(lc);
    if (rows && held < h.pos)
        h.local_rows = held > 0 ? (uint32_t)held : 0;
    h.hparams_hash = hparams_hash(hp);
    return h;
}

/* Positions layer l's rows hold in the state: the last n before pos. */
static uint32_t layer_positions(const llama_hparams *hp, const state_header *h, uint32_t l)
{
    return vkl_arch_layer_is_local(hp, l) ? h->local_rows : h->pos;
}

static size_t row_bytes(const state_header *h) { return (size_t)h->n_head_kv * h->head_dim * 2; }

static size_t state_bytes(const llama_hparams *hp, const state_header *h)
{
    size_t bytes = sizeof *h + (size_t)h->n_vocab * 4;
    for (uint32_t l = 0; l < h->n_layer; l++)
        bytes += 2 * layer_positions(hp, h, l) * row_bytes(h);
    return bytes;
}

/* Whether the sliding-window layers hold what decoding at pos reads: the window - 1 positions before it. */
static bool holds_window(const llama_hparams *hp, const state_header *h)
{
    uint32_t need = hp->swa_window > 1 ? hp->swa_window - 1 : 0;
    return h->local_rows >= h->pos || h->local_rows >= need;
}

/* Layer l's K/V rows of positions [first, first + n) from or into k and v (n rows each), in the cache at
 * rows p % cache rows: one range, or two where the ring wraps. */
static vkllm_status transfer(llama_context *lc, uint32_t l, uint32_t first, uint32_t n, size_t rb, unsigned char *k,
                             unsigned char *v, bool upload)
{
    uint32_t rows = vkl_llama_context_cache_rows(lc, l), row0 = first % rows;
    uint32_t n1 = n < rows - row0 ? n : rows - row0;
    vkllm_status st = vkl_llama_context_kv_rows(lc, l, row0, n1, k, v, upload);
    if (st == VKLLM_OK && n1 < n)
        st = vkl_llama_context_kv_rows(lc, l, 0, n - n1, k + n1 * rb, v + n1 * rb, upload);
    return st;
}

/* What every call checks first: the arguments and no decode in flight. */
static vkllm_status check_context(vkllm_context *c, const void *p, const char *what)
{
    if (!c || !p)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "%s: context or %s is NULL", what,
                         strstr(what, "file") ? "path" : "buffer");
    if (vkl_api_context_check_idle(c) != VKLLM_OK)
        return VKLLM_ERR_BUSY;
    return VKLLM_OK;
}

/* The header of a state that can be saved: refused after a truncation further back than a ring keeps. */
static vkllm_status saveable_header(vkllm_context *c, const char *what, state_header *h)
{
    *h = header_of(c);
    if (vkl_api_seq_has_gap(c, 0))
        return vkr_error(VKLLM_ERR_UNSUPPORTED, "%s: sequence 0 lacks positions removed from its middle "
                         "(vkllm_seq_rm): a state holds consecutive positions", what);
    if (!holds_window(&vkl_api_context_model(c)->hp, h))
        return vkr_error(VKLLM_ERR_UNSUPPORTED, "%s: the context was truncated to %u, further back than its "
                         "sliding-window layers keep: decode from 0 first", what, h->pos);
    return VKLLM_OK;
}

vkllm_status vkllm_state_size(vkllm_context *c, size_t *bytes)
{
    state_header h;
    vkllm_status st = check_context(c, bytes, "vkllm_state_size");
    if (st == VKLLM_OK)
        st = saveable_header(c, "vkllm_state_size", &h);
    if (st == VKLLM_OK)
        *bytes = state_bytes(&vkl_api_context_model(c)->hp, &h);
    return st;
}

vkllm_status vkllm_state_save(vkllm_context *c, void *buf, size_t cap, size_t *written)
{
    state_header h;
    vkllm_status st = check_context(c, buf, "vkllm_state_save");
    if (st == VKLLM_OK)
        st = saveable_header(c, "vkllm_state_save", &h);
    if (st != VKLLM_OK)
        return st;
    const llama_hparams *hp = &vkl_api_context_model(c)->hp;
    size_t need = state_bytes(hp, &h), rb = row_bytes(&h);
    if (written)
        *written = 0;
    if (cap < need)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "vkllm_state_save: the state needs %zu bytes, the buffer has %zu",
                         need, cap);
    unsigned char *out = buf;
    llama_context *lc = vkl_api_context_llama(c);
    size_t off = sizeof h;
    memcpy(out + off, vkl_llama_context_logits(lc), (size_t)h.n_vocab * 4);
    off += (size_t)h.n_vocab * 4;
    for (uint32_t l = 0; l < h.n_layer && st == VKLLM_OK; l++) {
        uint32_t n = layer_positions(hp, &h, l);
        st = transfer(lc, l, h.pos - n, n, rb, out + off, out + off + n * rb, false);
        off += 2 * n * rb;
    }
    if (st != VKLLM_OK)
        return st;
    h.checksum = fnv1a(fnv1a(FNV_OFFSET, &h, sizeof h), out + sizeof h, need - sizeof h);
    memcpy(out, &h, sizeof h);
    if (written)
        *written = need;
    return VKLLM_OK;
}

#define REFUSE(...) vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "vkllm_state_load: " __VA_ARGS__)

/* Checks a state against the context's model and size; VKLLM_OK when it can be uploaded as it is. */
static vkllm_status check_state(vkllm_context *c, const unsigned char *buf, size_t size, state_header *h)
{
    if (size < sizeof *h)
        return REFUSE("%zu bytes are too few for a state (truncated?)", size);
    memcpy(h, buf, sizeof *h);
    if (h->magic != STATE_MAGIC)
        return REFUSE("not a vkllm state (bad magic)");
    if (h->version != STATE_VERSION)
        return REFUSE("state format version %u, this library reads %u", h->version, STATE_VERSION);
    state_header want = header_of(c);
    if (memcmp(h->arch, want.arch, sizeof h->arch) != 0 || h->n_embd != want.n_embd || h->n_layer != want.n_layer ||
        h->n_vocab != want.n_vocab || h->n_head_kv != want.n_head_kv || h->head_dim != want.head_dim ||
        h->kv_type != want.kv_type || h->hparams_hash != want.hparams_hash)
        return REFUSE("the state is of another model (%.31s, %u layers, n_embd %u, n_vocab %u, KV %u x %u) than the "
                      "context's (%s, %u layers, n_embd %u, n_vocab %u, KV %u x %u)%s", h->arch, h->n_layer, h->n_embd,
                      h->n_vocab, h->n_head_kv, h->head_dim, want.arch, want.n_layer, want.n_embd, want.n_vocab,
                      want.n_head_kv, want.head_dim, h->hparams_hash != want.hparams_hash ? " or other hyper-parameters"
                                                                                         : "");
    uint32_t n_ctx = vkllm_context_n_ctx(c);
    if (h->pos > n_ctx)
        return REFUSE("the state holds %u positions, the context only %u", h->pos, n_ctx);
    const llama_hparams *hp = &vkl_api_context_model(c)->hp;
    if (h->local_rows > h->pos || (h->local_rows < h->pos && !has_local_layers(hp)) || !holds_window(hp, h))
        return REFUSE("%u positions of sliding-window layers in a state of %u (corrupted)", h->local_rows, h->pos);
    size_t need = state_bytes(hp, h);
    if (size != need)
        return REFUSE("%zu bytes where a state of %u positions has %zu (truncated or corrupted)", size, h->pos, need);
    state_header zero = *h;
    zero.checksum = 0;
    if (fnv1a(fnv1a(FNV_OFFSET, &zero, sizeof zero), buf + sizeof *h, size - sizeof *h) != h->checksum)
        return REFUSE("checksum mismatch: the state is corrupted");
    /* A context without a ring could later decode from a position the state lacks. */
    if (h->local_rows < h->pos && !ring_rows(vkl_api_context_llama(c), hp))
        return REFUSE("the state holds only the last %u of %u positions of the sliding-window layers (saved with "
                      "a ring buffer): load it into a context with one too (n_ctx above window + n_batch - 1)",
                      h->local_rows, h->pos);
    return VKLLM_OK;
}

vkllm_status vkllm_state_load(vkllm_context *c, const void *buf, size_t size)
{
    vkllm_status st = check_context(c, buf, "vkllm_state_load");
    state_header h;
    if (st == VKLLM_OK)
        st = check_state(c, buf, size, &h);
    if (st != VKLLM_OK)
        return st;
    unsigned char *in = (unsigned char *)buf;   /* only read: transfer() uploads from it */
    llama_context *lc = vkl_api_context_llama(c);
    const llama_hparams *hp = &vkl_api_context_model(c)->hp;
    size_t off = sizeof h + (size_t)h.n_vocab * 4, rb = row_bytes(&h);
    /* The uploads overwrite the cache: until they all succeed the context holds nothing. */
    vkl_api_context_set_position(c, 0);
    uint32_t ring = ring_rows(lc, hp), held = h.pos;
    for (uint32_t l = 0; l < h.n_layer && st == VKLLM_OK; l++) {
        /* A smaller ring than the saver's keeps the last of the state's positions. */
        uint32_t n = layer_positions(hp, &h, l), rows = vkl_llama_context_cache_rows(lc, l), keep = n < rows ? n : rows;
        if (keep < held)
            held = keep;
        st = transfer(lc, l, h.pos - keep, keep, rb, in + off + (n - keep) * rb, in + off + (2 * n - keep) * rb, true);
        off += 2 * n * rb;
    }
    if (st != VKLLM_OK)
        return st;
    /* The ring's end as if it had written exactly the positions it holds (`held` of pos), so that
     * decoding may restart only where it holds the window (host/model/llama.c: ring_allows). */
    vkl_llama_context_restore(lc, held < h.pos ? h.pos + ring - held : h.pos, in + sizeof h);
    vkl_api_context_set_position(c, h.pos);
    return VKLLM_OK;
}

vkllm_status vkllm_state_save_file(vkllm_context *c, const char *path)
{
    size_t size = 0;
    vkllm_status st = check_context(c, path, "vkllm_state_save_file");
    if (st == VKLLM_OK)
        st = vkllm_state_size(c, &size);
    if (st != VKLLM_OK)
        return st;
    void *buf = malloc(size);
    if (!buf)
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory (%zu bytes for the state)", size);
    st = vkllm_state_save(c, buf, size, &size);
    char tmp[4096];
    if (st == VKLLM_OK && vkl_gguf_writer_temp_name(path, tmp, sizeof tmp) >= (int)sizeof tmp)
        st = vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "vkllm_state_save_file: path too long");
    if (st == VKLLM_OK) {
        /* Written next to the target and renamed over it: a reader never sees half a state. */
        FILE *fp = fopen(tmp, "wb");
        bool bad = !fp || fwrite(buf, 1, size, fp) != size;
        if (fp)
            bad = fflush(fp) != 0 || fsync(fileno(fp)) != 0 || fclose(fp) != 0 || bad;
        if (bad || rename(tmp, path) != 0) {
            st = vkr_error(VKLLM_ERR_IO, "cannot write %s: %s", path, strerror(errno));
            remove(tmp);
        }
    }
    free(buf);
    return st;
}

vkllm_status vkllm_state_load_file(vkllm_context *c, const char *path)
{
    vkllm_status st = check_context(c, path, "vkllm_state_load_file");
    if (st != VKLLM_OK)
        return st;
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return vkr_error(VKLLM_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    long len = fseek(fp, 0, SEEK_END) == 0 ? ftell(fp) : -1;
    void *buf = NULL;
    if (len < 0 || fseek(fp, 0, SEEK_SET) != 0)
        st = vkr_error(VKLLM_ERR_IO, "cannot read %s: %s", path, strerror(errno));
    else if (!(buf = malloc(len ? (size_t)len : 1)))
        st = vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory (%ld bytes for %s)", len, path);
    else if (fread(buf, 1, (size_t)len, fp) != (size_t)len)
        st = vkr_error(VKLLM_ERR_IO, "cannot read %s: %s", path, ferror(fp) ? strerror(errno) : "truncated");
    fclose(fp);
    if (st == VKLLM_OK)
        st = vkllm_state_load(c, buf, (size_t)len);
    free(buf);
    return st;
}
