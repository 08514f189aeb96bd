/* Influence engine: files, refusals and resumption. Factors and queries
 * survive a save/load round trip; files of another model or checkpoint,
 * unknown layers and bad queries are refused with messages that say what
 * differs; chunked scoring resumes without recomputing finished chunks; the
 * vision adapter scores a CNN exactly as per-example gradients say. */
#include "agora/safetensors.h"
#include "agora/vision.h"
#include "test_influence_fixture.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

static float *random_inputs(int64_t count, int64_t dim, uint64_t seed) {
  float *X = malloc((size_t)(count * dim) * sizeof(float));
  ag_rng rng;
  ag_rng_seed(&rng, seed);
  for (int64_t i = 0; i < count * dim; i++) X[i] = ag_rng_normal(&rng);
  return X;
}

static int32_t *random_labels(int64_t count, int32_t K, uint64_t seed) {
  int32_t *y = malloc((size_t)count * sizeof *y);
  ag_rng rng;
  ag_rng_seed(&rng, seed);
  for (int64_t i = 0; i < count; i++) y[i] = (int32_t)ag_rng_below(&rng, (uint64_t)K);
  return y;
}

static bool message_has(const char *needle) {
  bool ok = strstr(ag_error_message(), needle) != NULL;
  if (!ok) fprintf(stderr, "  message without '%s': %s\n", needle, ag_error_message());
  return ok;
}

static const int64_t mlp_dims[3] = {5, 7, 3};

typedef struct fixture {
  tnet *n;
  ag_influence_model m;
  float *X;
  int32_t *y;
  ag_influence_data train, queries;
} fixture;

static void fixture_init(fixture *fx, int64_t N, const int64_t *dims) {
  fx->n = tnet_create(2, dims, true, true, false, 0, 0, 0, 0, 7);
  fx->m = tnet_model(fx->n, AG_INFLUENCE_CROSS_ENTROPY);
  fx->X = random_inputs(N + 2, dims[0], 8);
  fx->y = random_labels(N + 2, (int32_t)dims[2], 9);
  fx->train = (ag_influence_data){fx->X, N, fx->y, NULL};
  fx->queries = (ag_influence_data){fx->X + N * dims[0], 2, fx->y + N, NULL};
}

static void fixture_free(fixture *fx) {
  tnet_destroy(fx->n);
  free(fx->X);
  free(fx->y);
}

static char *tmp_path(const char *name) {
  static char buf[4][600];
  static int k = 0;
  char *p = buf[k++ % 4];
  snprintf(p, 600, "%s/%s", test_tmpdir(), name);
  return p;
}

TEST(unknown_layer_names_are_refused_with_the_model_layers) {
  fixture fx;
  fixture_init(&fx, 10, mlp_dims);
  ag_influence_config cfg = ag_influence_defaults();
  const char *layers[] = {"fc2", "fc9"};
  cfg.layers = layers;
  cfg.layer_count = 2;
  ag_influence_factors *f = NULL;
  CHECK(ag_influence_fit(&fx.m, &fx.train, &cfg, &f) == AG_ERR_NOT_FOUND);
  CHECK(f == NULL);
  CHECK(message_has("'fc9'") && message_has("fc1, fc2"));
  /* a known subset is tracked alone */
  cfg.layer_count = 1;
  CHECK_OK(ag_influence_fit(&fx.m, &fx.train, &cfg, &f));
  CHECK(ag_influence_layer_count(f) == 1);
  ag_influence_layer_info info;
  CHECK_OK(ag_influence_layer(f, 0, &info));
  CHECK(!strcmp(info.name, "fc2") && info.in_features == 7 && info.out_features == 3 &&
        info.has_bias && info.weight == fx.n->w[1]);
  CHECK(ag_influence_layer(f, 1, &info) == AG_ERR_INVALID);
  ag_influence_factors_destroy(f);
  fixture_free(&fx);
}

TEST(factors_round_trip_and_refuse_other_models) {
  fixture fx;
  fixture_init(&fx, 24, mlp_dims);
  ag_influence_config cfg = ag_influence_defaults();
  cfg.batch_size = 8;
  ag_influence_factors *f = NULL, *g = NULL;
  ag_influence_queries *qa = NULL, *qb = NULL;
  const char *path = tmp_path("factors.safetensors");
  CHECK_OK(ag_influence_fit(&fx.m, &fx.train, &cfg, &f));
  CHECK_OK(ag_influence_factors_save(f, path));
  CHECK_OK(ag_influence_factors_load(path, &fx.m, &g));
  CHECK(g && ag_influence_layer_count(g) == 2);
  for (int l = 0; g && l < 2; l++) {
    ag_influence_layer_info a, b;
    ag_influence_layer(f, l, &a);
    ag_influence_layer(g, l, &b);
    CHECK(!strcmp(a.name, b.name) && a.in_features == b.in_features && a.weight == b.weight);
    CHECK_NEAR(a.damping, b.damping, 1e-12 * a.damping);
  }
  /* the loaded factors precondition like the original (F32 on disk) */
  CHECK_OK(ag_influence_precondition(f, &fx.m, &fx.queries, &qa));
  CHECK_OK(ag_influence_precondition(g, &fx.m, &fx.queries, &qb));
  int64_t T = fx.n->p->total;
  float *va = malloc((size_t)T * sizeof(float)), *vb = malloc((size_t)T * sizeof(float));
  if (qa && qb) {
    CHECK_OK(ag_influence_query_vector(qa, 1, fx.n->p, va));
    CHECK_OK(ag_influence_query_vector(qb, 1, fx.n->p, vb));
    double scale = 0, diff = 0;
    for (int64_t i = 0; i < T; i++) {
      scale = fmax(scale, fabs(va[i]));
      diff = fmax(diff, fabs(va[i] - vb[i]));
    }
    CHECK_MSG(diff <= 1e-4 * scale, "loaded factors: v differs by %g of %g", diff, scale);
  }
  ag_influence_factors_destroy(g);
  g = NULL;
  /* another checkpoint of the same model: one weight changed */
  fx.n->w[0]->data[3] += 0.01f;
  CHECK(ag_influence_factors_load(path, &fx.m, &g) == AG_ERR_INVALID && g == NULL);
  CHECK(message_has("checkpoint") && message_has("fingerprint"));
  ag_influence_queries *qc = NULL;
  CHECK(ag_influence_precondition(f, &fx.m, &fx.queries, &qc) == AG_ERR_INVALID && !qc);
  fx.n->w[0]->data[3] -= 0.01f;
  CHECK_OK(ag_influence_factors_load(path, &fx.m, &g));
  ag_influence_factors_destroy(g);
  g = NULL;
  /* another architecture: fc1 is 5 -> 6 */
  int64_t other_dims[3] = {5, 6, 3};
  tnet *other = tnet_create(2, other_dims, true, true, false, 0, 0, 0, 0, 7);
  ag_influence_model om = tnet_model(other, AG_INFLUENCE_CROSS_ENTROPY);
  CHECK(ag_influence_factors_load(path, &om, &g) == AG_ERR_SHAPE && g == NULL);
  CHECK(message_has("'fc1'") && message_has("5 -> 7") && message_has("5 -> 6"));
  tnet_destroy(other);
  /* a model without the layer: fc2 renamed (same length, in place) */
  tnet *renamed = tnet_create(2, mlp_dims, true, true, false, 0, 0, 0, 0, 7);
  ((char *)renamed->w[1]->name)[1] = 'x';
  ((char *)renamed->b[1]->name)[1] = 'x';
  ag_influence_model rm = tnet_model(renamed, AG_INFLUENCE_CROSS_ENTROPY);
  CHECK(ag_influence_factors_load(path, &rm, &g) == AG_ERR_NOT_FOUND && g == NULL);
  CHECK(message_has("'fc2'") && message_has("its layers: fc1, fx2"));
  tnet_destroy(renamed);
  /* not a factors file */
  const char *junk = tmp_path("model.safetensors");
  CHECK_OK(ag_safetensors_save_params(junk, fx.n->p, AG_DTYPE_F32, NULL));
  CHECK(ag_influence_factors_load(junk, &fx.m, &g) == AG_ERR_FORMAT && g == NULL);
  free(va);
  free(vb);
  ag_influence_queries_destroy(qa);
  ag_influence_queries_destroy(qb);
  ag_influence_factors_destroy(f);
  fixture_free(&fx);
}

TEST(queries_round_trip_and_refuse_other_models) {
  fixture fx;
  fixture_init(&fx, 20, mlp_dims);
  ag_influence_factors *f = NULL;
  ag_influence_queries *q = NULL, *r = NULL;
  ag_influence_config cfg = ag_influence_defaults();
  CHECK_OK(ag_influence_fit(&fx.m, &fx.train, &cfg, &f));
  CHECK_OK(ag_influence_precondition(f, &fx.m, &fx.queries, &q));
  const char *path = tmp_path("queries.safetensors");
  CHECK_OK(ag_influence_queries_save(q, path));
  CHECK_OK(ag_influence_queries_load(path, &fx.m, &r));
  CHECK(ag_influence_query_count(r) == 2);
  float *sa = malloc(2 * 20 * sizeof(float)), *sb = malloc(2 * 20 * sizeof(float));
  CHECK_OK(ag_influence_score(q, &fx.m, &fx.train, 0, 20, 6, sa));
  CHECK_OK(ag_influence_score(r, &fx.m, &fx.train, 0, 20, 20, sb));
  double scale = 0;
  for (int i = 0; i < 40; i++) scale = fmax(scale, fabs(sa[i]));
  for (int i = 0; i < 40; i++) CHECK_NEAR(sa[i], sb[i], 1e-4 * scale);
  /* a factors file is not a queries file */
  const char *fpath = tmp_path("f2.safetensors");
  CHECK_OK(ag_influence_factors_save(f, fpath));
  ag_influence_queries *bad = NULL;
  CHECK(ag_influence_queries_load(fpath, &fx.m, &bad) == AG_ERR_FORMAT && !bad);
  /* queries of another checkpoint: refused when loaded and when scoring */
  fx.n->b[1]->data[0] += 0.5f;
  CHECK(ag_influence_queries_load(path, &fx.m, &bad) == AG_ERR_INVALID && !bad);
  CHECK(message_has("queries") && message_has("checkpoint"));
  CHECK(ag_influence_score(q, &fx.m, &fx.train, 0, 20, 6, sa) == AG_ERR_INVALID);
  fx.n->b[1]->data[0] -= 0.5f;
  /* a model with other outputs */
  int64_t d4[3] = {5, 7, 4};
  tnet *other = tnet_create(2, d4, true, true, false, 0, 0, 0, 0, 7);
  ag_influence_model om = tnet_model(other, AG_INFLUENCE_CROSS_ENTROPY);
  CHECK(ag_influence_score(q, &om, &fx.train, 0, 20, 6, sa) == AG_ERR_INVALID);
  CHECK(message_has("outputs"));
  tnet_destroy(other);
  /* ranges and labels */
  CHECK(ag_influence_score(q, &fx.m, &fx.train, 15, 10, 6, sa) == AG_ERR_INVALID);
  int32_t bad_labels[2] = {1, 3}; /* 3 classes: label 3 does not exist */
  ag_influence_data bq = {fx.queries.data, 2, bad_labels, NULL};
  CHECK(ag_influence_precondition(f, &fx.m, &bq, &bad) == AG_ERR_INVALID && !bad);
  CHECK(message_has("label 3"));
  ag_influence_data no_labels = {fx.queries.data, 2, NULL, NULL};
  CHECK(ag_influence_precondition(f, &fx.m, &no_labels, &bad) == AG_ERR_INVALID && !bad);
  free(sa);
  free(sb);
  ag_influence_queries_destroy(q);
  ag_influence_queries_destroy(r);
  ag_influence_factors_destroy(f);
  fixture_free(&fx);
}

TEST(stages_run_in_order) {
  fixture fx;
  fixture_init(&fx, 12, mlp_dims);
  ag_influence_config cfg = ag_influence_defaults();
  ag_influence_factors *f = NULL;
  ag_influence_queries *q = NULL;
  CHECK_OK(ag_influence_factors_create(&fx.m, &cfg, &f));
  CHECK(ag_influence_accumulate_correction(f, &fx.m, &fx.train, 0, 12) == AG_ERR_INVALID);
  CHECK(ag_influence_precondition(f, &fx.m, &fx.queries, &q) == AG_ERR_INVALID);
  CHECK(ag_influence_factors_save(f, tmp_path("early.safetensors")) == AG_ERR_INVALID);
  CHECK(ag_influence_accumulate_moments(f, &fx.m, &fx.train, 5, 20) == AG_ERR_INVALID);
  CHECK_OK(ag_influence_accumulate_moments(f, &fx.m, &fx.train, 0, 12));
  CHECK_OK(ag_influence_finish_moments(f));
  CHECK(ag_influence_accumulate_moments(f, &fx.m, &fx.train, 0, 12) == AG_ERR_INVALID);
  CHECK(ag_influence_finish_correction(f) == AG_ERR_INVALID); /* no examples yet */
  CHECK_OK(ag_influence_accumulate_correction(f, &fx.m, &fx.train, 0, 12));
  CHECK_OK(ag_influence_finish_correction(f));
  CHECK_OK(ag_influence_precondition(f, &fx.m, &fx.queries, &q));
  ag_influence_queries_destroy(q);
  ag_influence_factors_destroy(f);
  fixture_free(&fx);
}

TEST(params_grad_and_flags_are_left_alone) {
  fixture fx;
  fixture_init(&fx, 12, mlp_dims);
  for (int64_t i = 0; i < fx.n->p->total; i++) fx.n->p->grad[i] = (float)i;
  ag_influence_config cfg = ag_influence_defaults();
  ag_influence_factors *f = NULL;
  CHECK_OK(ag_influence_fit(&fx.m, &fx.train, &cfg, &f));
  bool same = true;
  for (int64_t i = 0; i < fx.n->p->total; i++) same = same && fx.n->p->grad[i] == (float)i;
  CHECK(same);
  for (int i = 0; i < fx.n->p->count; i++) CHECK(fx.n->p->tensors[i]->requires_grad);
  ag_influence_factors_destroy(f);
  fixture_free(&fx);
}

static bool file_exists(const char *dir, const char *name) {
  char p[700];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  struct stat sb;
  return stat(p, &sb) == 0;
}

TEST(score_dir_resumes_without_recomputing_finished_chunks) {
  int64_t N = 23, chunk = 5;
  fixture fx;
  fixture_init(&fx, N, mlp_dims);
  ag_influence_config cfg = ag_influence_defaults();
  ag_influence_factors *f = NULL;
  ag_influence_queries *q = NULL;
  CHECK_OK(ag_influence_fit(&fx.m, &fx.train, &cfg, &f));
  CHECK_OK(ag_influence_precondition(f, &fx.m, &fx.queries, &q));
  char dir[600];
  snprintf(dir, sizeof dir, "%s/scores", test_tmpdir());
  float *first = NULL, *again = NULL, *direct = malloc((size_t)(2 * N) * sizeof(float));
  CHECK_OK(ag_influence_score(q, &fx.m, &fx.train, 0, N, 4, direct));
  /* a run "killed" after chunks 0..2: simulated by removing chunks 3 and 4 */
  fx.n->forward_examples = 0;
  CHECK_OK(ag_influence_score_dir(q, &fx.m, &fx.train, dir, chunk, 4, false, &first));
  CHECK(fx.n->forward_examples == N);
  CHECK(file_exists(dir, "manifest.json") && file_exists(dir, "chunk-000004.f32"));
  char p[700];
  snprintf(p, sizeof p, "%s/chunk-000003.f32", dir);
  CHECK(unlink(p) == 0);
  snprintf(p, sizeof p, "%s/chunk-000004.f32", dir);
  CHECK(unlink(p) == 0);
  /* a leftover temporary file of the killed write is ignored */
  snprintf(p, sizeof p, "%s/chunk-000003.f32.tmp.abcdef", dir);
  FILE *fp = fopen(p, "wb");
  if (fp) fclose(fp);
  fx.n->forward_examples = 0;
  CHECK_OK(ag_influence_score_dir(q, &fx.m, &fx.train, dir, chunk, 4, false, &again));
  CHECK_MSG(fx.n->forward_examples == 5 + 3, "recomputed %lld examples",
            (long long)fx.n->forward_examples);
  /* a finished run recomputes nothing */
  float *third = NULL;
  fx.n->forward_examples = 0;
  CHECK_OK(ag_influence_score_dir(q, &fx.m, &fx.train, dir, chunk, 4, false, &third));
  CHECK(fx.n->forward_examples == 0);
  for (int64_t i = 0; first && again && third && i < 2 * N; i++) {
    CHECK(first[i] == again[i] && first[i] == third[i]);
    CHECK_NEAR(first[i], direct[i], 1e-4 * (fabs(direct[i]) + 1e-3));
  }
  /* the folder belongs to these queries: other chunking or queries refused */
  float *refused = NULL;
  CHECK(ag_influence_score_dir(q, &fx.m, &fx.train, dir, 7, 4, false, &refused) == AG_ERR_INVALID &&
        !refused);
  CHECK(message_has("another run"));
  ag_influence_data one = {fx.queries.data, 1, fx.queries.labels, NULL};
  ag_influence_queries *q1 = NULL;
  CHECK_OK(ag_influence_precondition(f, &fx.m, &one, &q1));
  CHECK(ag_influence_score_dir(q1, &fx.m, &fx.train, dir, chunk, 4, false, &refused) ==
            AG_ERR_INVALID &&
        !refused);
  ag_influence_queries_destroy(q1);
  free(first);
  free(again);
  free(third);
  free(direct);
  ag_influence_queries_destroy(q);
  ag_influence_factors_destroy(f);
  fixture_free(&fx);
}

/* The vision adapter on the CNN (convs with padding, pooling, classifier):
 * scores equal −v · ∇L(z) with ∇L from ag_per_example_grads. */
TEST(vision_cnn_scores_match_per_example_gradients) {
  int64_t N = test_scaled(12, 6);
  ag_image_dataset *d = NULL;
  CHECK_OK(ag_image_dataset_create(N + 1, 1, 8, 8, 10, &d));
  ag_vision_model *vm = NULL;
  CHECK_OK(ag_vision_model_create(AG_VISION_CNN, 1, 8, 8, 10, &vm));
  if (!d || !vm) return;
  ag_rng rng;
  ag_rng_seed(&rng, 3);
  ag_vision_model_init(vm, &rng);
  for (int64_t i = 0; i < (N + 1) * 64; i++) d->images[i] = ag_rng_uniform(&rng);
  for (int64_t i = 0; i <= N; i++) d->labels[i] = (int32_t)ag_rng_below(&rng, 10);
  ag_influence_model m;
  ag_influence_data all;
  ag_influence_vision_model(vm, &m);
  ag_influence_vision_data(d, &all);
  CHECK(m.outputs == 10 && m.rows_per_example == 1 && all.count == N + 1);
  ag_influence_data train = all;
  train.count = N;
  ag_image_dataset *qd = NULL; /* the last image as a one-image data set */
  CHECK_OK(ag_image_dataset_create(1, 1, 8, 8, 10, &qd));
  memcpy(qd->images, d->images + N * 64, 64 * sizeof(float));
  qd->labels[0] = 3;
  ag_influence_data queries;
  ag_influence_vision_data(qd, &queries);
  ag_influence_config cfg = ag_influence_defaults();
  ag_influence_factors *f = NULL;
  ag_influence_queries *q = NULL;
  CHECK_OK(ag_influence_factors_create(&m, &cfg, &f));
  CHECK(ag_influence_layer_count(f) == 7); /* six convs and the classifier */
  ag_influence_factors_destroy(f);
  f = NULL;
  /* block3's 1153-column factors would dominate the test's time */
  const char *layers[] = {"block1.conv1", "block1.conv2", "block2.conv2", "classifier"};
  cfg.layers = layers;
  cfg.layer_count = 4;
  cfg.batch_size = 5;
  CHECK_OK(ag_influence_fit(&m, &train, &cfg, &f));
  CHECK(ag_influence_layer_count(f) == 4);
  CHECK_OK(ag_influence_precondition(f, &m, &queries, &q));
  float *scores = malloc((size_t)N * sizeof(float));
  CHECK_OK(ag_influence_score(q, &m, &train, 0, N, 4, scores));
  ag_params *p = ag_vision_model_params(vm);
  float *v = malloc((size_t)p->total * sizeof(float));
  float *g = malloc((size_t)(N * p->total) * sizeof(float));
  CHECK_OK(ag_influence_query_vector(q, 0, p, v));
  ag_tape *t = ag_tape_create();
  int64_t shape[4] = {N, 1, 8, 8};
  ag_tensor *x = ag_tape_wrap(t, d->images, 4, shape);
  ag_tensor *loss =
      ag_cross_entropy(t, ag_vision_model_forward(t, vm, x), d->labels, NULL, -100, true);
  int64_t covered = 0;
  CHECK_OK(ag_per_example_grads(t, loss, p, N, g, &covered));
  double scale = 0, diff = 0;
  for (int64_t j = 0; j < N; j++) {
    double s = 0;
    for (int64_t a = 0; a < p->total; a++) s -= (double)v[a] * g[j * p->total + a];
    scale = fmax(scale, fabs(s));
    diff = fmax(diff, fabs(s - scores[j]));
  }
  CHECK_MSG(diff <= 1e-3 * scale, "scores differ by %g of %g", diff, scale);
  ag_tape_destroy(t);
  free(g);
  free(v);
  free(scores);
  ag_influence_queries_destroy(q);
  ag_influence_factors_destroy(f);
  ag_image_dataset_destroy(qd);
  ag_vision_model_destroy(vm);
  ag_image_dataset_destroy(d);
}

static void remove_tree(const char *path) {
  DIR *d = opendir(path);
  if (!d) {
    remove(path);
    return;
  }
  for (struct dirent *e; (e = readdir(d));) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    char child[2048];
    snprintf(child, sizeof child, "%s/%s", path, e->d_name);
    remove_tree(child);
  }
  closedir(d);
  remove(path);
}

int main(void) {
  ag_log_set_level(AG_LOG_WARN);
  RUN(unknown_layer_names_are_refused_with_the_model_layers);
  RUN(factors_round_trip_and_refuse_other_models);
  RUN(queries_round_trip_and_refuse_other_models);
  RUN(stages_run_in_order);
  RUN(params_grad_and_flags_are_left_alone);
  RUN(score_dir_resumes_without_recomputing_finished_chunks);
  RUN(vision_cnn_scores_match_per_example_gradients);
  remove_tree(test_tmpdir());
  TEST_MAIN_END();
}
