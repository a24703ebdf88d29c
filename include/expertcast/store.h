/*
 * expertcast/store.h - the host-side expert store: every expert's weights
 * in one contiguous host buffer, the source of every copy into the device
 * expert cache.
 *
 * A store holds n_layers x n_experts experts of expert_bytes each (the
 * model profile's size of one expert, e.g. 88 MB for a 4-bit Mixtral
 * expert). Buffers come from the backend (pinned on cuda, so copies run
 * asynchronously at full link speed) or from the caller. Each expert has a
 * 64-bit checksum (ec_checksum64) computed when the store is filled, so a
 * device copy can be verified against it.
 *
 * A store holds raw bytes until it is given a format (ec_store_set_format:
 * fp16 or q4 experts of d_model x d_ff, expertcast/hostffn.h). With one,
 * the synthetic fill writes valid weights of that format and loading a
 * file validates every expert (truncated groups, NaN/Inf scales), so the
 * bytes every copy moves are known good.
 */
#ifndef EXPERTCAST_STORE_H
#define EXPERTCAST_STORE_H

#include "expertcast/backend.h"
#include "expertcast/hostffn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ec_store ec_store;

/*
 * Allocates one backend host buffer per expert (contents undefined until a
 * fill). The backend is borrowed and must outlive the store. On failure
 * *out is NULL and err says which allocation failed.
 */
ec_status ec_store_create(ec_backend *b, int32_t n_layers, int32_t n_experts,
                          size_t expert_bytes, ec_store **out, ec_error *err);

enum { EC_STORE_REGISTER = 1 }; /* flags for ec_store_wrap */

/*
 * Wraps caller memory: buffers[layer * n_experts + expert] holds
 * expert_bytes each and stays the caller's (valid until the store is
 * destroyed). With EC_STORE_REGISTER the store pins every buffer with
 * ec_backend_host_register and unregisters it on destroy; without it the
 * caller has pinned (or allocated pinned) memory itself. Checksums are
 * computed from the current contents.
 */
ec_status ec_store_wrap(ec_backend *b, int32_t n_layers, int32_t n_experts, size_t expert_bytes,
                        void *const *buffers, unsigned flags, ec_store **out, ec_error *err);

void ec_store_destroy(ec_store *s);

/*
 * Declares the experts' format: weights of ec_expert_bytes(dt, d_model,
 * d_ff) bytes, which must equal the store's expert_bytes (EC_ERR_RANGE
 * otherwise, with both sizes in the message). Does not touch the contents
 * (ec_store_validate checks them).
 */
ec_status ec_store_set_format(ec_store *s, ec_dtype dt, int32_t d_model, int32_t d_ff);
/* 1 and the format when one was set, else 0 (outputs untouched; any may be NULL). */
int ec_store_format(const ec_store *s, ec_dtype *dt, int32_t *d_model, int32_t *d_ff);
/*
 * Validates every expert against the format (ec_expert_validate):
 * EC_ERR_PARSE naming the layer, the expert and the field with its blob
 * offset; EC_ERR_STATE when no format was set.
 */
ec_status ec_store_validate(ec_store *s);

/*
 * Fills every expert with deterministic synthetic weights drawn from
 * (seed, layer, expert), valid input for ec_stream_ffn. Without a format
 * or with fp16: fp16 values of magnitude in [1/16, 1/8) with random signs.
 * With q4: random quants and scales in [1/128, 1/64) (weights of
 * magnitude at most 1/8). threads <= 1 fills on the calling thread.
 * Recomputes the checksums.
 */
ec_status ec_store_fill_synthetic(ec_store *s, uint64_t seed, int32_t threads);

/*
 * Fills from a raw weights file: the experts back to back, layer-major
 * (layer 0 expert 0, layer 0 expert 1, ...), expert_bytes each, starting
 * at byte `offset`. EC_ERR_IO when the file is shorter than
 * offset + n_layers * n_experts * expert_bytes. With a format, each expert
 * is validated as it is read: EC_ERR_PARSE naming the file, the layer, the
 * expert, its first byte in the file and the bad field with its offset in
 * the expert. Recomputes the checksums.
 */
ec_status ec_store_load_file(ec_store *s, const char *path, uint64_t offset);

/* Recomputes every checksum after the caller changed buffers directly. */
ec_status ec_store_rehash(ec_store *s, int32_t threads);

/* Host buffer of (layer, expert); NULL when out of range. */
void *ec_store_expert(const ec_store *s, int32_t layer, int32_t expert);
/* Checksum of (layer, expert) as of the last fill or rehash; 0 out of range. */
uint64_t ec_store_checksum(const ec_store *s, int32_t layer, int32_t expert);
size_t ec_store_expert_bytes(const ec_store *s);
int32_t ec_store_n_layers(const ec_store *s);
int32_t ec_store_n_experts(const ec_store *s);
ec_backend *ec_store_backend(const ec_store *s);
/* Message of the last failed call ("" if none). */
const char *ec_store_errmsg(const ec_store *s);

#ifdef __cplusplus
}
#endif
#endif
