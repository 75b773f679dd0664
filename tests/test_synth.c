/* Synthetic models: `synth tiny` for every weight type, read back with vkl_gguf_open: keys, vocabulary,
 * tensor shapes and types, weight statistics, and a CPU reference forward pass giving finite varied
 * logits. Also: determinism per seed, tied embeddings + rope_freqs (the llama3.2-1b layout, scaled
 * down), the big presets' hyper-parameters, and argument errors. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "host/format/ggml_types.h"
#include "host/format/gguf.h"
#include "host/format/quant.h"
#include "host/tools/synth.h"
#include "ref/ref_llama.h"
#include "util.h"

static const char *tmp_dir(void)
{
    const char *dir = getenv("VKLLM_TEST_TMP");
    return dir && *dir ? dir : "/tmp";
}

static void make_path(char *buf, size_t size, const char *tag)
{
    snprintf(buf, size, "%s/test_synth_%s_%ld.gguf", tmp_dir(), tag, (long)getpid());
}

static bool key_u32(const gguf_file *f, const char *key, uint32_t want)
{
    uint32_t v;
    bool ok = vkl_gguf_get_u32(f, key, &v) && v == want;
    CHECK(ok, "%s: expected %u", key, want);
    return ok;
}

static bool key_str(const gguf_file *f, const char *key, const char *want)
{
    const char *s;
    uint64_t len;
    bool ok = vkl_gguf_get_str(f, key, &s, &len) && len == strlen(want) && !memcmp(s, want, len);
    CHECK(ok, "%s: expected \"%s\"", key, want);
    return ok;
}

static void check_tensor(const gguf_file *f, const char *name, uint32_t type, uint32_t n_dims, uint64_t ne0,
                         uint64_t ne1)
{
    const gguf_tensor *t = vkl_gguf_find_tensor(f, name);
    CHECK(t != NULL, "tensor %s missing", name);
    if (!t)
        return;
    CHECK(t->type == type && t->n_dims == n_dims && t->ne[0] == ne0 && t->ne[1] == ne1 && t->data,
          "tensor %s: type %u dims %u [%llu, %llu], expected type %u dims %u [%llu, %llu]", name, t->type, t->n_dims,
          (unsigned long long)t->ne[0], (unsigned long long)t->ne[1], type, n_dims, (unsigned long long)ne0,
          (unsigned long long)ne1);
    if (!t->data || t->type != type)
        return;
    /* statistics of the values */
    uint64_t n = t->n_elements;
    float *x = malloc(n * sizeof *x);
    vkl_dequantize_row(t->type, t->data, x, n);
    CHECK(first_nonfinite(x, n) < 0, "tensor %s has non-finite values", name);
    double sum = 0, sq = 0;
    for (uint64_t i = 0; i < n; i++) {
        sum += x[i];
        sq += (double)x[i] * x[i];
    }
    double mean = sum / n, sd = sqrt(sq / n - mean * mean);
    if (n_dims == 1) {   /* norms: 1 +- 0.05 */
        for (uint64_t i = 0; i < n; i++)
            CHECK(x[i] > 0.9f && x[i] < 1.1f, "norm %s[%llu] = %g", name, (unsigned long long)i, x[i]);
    } else {
        double want = 1.0 / sqrt((double)ne0);
        CHECK(sd > 0.8 * want && sd < 1.25 * want, "tensor %s: deviation %g, expected about %g", name, sd, want);
        CHECK(fabs(mean) < 0.1 * want, "tensor %s: mean %g is not near 0 (deviation %g)", name, mean, want);
    }
    free(x);
}

/* Runs a few tokens through the CPU reference and checks the logits are finite and varied. */
static void check_forward(const gguf_file *f, const char *what)
{
    ref_llama *m;
    vkllm_status st = ref_llama_load(f, &m);
    CHECK(st == VKLLM_OK, "%s: ref_llama_load: %s", what, vkr_last_error());
    if (st != VKLLM_OK)
        return;
    uint32_t nv = ref_llama_n_vocab(m);
    const int32_t tokens[4] = {1, 300, 400, 5};
    float *logits = malloc((size_t)4 * nv * sizeof *logits);
    st = ref_llama_forward(m, tokens, 4, 0, logits);
    CHECK(st == VKLLM_OK, "%s: forward: %s", what, vkr_last_error());
    if (st == VKLLM_OK) {
        CHECK(first_nonfinite(logits, (size_t)4 * nv) < 0, "%s: non-finite logits", what);
        for (int t = 0; t < 4; t++) {
            const float *l = logits + (size_t)t * nv;
            double sum = 0, sq = 0;
            for (uint32_t i = 0; i < nv; i++) {
                sum += l[i];
                sq += (double)l[i] * l[i];
            }
            double mean = sum / nv, sd = sqrt(sq / nv - mean * mean);
            CHECK(sd > 0.05 && sd < 50, "%s: logits of token %d have deviation %g", what, t, sd);
            if (t == 3)
                fprintf(stderr, "%s: logits of the last token: mean %.3f, deviation %.3f\n", what, mean, sd);
        }
        CHECK(rel_l2(logits, logits + nv, nv) > 1e-3, "%s: logits do not depend on the token", what);
    }
    free(logits);
    ref_llama_free(m);
}

/* The file types and row fallbacks llama.cpp uses, written out here (not read from the type table). */
static uint32_t want_file_type(uint32_t type)
{
    static const uint32_t ft[][2] = {
        {GGML_TYPE_F32, 0},   {GGML_TYPE_F16, 1},   {GGML_TYPE_Q4_0, 2},    {GGML_TYPE_Q4_1, 3},   {GGML_TYPE_Q8_0, 7},
        {GGML_TYPE_Q5_0, 8},  {GGML_TYPE_Q5_1, 9},  {GGML_TYPE_Q2_K, 10},   {GGML_TYPE_Q3_K, 11},  {GGML_TYPE_Q4_K, 14},
        {GGML_TYPE_Q5_K, 16}, {GGML_TYPE_Q6_K, 18}, {GGML_TYPE_IQ4_NL, 25}, {GGML_TYPE_IQ4_XS, 30}, {GGML_TYPE_BF16, 32},
        {GGML_TYPE_MXFP4, 38}, {GGML_TYPE_IQ2_XXS, 19}, {GGML_TYPE_IQ2_XS, 20}, {GGML_TYPE_IQ3_XXS, 23},
        {GGML_TYPE_IQ1_S, 24}, {GGML_TYPE_IQ3_S, 26}, {GGML_TYPE_IQ2_S, 28}, {GGML_TYPE_IQ1_M, 31},
    };
    for (size_t i = 0; i < sizeof ft / sizeof ft[0]; i++)
        if (ft[i][0] == type)
            return ft[i][1];
    CHECK(false, "no file type written down for type %u", type);
    return 0;
}

/* The type of a weight of rows of ne0 elements in a file of `type`. */
static uint32_t want_type(uint32_t type, uint32_t ne0)
{
    if (ne0 % 256 == 0)
        return type;
    switch (type) {
    case GGML_TYPE_Q2_K: case GGML_TYPE_Q3_K: return GGML_TYPE_Q4_0;
    case GGML_TYPE_IQ4_XS: case GGML_TYPE_IQ2_XXS: case GGML_TYPE_IQ2_XS: case GGML_TYPE_IQ2_S:
    case GGML_TYPE_IQ3_XXS: case GGML_TYPE_IQ3_S: case GGML_TYPE_IQ1_S: case GGML_TYPE_IQ1_M: return GGML_TYPE_IQ4_NL;
    case GGML_TYPE_Q4_K: return GGML_TYPE_Q5_0;
    case GGML_TYPE_Q5_K: return GGML_TYPE_Q5_1;
    case GGML_TYPE_Q6_K: return GGML_TYPE_Q8_0;
    default: return type;
    }
}

/* Preset tiny (E = 128, F = 384: K-quants fall back) or tiny256 (E = 256, F = 768) in one weight type. */
static void test_tiny(const char *preset, uint32_t type)
{
    char path[4096], label[64];
    snprintf(label, sizeof label, "%s-%s", preset, vkl_ggml_type_name(type));
    make_path(path, sizeof path, label);
    synth_options o = {0};
    o.preset = preset;
    o.type = type;
    o.path = path;
    o.seed = 1234;
    vkllm_status st = vkl_synth_write(&o);
    CHECK(st == VKLLM_OK, "synth %s: %s", label, vkr_last_error());
    if (st != VKLLM_OK)
        return;
    gguf_file *f;
    st = vkl_gguf_open(path, &f);
    CHECK(st == VKLLM_OK, "reopen %s: %s", path, vkr_last_error());
    if (st != VKLLM_OK) {
        remove(path);
        return;
    }
    const bool wide = !strcmp(preset, "tiny256");
    const uint32_t E = wide ? 256 : 128, L = 2, H = 4, HKV = 2, F = wide ? 768 : 384, V = 512;
    const uint32_t file_type = want_file_type(type), tE = want_type(type, E), tF = want_type(type, F);
    CHECK(vkl_gguf_version(f) == 3, "version");
    key_str(f, "general.architecture", "llama");
    CHECK(vkl_gguf_find_key(f, "general.name") >= 0, "general.name");
    key_u32(f, "general.file_type", file_type);
    key_u32(f, "llama.context_length", 256);
    key_u32(f, "llama.embedding_length", E);
    key_u32(f, "llama.block_count", L);
    key_u32(f, "llama.feed_forward_length", F);
    key_u32(f, "llama.rope.dimension_count", E / H);
    key_u32(f, "llama.attention.head_count", H);
    key_u32(f, "llama.attention.head_count_kv", HKV);
    key_u32(f, "llama.vocab_size", V);
    float x;
    CHECK(vkl_gguf_get_f32(f, "llama.rope.freq_base", &x) && x == 10000.0f, "rope.freq_base");
    CHECK(vkl_gguf_get_f32(f, "llama.attention.layer_norm_rms_epsilon", &x) && x > 0 && x < 1e-4f, "rms eps");

    /* vocabulary */
    key_str(f, "tokenizer.ggml.model", "llama");
    key_u32(f, "tokenizer.ggml.bos_token_id", 1);
    key_u32(f, "tokenizer.ggml.eos_token_id", 2);
    key_u32(f, "tokenizer.ggml.unknown_token_id", 0);
    gguf_value_type et;
    uint64_t n;
    CHECK(vkl_gguf_get_arr_info(f, "tokenizer.ggml.tokens", &et, &n) && et == GGUF_TYPE_STRING && n == V, "tokens");
    CHECK(vkl_gguf_get_arr_info(f, "tokenizer.ggml.scores", &et, &n) && et == GGUF_TYPE_FLOAT32 && n == V, "scores");
    CHECK(vkl_gguf_get_arr_info(f, "tokenizer.ggml.token_type", &et, &n) && et == GGUF_TYPE_INT32 && n == V, "types");
    const uint8_t *scores = vkl_gguf_get_arr_data(f, "tokenizer.ggml.scores");
    const uint8_t *types = vkl_gguf_get_arr_data(f, "tokenizer.ggml.token_type");
    if (scores && types && n == V) {
        float prev = INFINITY;
        for (uint32_t i = 0; i < V; i++) {
            const char *s;
            uint64_t len;
            int32_t tt;
            float sc;
            memcpy(&tt, types + 4 * i, 4);
            memcpy(&sc, scores + 4 * i, 4);
            CHECK(vkl_gguf_get_arr_str(f, "tokenizer.ggml.tokens", i, &s, &len) && len > 0, "token %u", i);
            char want[16];
            int32_t want_type = 1;
            if (i == 0)
                snprintf(want, sizeof want, "<unk>"), want_type = 2;
            else if (i == 1)
                snprintf(want, sizeof want, "<s>"), want_type = 3;
            else if (i == 2)
                snprintf(want, sizeof want, "</s>"), want_type = 3;
            else if (i < 259)
                snprintf(want, sizeof want, "<0x%02X>", i - 3), want_type = 6;
            else
                want[0] = '\0';
            if (want[0])
                CHECK(len == strlen(want) && !memcmp(s, want, len), "token %u is '%.*s', expected '%s'", i, (int)len,
                      s, want);
            CHECK(tt == want_type, "token %u type %d, expected %d", i, tt, want_type);
            if (tt == 1) {
                CHECK(sc < prev, "score of token %u (%g) does not decrease", i, sc);
                prev = sc;
            }
            for (uint32_t j = 259; j < i && i >= 259; j++) {   /* pieces are unique */
                const char *s2;
                uint64_t len2;
                if (vkl_gguf_get_arr_str(f, "tokenizer.ggml.tokens", j, &s2, &len2) && len2 == len && !memcmp(s, s2, len))
                    CHECK(0, "tokens %u and %u are both '%.*s'", j, i, (int)len, s);
            }
        }
    }

    /* tensors */
    CHECK(vkl_gguf_n_tensors(f) == 3 + 9 * L, "tensor count %llu", (unsigned long long)vkl_gguf_n_tensors(f));
    check_tensor(f, "token_embd.weight", tE, 2, E, V);
    check_tensor(f, "output_norm.weight", GGML_TYPE_F32, 1, E, 1);
    check_tensor(f, "output.weight", tE, 2, E, V);
    CHECK(vkl_gguf_find_tensor(f, "rope_freqs.weight") == NULL, "tiny has no rope_freqs");
    for (uint32_t l = 0; l < L; l++) {
        char name[64];
#define T(suffix, ty, nd, a, b)                                       \
    snprintf(name, sizeof name, "blk.%u." suffix ".weight", l);       \
    check_tensor(f, name, ty, nd, a, b)
        T("attn_norm", GGML_TYPE_F32, 1, E, 1);
        T("attn_q", tE, 2, E, E);
        T("attn_k", tE, 2, E, E / H * HKV);
        T("attn_v", tE, 2, E, E / H * HKV);
        T("attn_output", tE, 2, E, E);
        T("ffn_norm", GGML_TYPE_F32, 1, E, 1);
        T("ffn_gate", tE, 2, E, F);
        T("ffn_up", tE, 2, E, F);
        T("ffn_down", tF, 2, F, E);
#undef T
    }
    check_forward(f, label);
    vkl_gguf_close(f);
    remove(path);
}

static uint8_t *slurp(const char *path, size_t *size)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *p = malloc(n > 0 ? (size_t)n : 1);
    if (p && fread(p, 1, (size_t)n, fp) != (size_t)n) {
        free(p);
        p = NULL;
    }
    fclose(fp);
    *size = (size_t)n;
    return p;
}

static void test_determinism(void)
{
    char a[4096], b[4096], c[4096];
    make_path(a, sizeof a, "det_a");
    make_path(b, sizeof b, "det_b");
    make_path(c, sizeof c, "det_c");
    synth_options o = {0};
    o.preset = "tiny";
    o.type = GGML_TYPE_Q4_0;
    o.seed = 77;
    o.path = a;
    CHECK(vkl_synth_write(&o) == VKLLM_OK, "synth a: %s", vkr_last_error());
    o.path = b;
    CHECK(vkl_synth_write(&o) == VKLLM_OK, "synth b: %s", vkr_last_error());
    o.seed = 78;
    o.path = c;
    CHECK(vkl_synth_write(&o) == VKLLM_OK, "synth c: %s", vkr_last_error());
    size_t na = 0, nb = 0, nc = 0;
    uint8_t *pa = slurp(a, &na), *pb = slurp(b, &nb), *pc = slurp(c, &nc);
    CHECK(pa && pb && na == nb && !memcmp(pa, pb, na), "same seed, different files");
    CHECK(pa && pc && (na != nc || memcmp(pa, pc, na)), "different seeds, same file");
    free(pa);
    free(pb);
    free(pc);
    remove(a);
    remove(b);
    remove(c);
}

/* The llama3.2-1b layout (tied embeddings, rope_freqs) at a small size. */
static void test_tied_rope_freqs(void)
{
    synth_hparams hp = *vkl_synth_preset("llama3.2-1b");
    hp.n_embd = 256;
    hp.n_head = 4;       /* head size 64, as in the real model: 32 rope factors */
    hp.n_head_kv = 1;
    hp.n_layer = 1;
    hp.n_ff = 512;
    hp.n_vocab = 1000;
    char path[4096];
    make_path(path, sizeof path, "tied");
    synth_options o = {0};
    o.hp = &hp;
    o.type = GGML_TYPE_Q8_0;
    o.path = path;
    o.seed = 5;
    vkllm_status st = vkl_synth_write(&o);
    CHECK(st == VKLLM_OK, "synth tied: %s", vkr_last_error());
    if (st != VKLLM_OK)
        return;
    gguf_file *f;
    st = vkl_gguf_open(path, &f);
    CHECK(st == VKLLM_OK, "reopen tied: %s", vkr_last_error());
    if (st == VKLLM_OK) {
        CHECK(vkl_gguf_find_tensor(f, "output.weight") == NULL, "tied model has output.weight");
        CHECK(vkl_gguf_n_tensors(f) == 3 + 9, "tied tensor count");
        float fx;
        CHECK(vkl_gguf_get_f32(f, "llama.rope.freq_base", &fx) && fx == 500000.0f, "theta");
        const gguf_tensor *t = vkl_gguf_find_tensor(f, "rope_freqs.weight");
        CHECK(t && t->type == GGML_TYPE_F32 && t->n_dims == 1 && t->ne[0] == 32, "rope_freqs shape");
        if (t && t->data && t->ne[0] == 32) {
            float r[32];
            memcpy(r, t->data, sizeof r);
            CHECK(r[0] == 1.0f && r[31] == 8.0f, "rope factors run from 1 to 8: %g .. %g", r[0], r[31]);
            int between = 0;
            for (int i = 1; i < 32; i++) {
                CHECK(r[i] >= r[i - 1], "rope factors not monotonic at %d", i);
                between += r[i] > 1.0f && r[i] < 8.0f;
            }
            CHECK(between >= 1, "no smooth transition in the rope factors");
        }
        check_forward(f, "tied + rope_freqs");
        vkl_gguf_close(f);
    }
    remove(path);
}

static void test_presets_and_errors(void)
{
    const synth_hparams *p = vkl_synth_preset("llama3.2-1b");
    CHECK(p && p->n_embd == 2048 && p->n_layer == 16 && p->n_head == 32 && p->n_head_kv == 8 && p->n_ff == 8192 &&
              p->n_vocab == 128256 && p->n_ctx == 131072 && p->rope_theta == 500000.0f && p->tied_embeddings &&
              p->rope_freqs,
          "llama3.2-1b preset");
    CHECK(p && vkl_synth_n_params(p) > 1200000000ull && vkl_synth_n_params(p) < 1300000000ull, "1b parameter count");
    p = vkl_synth_preset("llama3-8b");
    CHECK(p && p->n_embd == 4096 && p->n_layer == 32 && p->n_head == 32 && p->n_head_kv == 8 && p->n_ff == 14336 &&
              p->n_vocab == 128256 && p->n_ctx == 8192 && !p->tied_embeddings && !p->rope_freqs,
          "llama3-8b preset");
    CHECK(p && vkl_synth_n_params(p) > 8000000000ull && vkl_synth_n_params(p) < 8100000000ull, "8b parameter count");
    CHECK(vkl_synth_preset("nope") == NULL && vkl_synth_preset(NULL) == NULL, "unknown preset");

    char path[4096];
    make_path(path, sizeof path, "err");
    synth_options o = {0};
    o.preset = "gpt-5";
    o.type = GGML_TYPE_F32;
    o.path = path;
    CHECK(vkl_synth_write(&o) == VKLLM_ERR_INVALID_ARGUMENT && strstr(vkr_last_error(), "gpt-5"), "unknown preset: %s",
          vkr_last_error());
    o.preset = "tiny";
    o.type = GGML_TYPE_TQ1_0;   /* a GGUF type vkllm does not read */
    CHECK(vkl_synth_write(&o) == VKLLM_ERR_INVALID_ARGUMENT, "unknown type");
    o.type = GGML_TYPE_F32;
    o.path = "/nonexistent-dir/x.gguf";
    CHECK(vkl_synth_write(&o) == VKLLM_ERR_IO && strstr(vkr_last_error(), "/nonexistent-dir"), "unwritable path: %s",
          vkr_last_error());
    synth_hparams hp = *vkl_synth_preset("tiny");
    hp.n_head = 3;
    o.hp = &hp;
    o.path = path;
    CHECK(vkl_synth_write(&o) == VKLLM_ERR_INVALID_ARGUMENT, "n_embd not a multiple of n_head");
    hp = *vkl_synth_preset("tiny");
    hp.n_embd = 96;
    hp.n_head = 4;   /* head size 24: fine for f32, but 96 is a multiple of 32 too; use 80 for q8_0 */
    hp.n_embd = 80;
    o.type = GGML_TYPE_Q8_0;
    CHECK(vkl_synth_write(&o) == VKLLM_ERR_INVALID_ARGUMENT, "q8_0 with n_embd 80");
    CHECK(access(path, F_OK) != 0, "failed synth left %s behind", path);
    CHECK(vkl_synth_write(NULL) == VKLLM_ERR_INVALID_ARGUMENT, "NULL options");
}

int main(void)
{
    test_seed();
    for (size_t i = 0; i < vkl_ggml_type_count(); i++) {
        const ggml_type_info *t = vkl_ggml_type_at(i);
        test_tiny("tiny", t->id);
        if (t->block == 256)
            test_tiny("tiny256", t->id);
    }
    test_determinism();
    test_tied_rope_freqs();
    test_presets_and_errors();
    return test_finish("synth");
}
