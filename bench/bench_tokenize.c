/* bench_tokenize: tokenizer encode/decode speed in MB/s on ~1 MB of synthetic text, for every vocabulary
 * (*.gguf) in a folder.
 *
 * usage: bench_tokenize [VOCAB_DIR_OR_FILE ...] [--size BYTES] [--reps N]
 * Default folder: $VKLLM_SHARED/vocab, else ../shared/vocab. The text is a fixed (seeded) mix of English-like
 * words, capitalised words, numbers, punctuation, line breaks and some non-ASCII (accented Latin, Cyrillic,
 * CJK, emoji), so results are comparable between runs. Encode is timed without BOS and without special
 * parsing, best of N repetitions; decode of the result is timed the same way and checked to round-trip. */
#include <dirent.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "host/format/gguf.h"
#include "host/text/tokenizer.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t rng_state = 0x243F6A8885A308D3ull;
static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)((rng_state >> 11) % n);
}

static const char *const WORDS[] = {
    "the", "of", "and", "to", "in", "a", "is", "that", "for", "it", "as", "was", "with", "be", "by", "on", "not",
    "he", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an", "had", "they", "you", "were",
    "their", "one", "all", "we", "can", "her", "has", "there", "been", "if", "more", "when", "will", "would",
    "who", "so", "no", "time", "people", "year", "government", "information", "tokenizer", "running",
    "understanding", "quickly", "Vulkan", "inference", "model", "language", "between", "without", "through",
    "different", "important", "development", "international", "computer", "network", "however", "because",
    "don't", "it's", "we're", "they've", "I'm", "you'll", "he'd", "résumé", "naïve", "café", "Zürich", "straße",
    "Привет", "мир", "данные", "東京", "日本語", "中文", "数据", "😀", "🚀", "✓", "→", "€", "ñandú", "façade",
};

static const char *const PUNCT[] = {",", ".", ";", ":", "!", "?", " -", " (", ")", "\"", "'", "...", " —"};

static char *make_text(size_t target, size_t *len)
{
    char *s = malloc(target + 64);
    if (!s)
        return NULL;
    size_t n = 0;
    bool sentence_start = true;
    while (n < target) {
        char w[64];
        size_t wl;
        uint32_t k = rnd(100);
        if (k < 8) { /* a number */
            wl = (size_t)snprintf(w, sizeof w, "%u", rnd(k < 2 ? 1000000 : k < 5 ? 2030 : 100));
        } else {
            const char *word = WORDS[rnd(sizeof WORDS / sizeof WORDS[0])];
            wl = strlen(word);
            memcpy(w, word, wl);
            if (sentence_start && w[0] >= 'a' && w[0] <= 'z')
                w[0] = (char)(w[0] - 32);
        }
        if (!sentence_start)
            s[n++] = ' ';
        memcpy(s + n, w, wl);
        n += wl;
        sentence_start = false;
        uint32_t p = rnd(100);
        if (p < 12) {
            const char *q = PUNCT[rnd(sizeof PUNCT / sizeof PUNCT[0])];
            memcpy(s + n, q, strlen(q));
            n += strlen(q);
        } else if (p < 18) {
            s[n++] = '.';
            sentence_start = rnd(4) == 0;
            if (sentence_start) {
                s[n++] = '\n';
                if (rnd(3) == 0)
                    s[n++] = '\n';
            }
        }
    }
    *len = n;
    return s;
}

static bool has_suffix(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

static void bench_file(const char *path, const char *text, size_t len, int reps)
{
    gguf_file *f = NULL;
    tokenizer *tok = NULL;
    double t0 = now_s();
    if (vkl_gguf_open(path, &f) != VKLLM_OK || vkl_tokenizer_load(f, &tok) != VKLLM_OK) {
        printf("%-40s  cannot load: %s\n", path, vkr_last_error());
        vkl_gguf_close(f);
        return;
    }
    double load_ms = (now_s() - t0) * 1e3;
    vkl_gguf_close(f);

    double best_enc = 1e30, best_dec = 1e30;
    size_t n_ids = 0;
    bool round_trip = true;
    for (int r = 0; r < reps; r++) {
        int32_t *ids = NULL;
        t0 = now_s();
        vkllm_status st = vkl_tokenizer_encode(tok, text, len, false, false, &ids, &n_ids);
        double t1 = now_s();
        if (st) {
            printf("%-40s  encode failed: %s\n", path, vkr_last_error());
            vkl_tokenizer_free(tok);
            return;
        }
        best_enc = t1 - t0 < best_enc ? t1 - t0 : best_enc;
        char *back = NULL;
        size_t back_len = 0;
        t0 = now_s();
        st = vkl_tokenizer_decode(tok, ids, n_ids, false, &back, &back_len);
        t1 = now_s();
        if (st == VKLLM_OK) {
            best_dec = t1 - t0 < best_dec ? t1 - t0 : best_dec;
            round_trip &= back_len == len && !memcmp(back, text, len);
        } else {
            round_trip = false;
        }
        free(back);
        free(ids);
    }
    const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    const char *kind = vkl_tokenizer_get_kind(tok) == TOKENIZER_BPE ? "BPE" : "SPM";
    printf("%-28s %-3s %7d  %8.2f  %8.2f  %9zu  %6.2f  %7.0f  %s\n", name, kind, vkl_tokenizer_n_vocab(tok),
           (double)len / best_enc / 1e6, (double)len / best_dec / 1e6, n_ids, (double)len / (double)n_ids, load_ms,
           round_trip ? "yes" : "NO");
    vkl_tokenizer_free(tok);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv)
{
    size_t size = 1u << 20;
    int reps = 5;
    const char *paths[64];
    int n_paths = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--size") && i + 1 < argc) {
            size = (size_t)strtoull(argv[++i], NULL, 10);
        } else if (!strcmp(argv[i], "--reps") && i + 1 < argc) {
            reps = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: bench_tokenize [VOCAB_DIR_OR_FILE ...] [--size BYTES] [--reps N]\n");
            return 0;
        } else if (n_paths < 64) {
            paths[n_paths++] = argv[i];
        }
    }
    if (reps < 1)
        reps = 1;
    if (size < 1 || size > ((size_t)1 << 28)) {
        fprintf(stderr, "bench_tokenize: --size must be 1..268435456\n");
        return 1;
    }
    char def[1024];
    if (n_paths == 0) {
        const char *sh = getenv("VKLLM_SHARED");
        snprintf(def, sizeof def, "%s/vocab", sh && *sh ? sh : "../shared");
        paths[n_paths++] = def;
    }
    size_t len = 0;
    char *text = make_text(size, &len);
    if (!text) {
        fprintf(stderr, "bench_tokenize: out of memory\n");
        return 1;
    }
    printf("text: %zu bytes of synthetic mixed text; best of %d runs\n", len, reps);
    printf("%-28s %-3s %7s  %8s  %8s  %9s  %6s  %7s  %s\n", "vocab", "alg", "n_vocab", "enc MB/s", "dec MB/s", "tokens",
           "B/tok", "load ms", "round trip");
    int rc = 0;
    for (int p = 0; p < n_paths; p++) {
        DIR *d = opendir(paths[p]);
        if (!d) {
            bench_file(paths[p], text, len, reps);
            continue;
        }
        char *names[256];
        int n_names = 0;
        struct dirent *e;
        while ((e = readdir(d)) && n_names < 256)
            if (has_suffix(e->d_name, ".gguf"))
                names[n_names++] = strdup(e->d_name);
        closedir(d);
        qsort(names, (size_t)n_names, sizeof names[0], cmp_str);
        if (n_names == 0) {
            fprintf(stderr, "bench_tokenize: no .gguf files in %s\n", paths[p]);
            rc = 1;
        }
        for (int i = 0; i < n_names; i++) {
            char full[2048];
            if (names[i]) {
                snprintf(full, sizeof full, "%s/%s", paths[p], names[i]);
                bench_file(full, text, len, reps);
            }
            free(names[i]);
        }
    }
    free(text);
    return rc;
}
