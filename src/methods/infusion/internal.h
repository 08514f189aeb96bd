/* Pieces of the protocol (protocol.c) that the sweep (sweep.c) shares. */
#ifndef AGORA_METHODS_INFUSION_INTERNAL_H
#define AGORA_METHODS_INFUSION_INTERNAL_H

#include "agora/infusion.h"

/* "dir/name" into buf; an error when it does not fit. */
ag_status infusion_path_join(char *buf, size_t size, const char *dir, const char *name);
/* The influence engine's view of b's model (classes filled in). */
void infusion_influence_model(const ag_infusion_base *b, ag_influence_model *m);
/* The craft and retrain runs were trained on the same data (else an error). */
ag_status infusion_check_transfer(const ag_infusion_base *c, const ag_infusion_base *r);
/* RETRAIN/infusion/clean-retrain. */
ag_status infusion_clean_retrain_path(const ag_infusion_base *r, char *buf, size_t size);
/* Whether cfg needs factors and queries (the infusion method or a scored selection). */
bool infusion_needs_influence(const ag_infusion_config *cfg);
/* Factors, queries for `count` pairs and (for a scored selection) their
 * scores under scores_dir (with key_by_queries, scores_dir-HASH, HASH of the
 * query vectors); all NULL when cfg needs none. */
ag_status infusion_prepare_influence(const ag_infusion_plan *p, const ag_infusion_target *pairs,
                                     int64_t count, const ag_infusion_config *cfg,
                                     const char *scores_dir, bool key_by_queries,
                                     ag_influence_queries **q, float **scores);
/* One pair after the shared parts: craft with query `query` of q and its
 * row of scores, retrain into work_dir, measure against the clean retrain. */
ag_status infusion_run_crafted(const ag_infusion_plan *p, const ag_influence_queries *q,
                               int64_t query, const float *scores, ag_infusion_target pair,
                               const ag_infusion_config *cfg, const ag_vision_model *clean,
                               double clean_acc, const char *work_dir, ag_infusion_result *out);

#endif
