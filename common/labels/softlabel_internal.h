/* softlabel_internal: the decoders of the two blob kinds, as softlabel_decode
 * (softlabel.c) dispatches to them by the header's kind. Not a public API. */
#ifndef W2S_SOFTLABEL_INTERNAL_H
#define W2S_SOFTLABEL_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "labels/softlabel.h"

/* The top-k kind's decoder (softlabel_topk.c); info from softlabel_peek_info,
 * the caller's arrays checked against it. @return 0, or -1 + message. */
int softlabel_decode_topk(softlabel_codec *c, const softlabel_info *info, const unsigned char *blob,
                          size_t len, int32_t *ids, float *logprobs, float *tail);

/* The sampled kind's decoder (softlabel_sampled.c) in the form softlabel_decode
 * presents it; info as above. */
int softlabel_decode_sampled_as_topk(softlabel_codec *c, const softlabel_info *info,
                                     const unsigned char *blob, size_t len, int32_t *ids,
                                     float *logprobs, float *tail);

#endif
