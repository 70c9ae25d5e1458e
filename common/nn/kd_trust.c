/* kd_trust: per-position weights from the stored labels; see kd_trust.h. The
 * raw weights go to w first and are rescaled in a second pass, so the batch
 * is read once; the sum is in double, in position order (deterministic). */
#include "nn/kd_trust.h"

#include "base/err.h"

#include <math.h>
#include <string.h>

static const char *const weight_names[] = {"none", "conf", "entropy"};

int kd_weight_parse(const char *text, kd_weight_mode *mode)
{
    for (int i = 0; i < 3; i++)
        if (!strcmp(text, weight_names[i])) {
            *mode = (kd_weight_mode)i;
            return 0;
        }
    return err_set("'%s' is not none, conf or entropy", text);
}

const char *kd_weight_name(kd_weight_mode mode)
{
    return weight_names[mode];
}

double kd_confidence(const float *logprobs, int k)
{
    float top = logprobs[0];
    for (int i = 1; i < k; i++)
        top = logprobs[i] > top ? logprobs[i] : top;
    return exp((double)top);
}

double kd_certainty(const float *logprobs, float tail, int k)
{
    double H = tail > 0.0f ? -(double)tail * log((double)tail) : 0.0;
    for (int i = 0; i < k; i++)
        if (logprobs[i] > -INFINITY)
            H -= exp((double)logprobs[i]) * (double)logprobs[i];
    return 1.0 - H / log((double)k + 1.0);
}

long kd_trust_weights(float *w, const int32_t *targets, const float *logprobs, const float *tail, int k,
                      long n, kd_weight_mode mode, double min_conf)
{
    long labeled = 0, kept = 0;
    double sum = 0.0;
    for (long i = 0; i < n; i++) {
        w[i] = 0.0f;
        if (targets[i] < 0)
            continue;
        labeled++;
        const float *lp = logprobs + i * k;
        if (kd_confidence(lp, k) < min_conf)
            continue;
        double raw = mode == KD_WEIGHT_CONF      ? kd_confidence(lp, k)
                     : mode == KD_WEIGHT_ENTROPY ? kd_certainty(lp, tail[i], k)
                                                 : 1.0;
        raw = raw > 0.0 ? raw : 0.0;
        kept += raw > 0.0;
        w[i] = (float)raw;
        sum += raw;
    }
    const double norm = sum > 0.0 ? (double)labeled / sum : 0.0;
    for (long i = 0; i < n; i++)
        w[i] = (float)((double)w[i] * norm);
    return kept;
}
