/* tokenizer_prompt.c — the text part of a Molmo prompt (architecture fact sheet §7,
 * tests/data/README.md "Prompt construction").
 *
 * Mirrors the Hugging Face MolmoProcessor defaults (message_format="role",
 * always_start_with_space=True) and the training-time DataFormatter: each message is tokenized
 * on its own with a leading space, user messages read "User: {msg} Assistant:", and the EOS id
 * follows every assistant message. BOS (= EOS) and the image tokens are the caller's. */
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "text/tokenizer.h"

molmo_status molmo_tok_prompt_append(const molmo_tokenizer *tok, const char *const *messages,
                                     const size_t *lens, size_t n_messages, molmo_tok_ids *out,
                                     molmo_error *err) {
    if (!tok || !messages || !out || n_messages == 0)
        return molmo_err(err, MOLMO_ERR_INVALID_ARG, "prompt: no messages");
    if (n_messages > 1 && tok->eos_id < 0)
        return molmo_err(err, MOLMO_ERR_UNSUPPORTED, "prompt: a multi-turn prompt needs the EOS "
                         "token, and tokenizer_config.json names none");
    static const char user_pre[] = " User: ", user_post[] = " Assistant:";
    molmo_tok_bytes text = {0};
    molmo_status st = MOLMO_OK;
    for (size_t i = 0; i < n_messages && st == MOLMO_OK; i++) {
        if (!messages[i]) {
            st = molmo_err(err, MOLMO_ERR_INVALID_ARG, "prompt: message %zu is NULL", i);
            break;
        }
        size_t n = lens ? lens[i] : strlen(messages[i]);
        int user = i % 2 == 0;
        text.n = 0;
        if (molmo_tok_bytes_append(&text, user ? user_pre : " ", user ? 7 : 1) != 0 ||
            molmo_tok_bytes_append(&text, messages[i], n) != 0 ||
            (user && molmo_tok_bytes_append(&text, user_post, 11) != 0)) {
            st = molmo_err(err, MOLMO_ERR_NOMEM, "prompt: out of memory");
            break;
        }
        st = molmo_tok_encode_ex(tok, text.p, text.n, 0, out, NULL, NULL, err);
        if (st == MOLMO_OK && !user && molmo_tok_ids_push(out, tok->eos_id) != 0)
            st = molmo_err(err, MOLMO_ERR_NOMEM, "prompt: out of memory");
    }
    molmo_tok_bytes_free(&text);
    return st;
}

molmo_status molmo_tokenizer_encode_prompt(const molmo_tokenizer *tok,
                                           const char *const *messages, const size_t *lens,
                                           size_t n_messages, int32_t *ids, size_t cap,
                                           size_t *n_ids, molmo_error *err) {
    if (n_ids) *n_ids = 0;
    if (!n_ids || (!ids && cap))
        return molmo_err(err, MOLMO_ERR_INVALID_ARG, "prompt: NULL argument");
    molmo_tok_ids v = {0};
    molmo_status st = molmo_tok_prompt_append(tok, messages, lens, n_messages, &v, err);
    if (st == MOLMO_OK) {
        *n_ids = v.n;
        if (ids) memcpy(ids, v.v, (v.n < cap ? v.n : cap) * sizeof *ids);
        if (ids && v.n > cap)
            st = molmo_err(err, MOLMO_ERR_INVALID_ARG,
                           "prompt: output buffer holds %zu ids, %zu needed", cap, v.n);
    }
    molmo_tok_ids_free(&v);
    return st;
}
