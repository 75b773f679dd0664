/* spirv_coopmat_khr IN.spv OUT.spv: rewrites a SPIR-V module that uses SPV_NV_cooperative_matrix into the
 * equivalent module using SPV_KHR_cooperative_matrix. A build-time tool (shaders/shaders.cmake): Debian 12's
 * glslang 12.0 compiles GL_NV_cooperative_matrix but not GL_KHR_cooperative_matrix, and AMD/Intel drivers
 * only offer the KHR form, so one GLSL source yields both (NAME_nv.spv from glslang, NAME_khr.spv from here).
 * Exits 0 on success; on anything it does not understand it prints why and exits 1 (the build fails) rather
 * than emit a doubtful module.
 *
 * Facts used, with their source (SPIRV-Registry extensions/NV/SPV_NV_cooperative_matrix.asciidoc rev 3 and
 * extensions/KHR/SPV_KHR_cooperative_matrix.asciidoc rev 10; opcode numbers agree with SPIRV-Headers
 * include/spirv/unified1/spirv.h):
 *   NV  3.31 Capability CooperativeMatrixNV = 5357          KHR 3.31 Capability CooperativeMatrixKHR = 6022
 *   NV  OpExtension "SPV_NV_cooperative_matrix"              KHR OpExtension "SPV_KHR_cooperative_matrix"
 *   NV  3.32.6 OpTypeCooperativeMatrixNV (5358), 6 words:
 *       Result, Component Type, Scope, Rows, Columns
 *   KHR 3.42.6 OpTypeCooperativeMatrixKHR (4456), 7 words:
 *       Result, Component Type, Scope, Rows, Columns, Use. Scope/Rows/Columns/Use: constant instructions of
 *       scalar 32-bit integer type. Use (3.X Cooperative Matrix Use): MatrixAKHR 0, MatrixBKHR 1,
 *       MatrixAccumulatorKHR 2.
 *   NV  3.32.8 OpCooperativeMatrixLoadNV (5359), 6+ words: Result Type, Result, Pointer, Stride, ColumnMajor
 *       (a boolean constant: false = row major), optional Memory Access
 *   KHR 3.42.8 OpCooperativeMatrixLoadKHR (4457), 5+ words: Result Type, Result, Pointer, MemoryLayout (a
 *       32-bit integer constant instruction; 3.X Cooperative Matrix Layout: RowMajorKHR 0, ColumnMajorKHR 1),
 *       optional Stride, optional Memory Operand (only with Stride)
 *   NV  OpCooperativeMatrixStoreNV (5360), 5+ words: Pointer, Object, Stride, ColumnMajor, optional Memory Access
 *   KHR OpCooperativeMatrixStoreKHR (4458), 4+ words: Pointer, Object, MemoryLayout, optional Stride,
 *       optional Memory Operand
 *   NV  3.32.13 OpCooperativeMatrixMulAddNV (5361), 6 words: Result Type, Result, A, B, C; integer components
 *       are signed if their type has Signedness 1
 *   KHR 3.42.13 OpCooperativeMatrixMulAddKHR (4459), 6+ words: Result Type, Result, A, B, C, optional
 *       Cooperative Matrix Operands (3.X: MatrixASignedComponentsKHR 0x1, B 0x2, C 0x4, Result 0x8; without
 *       them integer components are zero-extended). A must have Use MatrixAKHR, B MatrixBKHR, C and Result
 *       Type MatrixAccumulatorKHR.
 *   NV  OpCooperativeMatrixLengthNV (5362) -> KHR 3.42.1 OpCooperativeMatrixLengthKHR (4460), both 4 words:
 *       Result Type, Result, Type
 *   Memory Access / Memory Operand words have the same encoding in both (core 3.26) and are copied as is.
 *   KHR Dependencies / 2.16.2: a Shader module with CooperativeMatrixKHR must declare VulkanMemoryModel (the
 *   NV extension requires SPV_KHR_vulkan_memory_model too), so the input must use OpMemoryModel ... Vulkan.
 *   KHR 3.42.11: conversions keep the Use; binary arithmetic needs matching types.
 *
 * The one non-local part: NV types have no Use, so glslang gives A and B (both 16x16 f16) one type, which
 * KHR must split. Every value or pointer whose type is or holds a cooperative matrix is a node; nodes that
 * must share a type are joined (load/store through a variable, access chains, copies, phis, selects,
 * conversions, arithmetic, composites), and each MulAdd operand fixes the role of its class. A type keeps its
 * id for one role (the role whose data lives in arrays or structs, if any: those cannot be retyped) and gets
 * a new type id, plus new pointer types, for each other role. Unconstrained classes keep their type's role.
 * Cooperative matrices passed to or returned from functions are refused (the kernels never do that). */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Opcodes: SPIR-V 1.6 unified spec, section 3.49 (core); 3.31 capability values. */
enum {
    OP_NAME = 5, OP_MEMBER_NAME = 6, OP_EXTENSION = 10, OP_MEMORY_MODEL = 14, OP_CAPABILITY = 17,
    OP_TYPE_BOOL = 20, OP_TYPE_INT = 21, OP_TYPE_FLOAT = 22, OP_TYPE_ARRAY = 28, OP_TYPE_RUNTIME_ARRAY = 29,
    OP_TYPE_STRUCT = 30, OP_TYPE_POINTER = 32, OP_TYPE_FUNCTION = 33,
    OP_CONSTANT_TRUE = 41, OP_CONSTANT_FALSE = 42, OP_CONSTANT = 43, OP_CONSTANT_COMPOSITE = 44,
    OP_CONSTANT_NULL = 46, OP_SPEC_CONSTANT_COMPOSITE = 51, OP_FUNCTION = 54, OP_FUNCTION_PARAMETER = 55,
    OP_FUNCTION_CALL = 57, OP_VARIABLE = 59, OP_LOAD = 61, OP_STORE = 62, OP_COPY_MEMORY = 63,
    OP_ACCESS_CHAIN = 65, OP_IN_BOUNDS_ACCESS_CHAIN = 66, OP_PTR_ACCESS_CHAIN = 67, OP_DECORATE = 71,
    OP_MEMBER_DECORATE = 72, OP_COMPOSITE_CONSTRUCT = 80, OP_COMPOSITE_EXTRACT = 81, OP_COMPOSITE_INSERT = 82,
    OP_COPY_OBJECT = 83, OP_UNDEF = 1, OP_SELECT = 169, OP_PHI = 245, OP_RETURN_VALUE = 254,
    /* SPV_NV_cooperative_matrix */
    OP_TYPE_COOPMAT_NV = 5358, OP_COOPMAT_LOAD_NV = 5359, OP_COOPMAT_STORE_NV = 5360, OP_COOPMAT_MULADD_NV = 5361,
    OP_COOPMAT_LENGTH_NV = 5362,
    /* SPV_KHR_cooperative_matrix */
    OP_TYPE_COOPMAT_KHR = 4456, OP_COOPMAT_LOAD_KHR = 4457, OP_COOPMAT_STORE_KHR = 4458,
    OP_COOPMAT_MULADD_KHR = 4459, OP_COOPMAT_LENGTH_KHR = 4460,
    CAP_COOPMAT_NV = 5357, CAP_COOPMAT_KHR = 6022,
    MEMORY_MODEL_VULKAN = 3,
};

enum { ROLE_A = 0, ROLE_B = 1, ROLE_ACC = 2, N_ROLES = 3, ROLE_NONE = -1 };  /* = KHR Use values */
static const char *const ROLE_NAME[N_ROLES] = {"MatrixA", "MatrixB", "MatrixAccumulator"};

static const char NV_EXT[] = "SPV_NV_cooperative_matrix";
static const char KHR_EXT[] = "SPV_KHR_cooperative_matrix";

typedef struct module {
    uint32_t *w;          /* the input words */
    size_t n;             /* word count */
    uint32_t bound;
    /* per id (index < bound) */
    uint32_t *def;        /* word offset of the defining instruction, 0 if none */
    uint32_t *type_of;    /* result type of a value id, 0 if none/unknown */
    uint32_t *cm_base;    /* types: the cooperative matrix type it is/points to/holds (0: none);
                           * values: the same for the value's type */
    uint8_t *composite;   /* types: holds a cooperative matrix inside an array or struct */
    uint8_t *is_type;     /* a type declaration that is or holds a cooperative matrix */
    int32_t *parent;      /* union-find over node ids (-1: not a node) */
    int8_t *role;         /* per class root */
} module;

static int fail(const char *msg, uint32_t id)
{
    if (id)
        fprintf(stderr, "spirv_coopmat_khr: %s (id %u)\n", msg, id);
    else
        fprintf(stderr, "spirv_coopmat_khr: %s\n", msg);
    return 1;
}

static uint16_t opcode(uint32_t word) { return (uint16_t)(word & 0xffffu); }
static uint16_t wcount(uint32_t word) { return (uint16_t)(word >> 16); }

static bool is_node(const module *m, uint32_t id) { return id < m->bound && m->parent[id] >= 0; }

static uint32_t find(module *m, uint32_t id)
{
    while ((uint32_t)m->parent[id] != id) {
        m->parent[id] = m->parent[m->parent[id]];
        id = (uint32_t)m->parent[id];
    }
    return id;
}

static int join(module *m, uint32_t a, uint32_t b)
{
    if (!is_node(m, a) || !is_node(m, b))
        return 0;
    uint32_t ra = find(m, a), rb = find(m, b);
    if (ra == rb)
        return 0;
    if (m->role[ra] != ROLE_NONE && m->role[rb] != ROLE_NONE && m->role[ra] != m->role[rb])
        return fail("one cooperative matrix value is used in two roles", a);
    if (m->role[ra] == ROLE_NONE)
        m->role[ra] = m->role[rb];
    m->parent[rb] = (int32_t)ra;
    return 0;
}

static int set_role(module *m, uint32_t id, int role)
{
    if (!is_node(m, id))
        return fail("MulAdd operand is not a cooperative matrix", id);
    uint32_t r = find(m, id);
    if (m->role[r] != ROLE_NONE && m->role[r] != role)
        return fail("one cooperative matrix value is used in two roles", id);
    m->role[r] = (int8_t)role;
    return 0;
}

/* Opcodes whose result may be a cooperative matrix (or a pointer/array holding one), and how their id
 * operands join classes. Anything else producing such a value is refused. */
static bool joins_all_operands(uint16_t op)
{
    switch (op) {
    case OP_UNDEF: case OP_CONSTANT_COMPOSITE: case OP_CONSTANT_NULL: case OP_SPEC_CONSTANT_COMPOSITE:
    case OP_VARIABLE: case OP_LOAD: case OP_COPY_OBJECT: case OP_COMPOSITE_CONSTRUCT: case OP_COMPOSITE_INSERT:
    case OP_PHI: case OP_SELECT: case OP_ACCESS_CHAIN: case OP_IN_BOUNDS_ACCESS_CHAIN: case OP_PTR_ACCESS_CHAIN:
    case OP_COMPOSITE_EXTRACT:
    case 109: case 110: case 111: case 112: case 113: case 114: case 115: case 124: /* conversions, OpBitcast */
    case 126: case 127: case 128: case 129: case 130: case 131: case 132: case 133: case 134: case 135:
    case 136: case 143: /* negate, add, sub, mul, div, OpMatrixTimesScalar */
        return true;
    default:
        return false;
    }
}

/* Instructions that never carry a cooperative matrix operand worth checking (debug, annotations, headers). */
static bool is_annotation(uint16_t op)
{
    return (op >= 2 && op <= 17 && op != 12 /* OpExtInst */) || op == OP_DECORATE || op == OP_MEMBER_DECORATE ||
           op == 73 || op == 74 || op == 75 || op == 332 || op == 5632 || op == 5633 || op == 317;
}

static int analyse(module *m)
{
    /* Pass 1: definitions, types, nodes. Types precede their uses (core 2.4 logical layout). */
    for (size_t i = 5; i < m->n; i += wcount(m->w[i])) {
        const uint32_t *in = &m->w[i];
        uint16_t op = opcode(in[0]), wc = wcount(in[0]);
        switch (op) {
        case OP_TYPE_COOPMAT_NV:
            if (wc != 6 || in[1] >= m->bound)
                return fail("malformed OpTypeCooperativeMatrixNV", 0);
            m->def[in[1]] = (uint32_t)i;
            m->cm_base[in[1]] = in[1];
            m->is_type[in[1]] = 1;
            continue;
        case OP_TYPE_POINTER:
        case OP_TYPE_ARRAY:
        case OP_TYPE_RUNTIME_ARRAY: {
            if (wc < (op == OP_TYPE_POINTER ? 4 : 3))
                return fail("malformed type", 0);
            uint32_t elem = op == OP_TYPE_POINTER ? in[3] : in[2];
            if (in[1] >= m->bound || elem >= m->bound)
                return fail("malformed type", 0);
            m->def[in[1]] = (uint32_t)i;
            m->cm_base[in[1]] = m->cm_base[elem];
            m->composite[in[1]] = m->composite[elem] || (op != OP_TYPE_POINTER && m->cm_base[elem]);
            m->is_type[in[1]] = m->cm_base[in[1]] != 0;
            continue;
        }
        case OP_TYPE_STRUCT:
        case OP_TYPE_FUNCTION:
            if (wc < 2 || in[1] >= m->bound)
                return fail("malformed type", 0);
            m->def[in[1]] = (uint32_t)i;
            for (uint16_t k = 2; k < wc; k++)
                if (in[k] < m->bound && m->cm_base[in[k]]) {
                    if (op == OP_TYPE_FUNCTION)
                        return fail("cooperative matrices in function signatures are not supported", in[1]);
                    m->cm_base[in[1]] = m->cm_base[in[k]];
                    m->composite[in[1]] = 1;
                    m->is_type[in[1]] = 1;
                }
            continue;
        default:
            break;
        }
        if (is_annotation(op) || wc < 3)
            continue;
        /* Value instructions: word 1 = result type, word 2 = result, when the opcode has them. */
        uint32_t rt = in[1];
        bool cm_result = rt < m->bound && m->is_type[rt];
        if (!cm_result)
            continue;
        if (!joins_all_operands(op) && op != OP_COOPMAT_LOAD_NV && op != OP_COOPMAT_MULADD_NV) {
            if (op == OP_FUNCTION || op == OP_FUNCTION_PARAMETER || op == OP_FUNCTION_CALL)
                return fail("cooperative matrices passed to or returned from functions are not supported", in[2]);
            fprintf(stderr, "spirv_coopmat_khr: opcode %u with a cooperative matrix result is not supported\n", op);
            return 1;
        }
        if (in[2] >= m->bound)
            return fail("result id out of bound", in[2]);
        m->def[in[2]] = (uint32_t)i;
        m->type_of[in[2]] = rt;
        m->cm_base[in[2]] = m->cm_base[rt];
        m->parent[in[2]] = (int32_t)in[2];
    }

    /* Pass 2: joins and roles. */
    for (size_t i = 5; i < m->n; i += wcount(m->w[i])) {
        const uint32_t *in = &m->w[i];
        uint16_t op = opcode(in[0]), wc = wcount(in[0]);
        switch (op) {
        case OP_STORE:
        case OP_COPY_MEMORY:
            if (wc >= 3 && join(m, in[1], in[2]))
                return 1;
            break;
        case OP_RETURN_VALUE:
            if (wc >= 2 && is_node(m, in[1]))
                return fail("returning a cooperative matrix is not supported", in[1]);
            break;
        case OP_FUNCTION_CALL:
            for (uint16_t k = 4; k < wc; k++)
                if (is_node(m, in[k]))
                    return fail("passing a cooperative matrix to a function is not supported", in[k]);
            break;
        case OP_COOPMAT_MULADD_NV:
            if (wc != 6)
                return fail("malformed OpCooperativeMatrixMulAddNV", 0);
            if (set_role(m, in[2], ROLE_ACC) || set_role(m, in[3], ROLE_A) || set_role(m, in[4], ROLE_B) ||
                set_role(m, in[5], ROLE_ACC))
                return 1;
            break;
        default:
            if (wc >= 3 && is_node(m, in[2]) && joins_all_operands(op)) {
                uint16_t first = 3, last = wc;
                if (op == OP_LOAD || op == OP_COPY_OBJECT || op == OP_COMPOSITE_EXTRACT)
                    last = 4;                 /* then memory operands / literal indexes */
                else if (op == OP_COMPOSITE_INSERT)
                    last = 5;
                if (last > wc)
                    last = wc;
                if (op == OP_VARIABLE)
                    first = 4;                /* word 3: storage class */
                else if (op == OP_SELECT)
                    first = 4;                /* word 3: condition */
                for (uint16_t k = first; k < last; k++) {
                    if (op == OP_PHI && (k - 3) % 2)
                        continue;             /* parent labels */
                    if (join(m, in[2], in[k]))
                        return 1;
                }
            }
            break;
        }
    }
    return 0;
}

/* Per cooperative matrix type: the role that keeps the original id, and the new ids of the others. */
typedef struct split {
    uint32_t type;
    int orig;
    uint32_t new_type[N_ROLES];       /* 0 = not needed (or the original role) */
    bool used[N_ROLES];
    bool pinned[N_ROLES];             /* a class of this role holds arrays/structs: cannot be retyped */
} split;

typedef struct newptr {
    uint32_t storage, pointee, id;
} newptr;

typedef struct out_buf {
    uint32_t *w;
    size_t n, cap;
} out_buf;

static int emit(out_buf *o, const uint32_t *words, size_t n)
{
    if (o->n + n > o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 4096;
        while (cap < o->n + n)
            cap *= 2;
        uint32_t *w = realloc(o->w, cap * sizeof *w);
        if (!w)
            return fail("out of memory", 0);
        o->w = w;
        o->cap = cap;
    }
    memcpy(o->w + o->n, words, n * sizeof *words);
    o->n += n;
    return 0;
}

static split *find_split(split *s, size_t ns, uint32_t type)
{
    for (size_t i = 0; i < ns; i++)
        if (s[i].type == type)
            return &s[i];
    return NULL;
}

/* Component type id -> true if a signed integer type. */
static bool signed_int(const module *m, uint32_t cm_type)
{
    uint32_t comp = m->w[m->def[cm_type] + 2];
    uint32_t d = comp < m->bound ? m->def[comp] : 0;
    return d && opcode(m->w[d]) == OP_TYPE_INT && m->w[d + 3] == 1;
}

/* True when id is an OpConstant of a 32-bit integer type (KHR: Scope, Rows, Columns). */
static bool const_int32(const module *m, uint32_t id)
{
    uint32_t d = id < m->bound ? m->def[id] : 0;
    if (!d)
        return false;
    uint16_t op = opcode(m->w[d]);
    if (op != OP_CONSTANT && op != 50 /* OpSpecConstant */ && op != 52 /* OpSpecConstantOp */)
        return false;
    uint32_t t = m->w[d + 1];
    uint32_t td = t < m->bound ? m->def[t] : 0;
    return td && opcode(m->w[td]) == OP_TYPE_INT && m->w[td + 2] == 32;
}

static int rewrite(module *m, out_buf *o)
{
    int rc = 1;
    size_t ns = 0, nptr = 0;
    split *sp = calloc(m->bound, sizeof *sp);
    newptr *np = calloc(m->bound, sizeof *np);
    if (!sp || !np) {
        fail("out of memory", 0);
        goto done;
    }
    /* Record definitions of constants and int types too (pass 1 kept only cooperative matrix values). */
    uint32_t uint_type = 0;
    size_t uint_at = 0, first_cm_at = 0;
    bool vulkan_mm = false;
    for (size_t i = 5; i < m->n; i += wcount(m->w[i])) {
        const uint32_t *in = &m->w[i];
        uint16_t op = opcode(in[0]), wc = wcount(in[0]);
        if (op == OP_TYPE_INT || op == OP_TYPE_FLOAT || op == OP_TYPE_BOOL) {
            if (in[1] < m->bound)
                m->def[in[1]] = (uint32_t)i;
            if (op == OP_TYPE_INT && wc == 4 && in[2] == 32 && in[3] == 0 && !uint_type) {
                uint_type = in[1];
                uint_at = i;
            }
        } else if ((op == OP_CONSTANT || op == OP_CONSTANT_TRUE || op == OP_CONSTANT_FALSE || op == 48 ||
                    op == 49 || op == 50 || op == 52) && wc >= 3 && in[2] < m->bound) {
            m->def[in[2]] = (uint32_t)i;
        } else if (op == OP_TYPE_COOPMAT_NV && !first_cm_at) {
            first_cm_at = i;
        } else if (op == OP_MEMORY_MODEL && wc == 3) {
            vulkan_mm = in[2] == MEMORY_MODEL_VULKAN;
        }
    }
    if (!first_cm_at) {
        fail("the module declares no OpTypeCooperativeMatrixNV", 0);
        goto done;
    }
    if (!vulkan_mm) {
        fail("the module must use the Vulkan memory model (GLSL: #pragma use_vulkan_memory_model): "
             "SPV_KHR_cooperative_matrix requires it in Shader modules", 0);
        goto done;
    }
    if (uint_type && uint_at > first_cm_at) {
        fail("a 32-bit unsigned integer type is declared after the first cooperative matrix type", uint_type);
        goto done;
    }

    /* Roles per type: which are used, which are pinned (arrays/structs of that role). */
    for (uint32_t id = 0; id < m->bound; id++) {
        if (!is_node(m, id))
            continue;
        int r = m->role[find(m, id)];
        uint32_t base = m->cm_base[id];
        split *s = find_split(sp, ns, base);
        if (!s) {
            s = &sp[ns++];
            s->type = base;
        }
        if (r == ROLE_NONE)
            continue;
        s->used[r] = true;
        if (m->composite[m->type_of[id]])
            s->pinned[r] = true;
    }
    /* Every declared cooperative matrix type gets a split entry (also unused ones). */
    for (size_t i = 5; i < m->n; i += wcount(m->w[i]))
        if (opcode(m->w[i]) == OP_TYPE_COOPMAT_NV && !find_split(sp, ns, m->w[i + 1]))
            sp[ns++].type = m->w[i + 1];

    uint32_t next_id = m->bound;
    const uint32_t c_use_or_layout[3] = {next_id, next_id + 1, next_id + 2};   /* uint constants 0, 1, 2 */
    next_id += 3;
    uint32_t new_uint = 0;
    if (!uint_type)
        uint_type = new_uint = next_id++;
    for (size_t k = 0; k < ns; k++) {
        split *s = &sp[k];
        int npinned = 0;
        for (int r = 0; r < N_ROLES; r++)
            npinned += s->pinned[r];
        if (npinned > 1) {
            fail("A/B/accumulator values of one cooperative matrix type live in arrays or structs in more than one "
                 "role; keep all but one role in plain variables", s->type);
            goto done;
        }
        s->orig = ROLE_NONE;
        for (int r = 0; r < N_ROLES; r++)
            if (s->pinned[r])
                s->orig = r;
        static const int pref[N_ROLES] = {ROLE_ACC, ROLE_A, ROLE_B};
        for (int p = 0; p < N_ROLES && s->orig == ROLE_NONE; p++)
            if (s->used[pref[p]])
                s->orig = pref[p];
        if (s->orig == ROLE_NONE)
            s->orig = ROLE_ACC;   /* never used in a MulAdd: loads/stores work for every Use */
        for (int r = 0; r < N_ROLES; r++)
            if (s->used[r] && r != s->orig)
                s->new_type[r] = next_id++;
    }
    /* Retype decisions per node; new pointer types as needed. */
    uint32_t *retype = calloc(m->bound, sizeof *retype);
    if (!retype) {
        fail("out of memory", 0);
        goto done;
    }
    for (uint32_t id = 0; id < m->bound; id++) {
        if (!is_node(m, id))
            continue;
        int r = m->role[find(m, id)];
        split *s = find_split(sp, ns, m->cm_base[id]);
        if (r == ROLE_NONE || r == s->orig)
            continue;
        uint32_t t = m->type_of[id];
        uint32_t td = m->def[t];
        if (opcode(m->w[td]) == OP_TYPE_COOPMAT_NV) {
            retype[id] = s->new_type[r];
        } else if (opcode(m->w[td]) == OP_TYPE_POINTER && m->w[td + 3] == s->type) {
            uint32_t sc = m->w[td + 2];
            size_t p = 0;
            while (p < nptr && !(np[p].storage == sc && np[p].pointee == s->new_type[r]))
                p++;
            if (p == nptr) {
                np[nptr].storage = sc;
                np[nptr].pointee = s->new_type[r];
                np[nptr].id = next_id++;
                nptr++;
            }
            retype[id] = np[p].id;
        } else {
            fprintf(stderr, "spirv_coopmat_khr: id %u (role %s) would need an array or struct type split\n", id,
                    ROLE_NAME[r]);
            free(retype);
            goto done;
        }
    }

    /* Emit. */
    const uint32_t header[5] = {m->w[0], m->w[1], m->w[2], next_id, m->w[4]};
    bool ok = emit(o, header, 5) == 0;
    for (size_t i = 5; i < m->n && ok; i += wcount(m->w[i])) {
        const uint32_t *in = &m->w[i];
        uint16_t op = opcode(in[0]), wc = wcount(in[0]);
        uint32_t buf[64];
        if (i == first_cm_at) {
            if (new_uint) {
                const uint32_t t[4] = {(4u << 16) | OP_TYPE_INT, new_uint, 32, 0};
                ok = ok && emit(o, t, 4) == 0;
            }
            for (uint32_t v = 0; v < 3; v++) {
                const uint32_t c[4] = {(4u << 16) | OP_CONSTANT, uint_type, c_use_or_layout[v], v};
                ok = ok && emit(o, c, 4) == 0;
            }
        }
        switch (op) {
        case OP_CAPABILITY:
            if (wc == 2 && in[1] == CAP_COOPMAT_NV) {
                const uint32_t c[2] = {in[0], CAP_COOPMAT_KHR};
                ok = emit(o, c, 2) == 0;
                continue;
            }
            break;
        case OP_EXTENSION:
            if (wc >= 2 && (size_t)(wc - 1) * 4 >= sizeof NV_EXT && !memcmp(&in[1], NV_EXT, sizeof NV_EXT)) {
                uint32_t e[1 + (sizeof KHR_EXT + 3) / 4];
                memset(e, 0, sizeof e);
                e[0] = ((uint32_t)(sizeof e / 4) << 16) | OP_EXTENSION;
                memcpy(&e[1], KHR_EXT, sizeof KHR_EXT);   /* nul-terminated, zero-padded (core 2.2.1) */
                ok = emit(o, e, sizeof e / 4) == 0;
                continue;
            }
            break;
        case OP_TYPE_COOPMAT_NV: {
            split *s = find_split(sp, ns, in[1]);
            if (!const_int32(m, in[3]) || !const_int32(m, in[4]) || !const_int32(m, in[5])) {
                fail("KHR needs Scope, Rows and Columns to be 32-bit integer constants", in[1]);
                ok = false;
                continue;
            }
            uint32_t t[7] = {(7u << 16) | OP_TYPE_COOPMAT_KHR, in[1], in[2], in[3], in[4], in[5],
                             c_use_or_layout[s->orig]};
            ok = emit(o, t, 7) == 0;
            for (int r = 0; r < N_ROLES && ok; r++) {
                if (!s->new_type[r])
                    continue;
                t[1] = s->new_type[r];
                t[6] = c_use_or_layout[r];
                ok = emit(o, t, 7) == 0;
                for (size_t p = 0; p < nptr && ok; p++)
                    if (np[p].pointee == s->new_type[r]) {
                        const uint32_t pt[4] = {(4u << 16) | OP_TYPE_POINTER, np[p].id, np[p].storage, np[p].pointee};
                        ok = emit(o, pt, 4) == 0;
                    }
            }
            continue;
        }
        case OP_COOPMAT_LOAD_NV:
        case OP_COOPMAT_STORE_NV: {
            /* NV: [rt, r,] ptr, stride, colmajor, mem...  ->  KHR: [rt, r,] ptr, layout, stride, mem... */
            const bool load = op == OP_COOPMAT_LOAD_NV;
            const uint16_t at = load ? 4 : 3;      /* index of Stride */
            if (wc < at + 2 || wc > 60) {
                fail("malformed cooperative matrix load/store", 0);
                ok = false;
                continue;
            }
            uint32_t cm = in[at + 1];
            uint32_t d = cm < m->bound ? m->def[cm] : 0;
            uint16_t dop = d ? opcode(m->w[d]) : 0;
            if (dop != OP_CONSTANT_TRUE && dop != OP_CONSTANT_FALSE) {
                fail("ColumnMajor must be OpConstantTrue/OpConstantFalse", cm);
                ok = false;
                continue;
            }
            memcpy(buf, in, wc * 4u);
            buf[0] = ((uint32_t)wc << 16) | (load ? OP_COOPMAT_LOAD_KHR : OP_COOPMAT_STORE_KHR);
            buf[at] = c_use_or_layout[dop == OP_CONSTANT_TRUE ? 1 : 0];   /* ColumnMajorKHR 1, RowMajorKHR 0 */
            buf[at + 1] = in[at];
            if (load && in[2] < m->bound && retype[in[2]])
                buf[1] = retype[in[2]];
            ok = emit(o, buf, wc) == 0;
            continue;
        }
        case OP_COOPMAT_MULADD_NV: {
            uint32_t flags = 0;
            if (signed_int(m, m->cm_base[in[3]]))
                flags |= 0x1;   /* MatrixASignedComponentsKHR */
            if (signed_int(m, m->cm_base[in[4]]))
                flags |= 0x2;   /* MatrixBSignedComponentsKHR */
            if (signed_int(m, m->cm_base[in[5]]))
                flags |= 0x4;   /* MatrixCSignedComponentsKHR */
            if (signed_int(m, m->cm_base[in[1]]))
                flags |= 0x8;   /* MatrixResultSignedComponentsKHR */
            uint32_t ma[7] = {(6u << 16) | OP_COOPMAT_MULADD_KHR, retype[in[2]] ? retype[in[2]] : in[1], in[2],
                              in[3], in[4], in[5], flags};
            if (flags)
                ma[0] = (7u << 16) | OP_COOPMAT_MULADD_KHR;
            ok = emit(o, ma, flags ? 7 : 6) == 0;
            continue;
        }
        case OP_COOPMAT_LENGTH_NV:
            memcpy(buf, in, 16);
            buf[0] = (4u << 16) | OP_COOPMAT_LENGTH_KHR;   /* the type keeps its original (first) Use */
            ok = wc == 4 && emit(o, buf, 4) == 0;
            continue;
        default:
            break;
        }
        if (wc >= 3 && !is_annotation(op) && is_node(m, in[2]) && m->def[in[2]] == i && retype[in[2]]) {
            if (wc > 64) {
                fail("instruction too long to retype", in[2]);
                ok = false;
                continue;
            }
            memcpy(buf, in, wc * 4u);
            buf[1] = retype[in[2]];
            ok = emit(o, buf, wc) == 0;
            continue;
        }
        ok = emit(o, in, wc) == 0;
    }
    free(retype);
    if (!ok)
        goto done;
    /* Self-check: nothing of the NV extension is left. */
    for (size_t i = 5; i < o->n; i += wcount(o->w[i])) {
        uint16_t op = opcode(o->w[i]);
        if (wcount(o->w[i]) == 0 || (op >= OP_TYPE_COOPMAT_NV && op <= OP_COOPMAT_LENGTH_NV) ||
            (op == OP_CAPABILITY && o->w[i + 1] == CAP_COOPMAT_NV)) {
            fail("internal error: NV instruction left in the output", 0);
            goto done;
        }
    }
    rc = 0;
done:
    free(sp);
    free(np);
    return rc;
}

static uint32_t *read_words(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    uint32_t *w = NULL;
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) > 0 && size % 4 == 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (w = malloc((size_t)size)) && fread(w, 1, (size_t)size, f) != (size_t)size) {
        free(w);
        w = NULL;
    }
    fclose(f);
    *n = size > 0 ? (size_t)size / 4 : 0;
    return w;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: spirv_coopmat_khr IN.spv OUT.spv\n");
        return 2;
    }
    module m;
    memset(&m, 0, sizeof m);
    out_buf o = {0};
    int rc = 1;
    m.w = read_words(argv[1], &m.n);
    if (!m.w) {
        fprintf(stderr, "spirv_coopmat_khr: cannot read %s (or not a whole number of words)\n", argv[1]);
        return 1;
    }
    /* Core 2.3 Physical Layout: magic, version, generator, bound, schema; then instructions. */
    if (m.n < 5 || m.w[0] != 0x07230203u || m.w[1] < 0x00010300u || m.w[4] != 0 || m.w[3] == 0 ||
        m.w[3] > (1u << 22)) {
        fail("not a little-endian SPIR-V 1.3+ module", 0);
        goto done;
    }
    for (size_t i = 5; i < m.n; i += wcount(m.w[i]))
        if (wcount(m.w[i]) == 0 || i + wcount(m.w[i]) > m.n) {
            fail("truncated instruction stream", 0);
            goto done;
        }
    m.bound = m.w[3];
    m.def = calloc(m.bound, sizeof *m.def);
    m.type_of = calloc(m.bound, sizeof *m.type_of);
    m.cm_base = calloc(m.bound, sizeof *m.cm_base);
    m.composite = calloc(m.bound, 1);
    m.is_type = calloc(m.bound, 1);
    m.parent = malloc(m.bound * sizeof *m.parent);
    m.role = malloc(m.bound);
    if (!m.def || !m.type_of || !m.cm_base || !m.composite || !m.is_type || !m.parent || !m.role) {
        fail("out of memory", 0);
        goto done;
    }
    for (uint32_t i = 0; i < m.bound; i++) {
        m.parent[i] = -1;
        m.role[i] = ROLE_NONE;
    }
    if (analyse(&m) || rewrite(&m, &o))
        goto done;
    FILE *f = fopen(argv[2], "wb");
    if (!f) {
        fprintf(stderr, "spirv_coopmat_khr: cannot write %s\n", argv[2]);
        goto done;
    }
    bool written = fwrite(o.w, 4, o.n, f) == o.n;
    written = fclose(f) == 0 && written;
    if (!written) {
        fprintf(stderr, "spirv_coopmat_khr: cannot write %s\n", argv[2]);
        remove(argv[2]);
        goto done;
    }
    rc = 0;
done:
    free(m.w);
    free(m.def);
    free(m.type_of);
    free(m.cm_base);
    free(m.composite);
    free(m.is_type);
    free(m.parent);
    free(m.role);
    free(o.w);
    return rc;
}
