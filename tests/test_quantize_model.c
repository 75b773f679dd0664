/* vkl_quantize_plan and vkl_quantize_model (host/format/quantize_model.c): the per-tensor types of llama-quantize's file
 * types, and the written file. The expected types below were produced by llama.cpp's llama-quantize
 * (2026, v0.4.0) on the same two synthetic models during development: 16 layers of width 256, one with
 * 2-way GQA, FFN width 512 and an output tensor; one tied (no output.weight) with 4-way GQA and FFN width
 * 384, so ffn_down's rows (384) take the fallbacks. Each entry lists token_embd, output, then per role the
 * types of layers 0..15 in run-length form ("q6_K*2 q4_K" = two q6_K then one q4_K). */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "host/format/ggml_types.h"
#include "host/format/gguf.h"
#include "host/format/quant.h"
#include "host/format/quantize.h"
#include "host/format/quantize_model.h"
#include "host/tools/synth.h"
#include "util.h"

enum { UNTIED, TIED, N_ROLES = 7 };
static const char *const roles[N_ROLES] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};

typedef struct expectation {
    int model;
    const char *ftype;
    const char *types[2 + N_ROLES];   /* token_embd, output, then the roles */
} expectation;

static const expectation expected[] = {
    {UNTIED, "Q2_K", {"q2_K", "q6_K", "q2_K*16", "q2_K*16", "q3_K*16", "q3_K*16", "q2_K*16", "q2_K*16", "q3_K*16"}},
    {UNTIED, "Q3_K_M", {"q3_K", "q6_K", "q3_K*16", "q3_K*16", "q5_K*2 q4_K*14", "q4_K*16", "q3_K*16", "q3_K*16", "q5_K q4_K*15"}},
    {UNTIED, "Q3_K_L", {"q3_K", "q6_K", "q3_K*16", "q3_K*16", "q5_K*16", "q5_K*16", "q3_K*16", "q3_K*16", "q5_K*16"}},
    {UNTIED, "Q4_K_S", {"q4_K", "q6_K", "q4_K*16", "q4_K*16", "q5_K*4 q4_K*12", "q4_K*16", "q4_K*16", "q4_K*16", "q5_K*2 q4_K*14"}},
    {UNTIED, "Q4_K_M", {"q4_K", "q6_K", "q4_K*16", "q4_K*16", "q6_K*2 q4_K*2 q6_K q4_K*2 q6_K q4_K*2 q6_K q4_K*2 q6_K*3", "q4_K*16", "q4_K*16", "q4_K*16", "q6_K*2 q4_K*2 q6_K q4_K*2 q6_K q4_K*2 q6_K q4_K*2 q6_K*3"}},
    {UNTIED, "Q5_K_M", {"q5_K", "q6_K", "q5_K*16", "q5_K*16", "q6_K*2 q5_K*2 q6_K q5_K*2 q6_K q5_K*2 q6_K q5_K*2 q6_K*3", "q5_K*16", "q5_K*16", "q5_K*16", "q6_K*2 q5_K*2 q6_K q5_K*2 q6_K q5_K*2 q6_K q5_K*2 q6_K*3"}},
    {UNTIED, "IQ4_NL", {"iq4_nl", "q6_K", "iq4_nl*16", "iq4_nl*16", "iq4_nl*16", "iq4_nl*16", "iq4_nl*16", "iq4_nl*16", "q5_K*2 iq4_nl*14"}},
    {UNTIED, "Q4_0", {"q4_0", "q6_K", "q4_0*16", "q4_0*16", "q4_0*16", "q4_0*16", "q4_0*16", "q4_0*16", "q4_0*16"}},
    {UNTIED, "Q8_0", {"q8_0", "q8_0", "q8_0*16", "q8_0*16", "q8_0*16", "q8_0*16", "q8_0*16", "q8_0*16", "q8_0*16"}},
    {UNTIED, "F16", {"f16", "f16", "f16*16", "f16*16", "f16*16", "f16*16", "f16*16", "f16*16", "f16*16"}},
    {TIED, "Q2_K", {"q6_K", "", "q2_K*16", "q2_K*16", "q4_K*16", "q3_K*16", "q2_K*16", "q2_K*16", "q4_0*16"}},
    {TIED, "Q3_K_M", {"q6_K", "", "q3_K*16", "q3_K*16", "q5_K*2 q4_K*14", "q4_K*16", "q3_K*16", "q3_K*16", "q5_1 q5_0*15"}},
    {TIED, "Q4_K_M", {"q6_K", "", "q4_K*16", "q4_K*16", "q6_K*2 q4_K*2 q6_K q4_K*2 q6_K q4_K*2 q6_K q4_K*2 q6_K*3", "q4_K*16", "q4_K*16", "q4_K*16", "q8_0*2 q5_0*2 q8_0 q5_0*2 q8_0 q5_0*2 q8_0 q5_0*2 q8_0*3"}},
    {TIED, "Q5_K_M", {"q6_K", "", "q5_K*16", "q5_K*16", "q6_K*2 q5_K*2 q6_K q5_K*2 q6_K q5_K*2 q6_K q5_K*2 q6_K*3", "q5_K*16", "q5_K*16", "q5_K*16", "q8_0*2 q5_1*2 q8_0 q5_1*2 q8_0 q5_1*2 q8_0 q5_1*2 q8_0*3"}},
    {TIED, "IQ4_XS", {"q6_K", "", "iq4_xs*16", "iq4_xs*16", "q5_K*16", "iq4_xs*16", "iq4_xs*16", "iq4_xs*16", "q5_1*2 iq4_nl*14"}},
    {TIED, "Q6_K", {"q6_K", "", "q6_K*16", "q6_K*16", "q6_K*16", "q6_K*16", "q6_K*16", "q6_K*16", "q8_0*16"}},
};

static char paths[3][4096];   /* the untied and tied models of the mixes, a small one for the file */

/* The run-length form of the types of blk.0..15.<role>.weight. */
static void role_types(const gguf_file *f, const uint32_t *types, const char *role, char *out, size_t size)
{
    out[0] = '\0';
    const char *prev = NULL;
    int run = 0;
    for (int l = 0; l <= 16; l++) {
        const char *name = NULL;
        if (l < 16) {
            char tn[64];
            snprintf(tn, sizeof tn, "blk.%d.%s.weight", l, role);
            for (uint64_t i = 0; i < vkl_gguf_n_tensors(f); i++)
                if (!strcmp(vkl_gguf_tensor_at(f, i)->name, tn))
                    name = vkl_ggml_type_label(types[i]);
        }
        if (prev && (l == 16 || !name || strcmp(name, prev) != 0)) {
            size_t len = strlen(out);
            snprintf(out + len, size - len, run > 1 ? "%s%s*%d" : "%s%s", len ? " " : "", prev, run);
            run = 0;
        }
        prev = name;
        run++;
    }
}

static const char *tensor_type(const gguf_file *f, const uint32_t *types, const char *name)
{
    for (uint64_t i = 0; i < vkl_gguf_n_tensors(f); i++)
        if (!strcmp(vkl_gguf_tensor_at(f, i)->name, name))
            return vkl_ggml_type_label(types[i]);
    return "";
}

static void default_params(quantize_params *p, const char *ftype)
{
    memset(p, 0, sizeof *p);
    p->ftype = vkl_quantize_ftype_find(ftype);
    p->output_tensor_type = QUANTIZE_TYPE_AUTO;
    p->token_embedding_type = QUANTIZE_TYPE_AUTO;
    p->n_threads = 3;
}

/* Checks the plan of f under p against e's types. */
static void check_plan(const gguf_file *f, const quantize_params *p, const expectation *e, const char *what)
{
    uint32_t *types = calloc(vkl_gguf_n_tensors(f), sizeof *types);
    if (vkl_quantize_plan(f, p, types) != VKLLM_OK) {
        CHECK(0, "%s: plan failed: %s", what, vkr_last_error());
        free(types);
        return;
    }
    char got[512];
    CHECK(!strcmp(tensor_type(f, types, "token_embd.weight"), e->types[0]), "%s: token_embd %s, want %s", what,
          tensor_type(f, types, "token_embd.weight"), e->types[0]);
    CHECK(!strcmp(tensor_type(f, types, "output.weight"), e->types[1]), "%s: output %s, want %s", what,
          tensor_type(f, types, "output.weight"), e->types[1]);
    for (int r = 0; r < N_ROLES; r++) {
        role_types(f, types, roles[r], got, sizeof got);
        CHECK(!strcmp(got, e->types[2 + r]), "%s: %s is %s, want %s", what, roles[r], got, e->types[2 + r]);
    }
    for (uint64_t i = 0; i < vkl_gguf_n_tensors(f); i++)
        if (vkl_gguf_tensor_at(f, i)->n_dims == 1)
            CHECK(types[i] == GGML_TYPE_F32, "%s: %s is not kept f32", what, vkl_gguf_tensor_at(f, i)->name);
    free(types);
}

static void test_mixes(gguf_file *const *files)
{
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++) {
        const expectation *e = &expected[i];
        quantize_params p;
        default_params(&p, e->ftype);
        char what[64];
        snprintf(what, sizeof what, "%s model, %s", e->model == TIED ? "tied" : "untied", e->ftype);
        CHECK(p.ftype != NULL, "%s: unknown file type", what);
        if (p.ftype)
            check_plan(files[e->model], &p, e, what);
    }
    /* --pure: no mix, not even for the output tensor. --output-tensor-type, --token-embedding-type. */
    quantize_params p;
    default_params(&p, "q4_k_m");
    p.pure = true;
    const expectation pure = {UNTIED, "Q4_K_M", {"q4_K", "q4_K", "q4_K*16", "q4_K*16", "q4_K*16", "q4_K*16", "q4_K*16",
                                                 "q4_K*16", "q4_K*16"}};
    check_plan(files[UNTIED], &p, &pure, "--pure Q4_K_M");
    default_params(&p, "Q4_K_M");
    CHECK(vkl_quantize_tensor_type_find("Q8_0", &p.output_tensor_type) && vkl_quantize_tensor_type_find("q4_k", &p.token_embedding_type),
          "tensor type names");
    const expectation chosen = {UNTIED, "Q4_K_M", {"q4_K", "q8_0", "q4_K*16", "q4_K*16", expected[4].types[4],
                                                   "q4_K*16", "q4_K*16", "q4_K*16", expected[4].types[8]}};
    check_plan(files[UNTIED], &p, &chosen, "Q4_K_M --output-tensor-type q8_0 --token-embedding-type q4_k");
    /* Names and numbers. */
    CHECK(vkl_quantize_ftype_find("q4_k") == vkl_quantize_ftype_find("Q4_K_M") && vkl_quantize_ftype_find("15") == vkl_quantize_ftype_find("Q4_K_M"),
          "aliases");
    CHECK(!vkl_quantize_ftype_find("Q4_K_X") && !vkl_quantize_ftype_find("") && !vkl_quantize_ftype_find("99"), "unknown names");
    uint32_t t;
    CHECK(!vkl_quantize_tensor_type_find("iq2_xxs", &t) && !vkl_quantize_tensor_type_find("q4_K_M", &t), "unknown tensor types");
}

static bool leftover_temp_files(const char *dir)
{
    DIR *d = opendir(dir);
    bool found = false;
    for (struct dirent *e; d && (e = readdir(d));)
        found |= strstr(e->d_name, ".tmp-") != NULL && strstr(e->d_name, "quantize_model-") != NULL;
    if (d)
        closedir(d);
    return found;
}

/* The whole file: metadata, types, every converted tensor equal to vkl_quantize_row_search of its rows (so the
 * threads split the work without changing it), copied tensors byte-identical. */
static void test_file(const char *dir)
{
    char out[4200], out2[4200];
    const char *model = paths[2];
    snprintf(out, sizeof out, "%s.Q4_K_M.gguf", model);
    snprintf(out2, sizeof out2, "%s.requant.gguf", model);
    quantize_params p;
    default_params(&p, "Q4_K_M");
    CHECK(vkl_quantize_model(model, out, &p) == VKLLM_OK, "quantize_model: %s", vkr_last_error());
    gguf_file *in = NULL, *f = NULL;
    if (vkl_gguf_open(model, &in) != VKLLM_OK || vkl_gguf_open(out, &f) != VKLLM_OK) {
        CHECK(0, "reopening: %s", vkr_last_error());
        vkl_gguf_close(in);
        return;
    }
    uint32_t ft = 0, qv = 0;
    CHECK(vkl_gguf_get_u32(f, "general.file_type", &ft) && ft == 15, "general.file_type %u, want 15", ft);
    CHECK(vkl_gguf_get_u32(f, "general.quantization_version", &qv) && qv == 2, "general.quantization_version %u", qv);
    for (uint64_t i = 0; i < vkl_gguf_n_kv(in); i++) {
        const char *key = vkl_gguf_kv_key(in, i);
        int64_t j = vkl_gguf_find_key(f, key);
        CHECK(j >= 0 && vkl_gguf_kv_type(f, (uint64_t)j) == vkl_gguf_kv_type(in, i), "key %s not copied", key);
    }
    uint64_t n_in, n_out;
    gguf_value_type et;
    CHECK(vkl_gguf_get_arr_info(f, "tokenizer.ggml.tokens", &et, &n_out) &&
              vkl_gguf_get_arr_info(in, "tokenizer.ggml.tokens", &et, &n_in) && n_in == n_out, "tokens not copied");
    CHECK(vkl_gguf_n_tensors(f) == vkl_gguf_n_tensors(in), "tensor count");
    uint32_t *types = calloc(vkl_gguf_n_tensors(in), sizeof *types);
    CHECK(vkl_quantize_plan(in, &p, types) == VKLLM_OK, "plan");
    for (uint64_t i = 0; i < vkl_gguf_n_tensors(in) && i < vkl_gguf_n_tensors(f); i++) {
        const gguf_tensor *a = vkl_gguf_tensor_at(in, i), *b = vkl_gguf_tensor_at(f, i);
        CHECK(!strcmp(a->name, b->name) && b->type == types[i] && a->n_elements == b->n_elements, "tensor %s", a->name);
        if (a->type == b->type) {
            CHECK(a->nbytes == b->nbytes && !memcmp(a->data, b->data, (size_t)a->nbytes), "%s not copied", a->name);
            continue;
        }
        uint64_t n = a->ne[0], rows = a->n_elements / n, rb = vkl_ggml_row_bytes(b->type, n);
        uint8_t *want = malloc((size_t)rb);
        size_t bad = 0;
        for (uint64_t r = 0; r < rows; r++) {
            vkl_quantize_row_search(b->type, (const float *)a->data + r * n, want, n);
            bad += memcmp(want, (const uint8_t *)b->data + r * rb, (size_t)rb) != 0;
        }
        CHECK(bad == 0, "%s: %zu rows differ from quantize_row_search", a->name, bad);
        free(want);
    }
    free(types);

    /* A quantized input: refused without --allow-requantize (nothing written), accepted with it. */
    default_params(&p, "Q8_0");
    CHECK(vkl_quantize_model(out, out2, &p) != VKLLM_OK && strstr(vkr_last_error(), "--allow-requantize"),
          "requantizing without the flag: %s", vkr_last_error());
    CHECK(access(out2, F_OK) != 0, "a refused quantize left %s", out2);
    p.allow_requantize = true;
    CHECK(vkl_quantize_model(out, out2, &p) == VKLLM_OK, "requantizing with the flag: %s", vkr_last_error());
    /* An unwritable target: an error, no temporary file left. */
    char bad[4300];
    snprintf(bad, sizeof bad, "%s/no-such-dir/x.gguf", dir);
    CHECK(vkl_quantize_model(model, bad, &p) != VKLLM_OK && strstr(vkr_last_error(), "no-such-dir"),
          "unwritable target: %s", vkr_last_error());
    CHECK(!leftover_temp_files(dir), "temporary files left in %s", dir);
    vkl_gguf_close(in);
    vkl_gguf_close(f);
    remove(out);
    remove(out2);
}

int main(void)
{
    const char *tmp = getenv("VKLLM_TEST_TMP");
    const char *dir = tmp && *tmp ? tmp : "/tmp";
    const synth_hparams hp[3] = {
        {.preset = "custom", .model_name = "untied",
         .n_embd = 256, .n_layer = 16, .n_head = 4, .n_head_kv = 2, .n_ff = 512, .n_vocab = 512, .n_ctx = 256,
         .rope_theta = 10000.0f, .rms_eps = 1e-5f, .tied_embeddings = false, .rope_freqs = false},
        {.preset = "custom", .model_name = "tied",
         .n_embd = 256, .n_layer = 16, .n_head = 8, .n_head_kv = 2, .n_ff = 384, .n_vocab = 512, .n_ctx = 256,
         .rope_theta = 10000.0f, .rms_eps = 1e-5f, .tied_embeddings = true, .rope_freqs = false},
        {.preset = "custom", .model_name = "small",
         .n_embd = 256, .n_layer = 2, .n_head = 4, .n_head_kv = 2, .n_ff = 384, .n_vocab = 512, .n_ctx = 256,
         .rope_theta = 10000.0f, .rms_eps = 1e-5f, .tied_embeddings = false, .rope_freqs = false},
    };
    gguf_file *files[3] = {NULL, NULL, NULL};
    for (int m = 0; m < 3; m++) {
        snprintf(paths[m], sizeof paths[m], "%s/quantize_model-%d-%d.gguf", dir, (int)getpid(), m);
        synth_options o = {.hp = &hp[m], .type = GGML_TYPE_F32, .path = paths[m], .seed = 5};
        if (vkl_synth_write(&o) != VKLLM_OK || vkl_gguf_open(paths[m], &files[m]) != VKLLM_OK) {
            fprintf(stderr, "FAIL: synthetic model: %s\n", vkr_last_error());
            return 1;
        }
    }
    test_mixes(files);
    test_file(dir);
    for (int m = 0; m < 3; m++) {
        vkl_gguf_close(files[m]);
        remove(paths[m]);
    }
    return test_finish("quantize_model");
}
