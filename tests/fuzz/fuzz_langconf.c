/* libFuzzer target for lang.conf (protocol/langconf.c): the key/value
 * parser, DROP's word splitting and the rendering the image builder does,
 * then the agent's typed view of the same bytes. The image's lang.conf is
 * the builder's output, so rendering then parsing again must agree. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/langconf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct langconf_kv kv, again;
    struct langconf lc;
    char err[256], **words;
    size_t nwords;

    int typed = langconf_parse((const char *)data, size, &lc, err, sizeof(err));
    langconf_free(&lc);
    if (langconf_kv_parse(&kv, (const char *)data, size, err, sizeof(err)))
        return 0;
    if (langconf_kv_words(&kv, "DROP", &words, &nwords, err, sizeof(err)) == 0)
        langconf_free_words(words);
    int from_kv = langconf_from_kv(&lc, &kv, err, sizeof(err));
    langconf_free(&lc);
    if (from_kv != typed)
        abort();
    char *text = langconf_kv_render_runtime(&kv);
    /* A last line without its newline gains one: past the size limit the
     * rendered text is (rightly) refused. */
    if (text && strlen(text) <= LANGCONF_MAX_SIZE) {
        /* Build keys carry no meaning for the typed view: dropping them
         * must not change whether it parses. */
        if (langconf_kv_parse(&again, text, strlen(text), err, sizeof(err)))
            abort();
        langconf_kv_free(&again);
        if (langconf_parse(text, strlen(text), &lc, err, sizeof(err)) != typed)
            abort();
        langconf_free(&lc);
    }
    free(text);
    langconf_kv_free(&kv);
    return 0;
}
