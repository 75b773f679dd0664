/* `vkllm tokenize`: the token ids of a text, from the tokenizer of a GGUF file. Reads only the metadata
 * (vkl_gguf_open + vkl_tokenizer_load): works on vocab-only files and needs no GPU. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/cli/cli.h"
#include "host/cli/common.h"
#include "host/format/gguf.h"
#include "host/text/tokenizer.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: vkllm tokenize -m MODEL (-p TEXT | -f FILE) [--no-bos] [--special] [--pieces]\n\n"
            "Prints the token ids of the text on one line, separated by spaces. Only the file's tokenizer\n"
            "metadata is read, so vocab-only GGUF files work and no GPU is used.\n\n"
            "  -m, --model MODEL   GGUF file with tokenizer.ggml.* metadata\n"
            "  -p, --prompt TEXT   the text\n"
            "  -f, --file FILE     read the text from a file (bytes as they are)\n"
            "  --no-bos            do not add BOS/EOS (by default they are added as the metadata says)\n"
            "  --special           parse special tokens written in the text (\"<|eot_id|>\", \"<s>\")\n"
            "  --pieces            print id:piece pairs; pieces are the bytes each token stands for, with\n"
            "                      \\n \\r \\t \\\\ and \\xNN escapes (control tokens show their text)\n"
            "  -h, --help\n");
}

/* Writes a piece with newlines, tabs, backslashes, other control bytes and bytes that are not part of
 * well-formed UTF-8 escaped, so that each pair stays on the line. */
static void print_piece(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        if (c == '\n' || c == '\r' || c == '\t' || c == '\\') {
            printf("\\%c", c == '\n' ? 'n' : c == '\r' ? 'r' : c == '\t' ? 't' : '\\');
            i++;
            continue;
        }
        if (c < 0x20 || c == 0x7F) {
            printf("\\x%02X", c);
            i++;
            continue;
        }
        if (c < 0x80) {
            putchar((int)c);
            i++;
            continue;
        }
        /* a well-formed UTF-8 character passes through; anything else is escaped byte by byte */
        size_t len = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xC2 && c <= 0xDF ? 2 : 0;
        bool ok = len > 0 && i + len <= n;
        for (size_t k = 1; ok && k < len; k++)
            ok = (s[i + k] & 0xC0) == 0x80;
        if (ok && len >= 3) {
            unsigned c1 = s[i + 1];
            if ((c == 0xE0 && c1 < 0xA0) || (c == 0xED && c1 > 0x9F) || (c == 0xF0 && c1 < 0x90) ||
                (c == 0xF4 && c1 > 0x8F))
                ok = false;
        }
        if (!ok) {
            printf("\\x%02X", c);
            i++;
            continue;
        }
        fwrite(s + i, 1, len, stdout);
        i += len;
    }
}

int cmd_tokenize(int argc, char **argv)
{
    const char *cmd = "tokenize";
    const char *model = NULL, *prompt = NULL, *file = NULL;
    bool add_special = true, parse_special = false, pieces = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool ok = true;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            ok = (model = cli_value(cmd, argc, argv, &i)) != NULL;
        } else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) {
            ok = (prompt = cli_value(cmd, argc, argv, &i)) != NULL;
        } else if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
            ok = (file = cli_value(cmd, argc, argv, &i)) != NULL;
        } else if (!strcmp(a, "--no-bos")) {
            add_special = false;
        } else if (!strcmp(a, "--special")) {
            parse_special = true;
        } else if (!strcmp(a, "--pieces")) {
            pieces = true;
        } else {
            fprintf(stderr, "vkllm tokenize: unknown option '%s' (try --help)\n", a);
            return 1;
        }
        if (!ok)
            return 1;
    }
    if (!model) {
        fprintf(stderr, "vkllm tokenize: no model given (-m MODEL)\n");
        return 1;
    }
    if (!prompt == !file) {
        fprintf(stderr, "vkllm tokenize: give the text with exactly one of -p TEXT and -f FILE\n");
        return 1;
    }

    char *text = NULL;
    size_t len = 0;
    if (file) {
        if (!cli_read_file(cmd, file, CLI_MAX_TEXT_FILE, "more than vkllm reads as a text", &text, &len))
            return 1;
    }
    gguf_file *f = NULL;
    tokenizer *tok = NULL;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    char *piece = NULL;
    int rc = 1;
    if (vkl_gguf_open(model, &f) != VKLLM_OK) {
        fprintf(stderr, "vkllm tokenize: %s: %s\n", model, vkr_last_error());
        goto out;
    }
    if (vkl_tokenizer_load(f, &tok) != VKLLM_OK) {
        fprintf(stderr, "vkllm tokenize: %s: %s\n", model, vkr_last_error());
        goto out;
    }
    vkl_gguf_close(f);
    f = NULL;
    if (vkl_tokenizer_encode(tok, file ? text : prompt, file ? len : strlen(prompt), add_special, parse_special, &ids,
                         &n_ids) != VKLLM_OK) {
        fprintf(stderr, "vkllm tokenize: %s\n", vkr_last_error());
        goto out;
    }
    size_t cap = vkl_tokenizer_max_piece_len(tok);
    piece = malloc(cap);
    if (!piece) {
        fprintf(stderr, "vkllm tokenize: out of memory\n");
        goto out;
    }
    for (size_t i = 0; i < n_ids; i++) {
        if (i)
            putchar(' ');
        printf("%d", ids[i]);
        if (!pieces)
            continue;
        putchar(':');
        int type = vkl_tokenizer_token_type(tok, ids[i]);
        if (type == TOKEN_TYPE_CONTROL || type == TOKEN_TYPE_UNKNOWN) {
            size_t tl = 0;
            const char *tt = vkl_tokenizer_token_text(tok, ids[i], &tl);
            print_piece((const unsigned char *)tt, tl);
            continue;
        }
        int32_t n = vkl_tokenizer_token_to_piece(tok, ids[i], piece, cap);
        if (n < 0) {
            putchar('\n');
            fprintf(stderr, "vkllm tokenize: %s\n", n == TOKENIZER_BAD_ID ? vkr_last_error() : "piece too long");
            goto out;
        }
        print_piece((const unsigned char *)piece, (size_t)n);
    }
    putchar('\n');
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "vkllm tokenize: cannot write the output\n");
        goto out;
    }
    rc = 0;
out:
    free(piece);
    free(ids);
    vkl_tokenizer_free(tok);
    vkl_gguf_close(f);
    free(text);
    return rc;
}
