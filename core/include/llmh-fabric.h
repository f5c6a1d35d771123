/* llmh-fabric.h — memory-fabric extras of the core library: the
 * hidden-state hook (used by `llmhost lora-gate` to learn gate vectors).
 * Adapters themselves are loaded, rescaled and selected through llmh.h.
 * docs/memory-fabric.md. */
#ifndef LLMH_FABRIC_H
#define LLMH_FABRIC_H

#include "llmh.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Called during llmh_session_eval for every layer l = 0 .. n_layer-1 with
 * h = the residual stream entering layer l (before its attention norm; for
 * l = 0 the token embeddings), n_tok columns of dim floats (column t is
 * token t of the evaluated chunk, h[t * dim + i]), and once more with
 * layer = n_layer for the final residual (before the output norm). h is
 * borrowed for the duration of the call. Long inputs are evaluated in
 * chunks of the session's n_batch tokens, one series of calls per chunk.
 * The hook runs on the evaluating thread while the model's compute lock is
 * held: it must not call back into this model. */
typedef void (*llmh_hidden_hook)(void *user, int32_t layer, const float *h, int64_t dim, int64_t n_tok);

/* Install (fn != NULL) or remove (fn == NULL) the session's hook. With a
 * hook the graph runs layer by layer (one backend submit per layer). */
LLMH_API llmh_status llmh_session_set_hidden_hook(llmh_session *s, llmh_hidden_hook fn, void *user);

#ifdef __cplusplus
}
#endif
#endif /* LLMH_FABRIC_H */
