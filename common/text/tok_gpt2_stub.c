/* TEMPORARY STUB (branch h5), to be deleted when h4's GPT-2 tokenizer is
 * merged: both functions refuse, so `train import` and `train export` stop
 * at the tokenizer files until the real implementation is linked. */
#include "text/tok_gpt2.h"

#include "base/err.h"

tokenizer *tok_gpt2_load(const char *vocab_json_path, const char *merges_txt_path)
{
    (void)merges_txt_path;
    err_set("%s: the GPT-2 tokenizer is not available yet in this build", vocab_json_path);
    return NULL;
}

int tok_gpt2_save(const tokenizer *t, const char *vocab_json_path, const char *merges_txt_path)
{
    (void)t;
    (void)merges_txt_path;
    return err_set("%s: the GPT-2 tokenizer is not available yet in this build", vocab_json_path);
}
