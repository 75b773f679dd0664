/* The cooperative-matrix kernels as embedded in the library, checked without a device (lavapipe has no
 * cooperative matrix, and Debian 12's spirv-val 2023.1 does not know SPV_KHR_cooperative_matrix):
 *   NV form (glslang's output): spirv-val --target-env vulkan1.3 accepts it.
 *   KHR form (shaders/tools/spirv_coopmat_khr.c's output), by an independent reader of the module:
 *     valid header (SPIR-V 1.6, bound above every id), whole instructions; nothing of SPV_NV_cooperative_matrix
 *     left; CooperativeMatrixKHR, VulkanMemoryModel, OpMemoryModel Vulkan and the KHR extension present;
 *     every OpTypeCooperativeMatrixKHR has 7 words, 32-bit integer constant Scope/Rows/Columns/Use, a Use in
 *     0..2, and no two are the same type; every MulAdd has A of Use MatrixA, B of MatrixB, C and Result of
 *     MatrixAccumulator, the same ids as the NV MulAdd at the same position; every load/store has the KHR
 *     operand order (pointer, MemoryLayout constant, Stride, memory operands), with the same pointer, stride
 *     and memory operands as its NV original and MemoryLayout = ColumnMajor ? 1 : 0.
 *   The rewriter itself (next to the vkllm binary): rerunning it on the NV module reproduces the embedded KHR
 *   module exactly, and it refuses a module without NV cooperative matrices and a truncated one. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "host/format/quant.h"
#include "runtime/shader_table.h"
#include "util.h"

enum {
    OP_EXTENSION = 10, OP_MEMORY_MODEL = 14, OP_CAPABILITY = 17, OP_TYPE_INT = 21, OP_CONSTANT = 43,
    OP_CONSTANT_TRUE = 41, OP_CONSTANT_FALSE = 42,
    NV_TYPE = 5358, NV_LOAD = 5359, NV_STORE = 5360, NV_MULADD = 5361, NV_LENGTH = 5362, NV_CAP = 5357,
    KHR_TYPE = 4456, KHR_LOAD = 4457, KHR_STORE = 4458, KHR_MULADD = 4459, KHR_CAP = 6022,
    CAP_VULKAN_MEMORY_MODEL = 5345,
};

static const vkr_shader_blob *blob(const char *name)
{
    for (const vkr_shader_blob *s = vkr_shader_table; s->name; s++)
        if (!strcmp(s->name, name))
            return s;
    return NULL;
}

/* A parsed module: words, and per id the word offset of the instruction defining it (result id in word 1
 * for types, word 2 for everything with a result type). */
typedef struct spv {
    const uint32_t *w;
    size_t n;
    uint32_t bound;
    uint32_t *def;
} spv;

static uint16_t op_of(uint32_t x) { return (uint16_t)(x & 0xffff); }
static uint16_t wc_of(uint32_t x) { return (uint16_t)(x >> 16); }

static bool is_type_op(uint16_t op) { return (op >= 19 && op <= 39) || op == KHR_TYPE || op == NV_TYPE; }

static bool parse(spv *m, const uint32_t *w, size_t n, const char *label)
{
    memset(m, 0, sizeof *m);
    m->w = w;
    m->n = n;
    if (n < 5 || w[0] != 0x07230203u || w[4] != 0) {
        CHECK(0, "%s: bad SPIR-V header", label);
        return false;
    }
    m->bound = w[3];
    m->def = calloc(m->bound ? m->bound : 1, sizeof *m->def);
    if (!m->def)
        return false;
    for (size_t i = 5; i < n;) {
        uint16_t op = op_of(w[i]), wc = wc_of(w[i]);
        if (wc == 0 || i + wc > n) {
            CHECK(0, "%s: truncated instruction at word %zu", label, i);
            return false;
        }
        uint32_t id = 0;
        if (is_type_op(op) && wc >= 2)
            id = w[i + 1];
        else if ((op == OP_CONSTANT || op == OP_CONSTANT_TRUE || op == OP_CONSTANT_FALSE || op == 59 /* var */ ||
                  op == 61 /* load */ || op == 65 /* access chain */ || op == NV_LOAD || op == KHR_LOAD ||
                  op == NV_MULADD || op == KHR_MULADD || op == 80 || op == 44 || op == 245 || op == 83) &&
                 wc >= 3)
            id = w[i + 2];
        if (id) {
            CHECK(id < m->bound, "%s: id %u not below the bound %u", label, id, m->bound);
            if (id < m->bound)
                m->def[id] = (uint32_t)i;
        }
        i += wc;
    }
    return true;
}

/* The value of a 32-bit integer OpConstant, or -1. */
static long int_const(const spv *m, uint32_t id)
{
    if (id >= m->bound || !m->def[id])
        return -1;
    const uint32_t *in = &m->w[m->def[id]];
    if (op_of(in[0]) != OP_CONSTANT || wc_of(in[0]) != 4)
        return -1;
    uint32_t t = in[1];
    if (t >= m->bound || !m->def[t])
        return -1;
    const uint32_t *ti = &m->w[m->def[t]];
    if (op_of(ti[0]) != OP_TYPE_INT || ti[2] != 32)
        return -1;
    return (long)in[3];
}

/* The Use of a KHR cooperative matrix type, -1 if id is not one. */
static long use_of_type(const spv *m, uint32_t type)
{
    if (type >= m->bound || !m->def[type])
        return -1;
    const uint32_t *in = &m->w[m->def[type]];
    if (op_of(in[0]) != KHR_TYPE || wc_of(in[0]) != 7)
        return -1;
    return int_const(m, in[6]);
}

/* The Use of the type of value id (defined by an instruction with a result type), -1 if unknown. */
static long use_of_value(const spv *m, uint32_t id)
{
    if (id >= m->bound || !m->def[id])
        return -1;
    return use_of_type(m, m->w[m->def[id] + 1]);
}

/* Offsets of the instructions with opcode `op`, in order. */
static size_t collect(const spv *m, uint16_t op, size_t *out, size_t max)
{
    size_t k = 0;
    for (size_t i = 5; i < m->n; i += wc_of(m->w[i]))
        if (op_of(m->w[i]) == op && k < max)
            out[k++] = i;
    return k;
}

static bool has_extension(const spv *m, const char *name)
{
    for (size_t i = 5; i < m->n; i += wc_of(m->w[i]))
        if (op_of(m->w[i]) == OP_EXTENSION && (wc_of(m->w[i]) - 1u) * 4 > strlen(name) &&
            !strcmp((const char *)&m->w[i + 1], name))
            return true;
    return false;
}

static bool has_capability(const spv *m, uint32_t cap)
{
    for (size_t i = 5; i < m->n; i += wc_of(m->w[i]))
        if (op_of(m->w[i]) == OP_CAPABILITY && m->w[i + 1] == cap)
            return true;
    return false;
}

#define MAXI 256

static void check_pair(const vkr_shader_blob *nvb, const vkr_shader_blob *khb, const char *label)
{
    spv nv, kh;
    memset(&nv, 0, sizeof nv);
    memset(&kh, 0, sizeof kh);
    if (!parse(&nv, nvb->code, nvb->size / 4, label) || !parse(&kh, khb->code, khb->size / 4, label))
        goto done;
    CHECK(kh.w[1] == 0x00010600u, "%s: KHR module is SPIR-V %#x, want 1.6", label, kh.w[1]);
    CHECK(kh.w[1] == nv.w[1] && kh.w[2] == nv.w[2], "%s: version/generator changed", label);

    /* Nothing of NV left; KHR requirements present. */
    for (size_t i = 5; i < kh.n; i += wc_of(kh.w[i])) {
        uint16_t op = op_of(kh.w[i]);
        CHECK(op < NV_TYPE || op > NV_LENGTH, "%s: NV opcode %u left at word %zu", label, op, i);
    }
    CHECK(!has_capability(&kh, NV_CAP), "%s: CooperativeMatrixNV capability left", label);
    CHECK(!has_extension(&kh, "SPV_NV_cooperative_matrix"), "%s: NV extension left", label);
    CHECK(has_capability(&kh, KHR_CAP), "%s: no CooperativeMatrixKHR capability", label);
    CHECK(has_extension(&kh, "SPV_KHR_cooperative_matrix"), "%s: no SPV_KHR_cooperative_matrix", label);
    CHECK(has_capability(&kh, CAP_VULKAN_MEMORY_MODEL), "%s: no VulkanMemoryModel capability", label);
    size_t mm = 0;
    CHECK(collect(&kh, OP_MEMORY_MODEL, &mm, 1) == 1 && kh.w[mm + 2] == 3, "%s: memory model is not Vulkan",
          label);

    /* Types: well formed, unique. */
    size_t types[MAXI], nv_types[MAXI];
    const size_t nt = collect(&kh, KHR_TYPE, types, MAXI);
    const size_t nt_nv = collect(&nv, NV_TYPE, nv_types, MAXI);
    CHECK(nt > nt_nv, "%s: %zu KHR types for %zu NV types: A and B were not split", label, nt, nt_nv);
    for (size_t a = 0; a < nt; a++) {
        const uint32_t *t = &kh.w[types[a]];
        if (wc_of(t[0]) != 7) {
            CHECK(0, "%s: OpTypeCooperativeMatrixKHR of %u words", label, wc_of(t[0]));
            continue;
        }
        CHECK(int_const(&kh, t[3]) == 3 && int_const(&kh, t[4]) == 16 && int_const(&kh, t[5]) == 16,
              "%s: type %u is not a 16x16 subgroup matrix of 32-bit constants", label, t[1]);
        long use = int_const(&kh, t[6]);
        CHECK(use >= 0 && use <= 2, "%s: type %u has Use %ld", label, t[1], use);
        for (size_t b = 0; b < a; b++)
            CHECK(memcmp(&kh.w[types[b] + 2], &t[2], 5 * 4) != 0, "%s: types %u and %u are the same type", label,
                  kh.w[types[b] + 1], t[1]);
    }

    /* MulAdd: roles, operands unchanged. */
    size_t ka[MAXI], na[MAXI];
    size_t nk = collect(&kh, KHR_MULADD, ka, MAXI), nn = collect(&nv, NV_MULADD, na, MAXI);
    CHECK(nk == nn && nk > 0, "%s: %zu KHR MulAdd for %zu NV", label, nk, nn);
    for (size_t i = 0; i < nk && i < nn; i++) {
        const uint32_t *k = &kh.w[ka[i]], *v = &nv.w[na[i]];
        CHECK(wc_of(k[0]) == 6 && !memcmp(&k[2], &v[2], 4 * 4), "%s: MulAdd %zu operands changed", label, i);
        CHECK(use_of_type(&kh, k[1]) == 2, "%s: MulAdd %zu result type is not an accumulator", label, i);
        CHECK(use_of_value(&kh, k[3]) == 0, "%s: MulAdd %zu A (id %u) is not MatrixA", label, i, k[3]);
        CHECK(use_of_value(&kh, k[4]) == 1, "%s: MulAdd %zu B (id %u) is not MatrixB", label, i, k[4]);
        CHECK(use_of_value(&kh, k[5]) == 2, "%s: MulAdd %zu C (id %u) is not an accumulator", label, i, k[5]);
    }

    /* Loads and stores: KHR operand order, same operands as the NV original. */
    for (int store = 0; store < 2; store++) {
        size_t nko = collect(&kh, store ? KHR_STORE : KHR_LOAD, ka, MAXI);
        size_t nno = collect(&nv, store ? NV_STORE : NV_LOAD, na, MAXI);
        CHECK(nko == nno && nko > 0, "%s: %zu KHR %s for %zu NV", label, nko, store ? "stores" : "loads", nno);
        /* Word p: the Pointer of a load, the Object of a store. NV then has Stride, ColumnMajor, memory
         * operands; KHR MemoryLayout, Stride, memory operands. */
        const unsigned p = store ? 2 : 3;
        for (size_t i = 0; i < nko && i < nno; i++) {
            const uint32_t *k = &kh.w[ka[i]], *v = &nv.w[na[i]];
            const uint16_t wk = wc_of(k[0]), wv = wc_of(v[0]);
            if (wk != wv || wk < p + 3) {
                CHECK(0, "%s: %s %zu has %u words (NV %u)", label, store ? "store" : "load", i, wk, wv);
                continue;
            }
            const uint32_t cm = v[p + 2];   /* NV: Pointer, Stride, ColumnMajor */
            const uint16_t cop = nv.def[cm] ? op_of(nv.w[nv.def[cm]]) : 0;
            const long want = cop == OP_CONSTANT_TRUE ? 1 : cop == OP_CONSTANT_FALSE ? 0 : -1;
            CHECK(want >= 0, "%s: NV ColumnMajor of %s %zu is not a boolean constant", label,
                  store ? "store" : "load", i);
            CHECK(k[p] == v[p] && k[p - 1] == v[p - 1], "%s: %s %zu result/pointer/object changed", label,
                  store ? "store" : "load", i);
            CHECK(int_const(&kh, k[p + 1]) == want, "%s: %s %zu MemoryLayout %ld, want %ld", label,
                  store ? "store" : "load", i, int_const(&kh, k[p + 1]), want);
            CHECK(k[p + 2] == v[p + 1], "%s: %s %zu stride changed", label, store ? "store" : "load", i);
            CHECK(!memcmp(&k[p + 3], &v[p + 3], (wk - p - 3) * 4u), "%s: %s %zu memory operands changed", label,
                  store ? "store" : "load", i);
            if (wk > p + 3)   /* MakePointerAvailable (0x8) not with loads, MakePointerVisible (0x10) not stores */
                CHECK(!(k[p + 3] & (store ? 0x10u : 0x8u)), "%s: %s %zu has a forbidden memory operand", label,
                      store ? "store" : "load", i);
            if (!store)
                CHECK(use_of_type(&kh, k[1]) >= 0, "%s: load %zu result is not a KHR matrix", label, i);
        }
    }
done:
    free(nv.def);
    free(kh.def);
}

static bool write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return false;
    bool ok = fwrite(data, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

static void *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc(size ? (size_t)size : 1)) && fread(buf, 1, (size_t)size, f) != (size_t)size) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *n = size > 0 ? (size_t)size : 0;
    return buf;
}

/* spirv-val on the NV module, and the rewriter on the NV module and on bad input. */
static void check_tools(const vkr_shader_blob *nvb, const vkr_shader_blob *khb, const char *label)
{
    const char *tmp = getenv("VKLLM_TEST_TMP");
    char in[512], out[512], cmd[2048];
    snprintf(in, sizeof in, "%s/coopmat_%s_nv.spv", tmp && *tmp ? tmp : "/tmp", label);
    snprintf(out, sizeof out, "%s/coopmat_%s_khr.spv", tmp && *tmp ? tmp : "/tmp", label);
    if (!write_file(in, nvb->code, nvb->size)) {
        CHECK(0, "%s: cannot write %s", label, in);
        return;
    }
    snprintf(cmd, sizeof cmd, "spirv-val --target-env vulkan1.3 '%s'", in);
    int rc = system(cmd);
    CHECK(rc == 0, "%s: spirv-val rejects the NV module (%s; exit %d; Debian: spirv-tools)", label, in, rc);

    /* The rewriter is built next to the vkllm binary (VKLLM_BIN, set by ctest), i.e. one directory above
     * this test's. */
    const char *bin = getenv("VKLLM_BIN");
    char self[512] = "", tool[600];
    if (!bin || !*bin || !strrchr(bin, '/')) {
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        self[n > 0 ? n : 0] = '\0';
        char *slash = strrchr(self, '/');
        if (!slash) {
            CHECK(0, "cannot find the rewriter: set VKLLM_BIN to the vkllm binary (ctest does)");
            return;
        }
        snprintf(slash, sizeof self - (size_t)(slash - self), "/../vkllm");
        bin = self;
    }
    snprintf(tool, sizeof tool, "%.*s/vkllm_spirv_coopmat_khr", (int)(strrchr(bin, '/') - bin), bin);
    snprintf(cmd, sizeof cmd, "'%s' '%s' '%s'", tool, in, out);
    rc = system(cmd);
    CHECK(rc == 0, "%s: the rewriter failed on the NV module (exit %d)", label, rc);
    size_t n = 0;
    void *again = rc == 0 ? read_all(out, &n) : NULL;
    CHECK(rc != 0 || (again && n == khb->size && !memcmp(again, khb->code, n)),
          "%s: rerunning the rewriter does not reproduce the embedded KHR module", label);
    free(again);

    /* Refusals: a module without NV cooperative matrices (the KHR one), and a truncated one. */
    CHECK(write_file(in, khb->code, khb->size), "cannot write %s", in);
    snprintf(cmd, sizeof cmd, "'%s' '%s' '%s' 2>/dev/null", tool, in, out);
    CHECK(system(cmd) != 0, "%s: the rewriter accepted a module without NV cooperative matrices", label);
    size_t cut = 5;   /* in words: one word into an instruction of several, past the middle */
    while (cut < nvb->size / 4 && (cut < nvb->size / 8 || wc_of(nvb->code[cut]) < 2))
        cut += wc_of(nvb->code[cut]);
    CHECK(write_file(in, nvb->code, (cut + 1) * 4), "cannot write %s", in);
    CHECK(system(cmd) != 0, "%s: the rewriter accepted a truncated module", label);
    remove(in);
    remove(out);
}

int main(void)
{
    /* Every type of the type table (host/format/quant.c) that has kernels has both modules. */
    for (uint32_t type = 0; type < 64; type++) {
        const char *tn = vkl_ggml_type_name(type);
        if (!tn || !vkl_ggml_type_get(type)->kernels)
            continue;
        char nvn[64], khn[64];
        snprintf(nvn, sizeof nvn, "matmul_coopmat_%s_nv", tn);
        snprintf(khn, sizeof khn, "matmul_coopmat_%s_khr", tn);
        const vkr_shader_blob *nvb = blob(nvn), *khb = blob(khn);
        CHECK(nvb && khb, "shader %s or %s is not embedded", nvn, khn);
        if (!nvb || !khb)
            continue;
        check_pair(nvb, khb, tn);
        check_tools(nvb, khb, tn);
        fprintf(stderr, "%s: %zu / %zu bytes (NV / KHR) checked\n", tn, nvb->size, khb->size);
    }
    return test_finish("spirv_coopmat");
}
