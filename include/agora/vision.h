/* agora vision: image classification end to end.
 *
 * Three layers meet in this header, each implemented in its own folder:
 *   learn  (src/learn/classify.c)      the image dataset struct the training loop
 *                                      consumes, the train/eval loop, checkpoints;
 *   nn     (src/nn/vision_models.c)    the models: MLP, CNN, ResNet;
 *   worlds (src/worlds/image_data.c)   dataset loaders: Fashion-MNIST (IDX), CIFAR-10.
 * The learn code never calls a worlds function: a caller loads the data and
 * hands the loop an ag_image_dataset. */
#ifndef AGORA_VISION_H
#define AGORA_VISION_H

#include "agora/optim.h"
#include "agora/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- image datasets (src/learn/classify.c) --------------------------------- */

#define AG_DATASET_NAME_MAX 32

/* Images as float32 in [0, 1], one contiguous block, and integer labels. */
typedef struct ag_image_dataset {
  char name[AG_DATASET_NAME_MAX]; /* "fashion-mnist", "cifar10", ... */
  int64_t count;
  int channels, height, width;
  int num_classes;
  float *images;   /* (count, channels, height, width) */
  int32_t *labels; /* (count), each in [0, num_classes) */
} ag_image_dataset;

/* Allocates a dataset of `count` zero images (labels 0). */
ag_status ag_image_dataset_create(int64_t count, int channels, int height, int width,
                                  int num_classes, ag_image_dataset **out);
void ag_image_dataset_destroy(ag_image_dataset *d);
/* Floats per example: channels * height * width. */
int64_t ag_image_dataset_example_size(const ag_image_dataset *d);

/* ---- dataset loaders (src/worlds/image_data.c) ----------------------------- */

/* Where Debian's dataset-fashion-mnist package puts the files. */
#define AG_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"

typedef enum ag_split { AG_SPLIT_TRAIN = 0, AG_SPLIT_TEST = 1 } ag_split;

/* An IDX image file (magic 0x00000803, dims N, H, W; bytes) and its label
 * file (magic 0x00000801, dim N) into a 1-channel dataset. Either file may be
 * gzip'd (read through zlib) or plain. Magic numbers, dims, counts and labels
 * (< num_classes) are validated; a short file is an error naming the file. */
ag_status ag_idx_load(const char *images_path, const char *labels_path, int num_classes,
                      ag_image_dataset **out);

/* CIFAR-10 binary files (records of 1 label byte + 3072 pixel bytes, planes
 * R, G, B of 32x32, row-major) concatenated into one 3-channel dataset. */
ag_status ag_cifar10_load_files(const char *const *paths, int count, ag_image_dataset **out);

/* A dataset by name from a folder (NULL: the default folder):
 *   "fashion-mnist"  {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz,
 *                    default AG_FASHION_MNIST_DIR;
 *   "cifar10"        data_batch_1..5.bin / test_batch.bin (no default folder).
 * A missing dataset is AG_ERR_NOT_FOUND with a message saying how to get it. */
ag_status ag_image_dataset_load(const char *name, const char *data_dir, ag_split split,
                                ag_image_dataset **out);
/* "fashion-mnist|cifar10": the names ag_image_dataset_load knows. */
const char *ag_image_dataset_names(void);

/* ---- models (src/nn/vision_models.c) --------------------------------------- */

typedef enum ag_vision_model_kind {
  AG_VISION_MLP = 0, /* flatten, 256 -> 128 hidden units with ReLU, linear */
  AG_VISION_CNN,     /* three blocks of two 3x3 convs + ReLU and a 2x2 max-pool, linear */
  AG_VISION_RESNET   /* conv stem, three residual stages 32 -> 64 -> 128 with group norm,
                        global average pool, linear */
} ag_vision_model_kind;

/* "mlp", "cnn", "resnet". */
const char *ag_vision_model_name(ag_vision_model_kind kind);
ag_status ag_vision_model_parse(const char *name, ag_vision_model_kind *out);

/* A model owns its parameters in one ag_params store under stable names
 * ("fc1.weight", "block2.conv1.weight", "stage1.block0.conv1.weight", ...),
 * zero until ag_vision_model_init. */
typedef struct ag_vision_model ag_vision_model;
ag_status ag_vision_model_create(ag_vision_model_kind kind, int channels, int height, int width,
                                 int num_classes, ag_vision_model **out);
void ag_vision_model_destroy(ag_vision_model *m);
ag_vision_model_kind ag_vision_model_kind_of(const ag_vision_model *m);
ag_params *ag_vision_model_params(const ag_vision_model *m);
/* Kaiming-normal weights (std sqrt(2 / fan_in)), zero biases, group-norm
 * scales 1 and shifts 0, all drawn from rng in parameter order. */
void ag_vision_model_init(ag_vision_model *m, ag_rng *rng);
/* x (N, C, H, W) -> logits (N, num_classes), recorded on t. */
ag_tensor *ag_vision_model_forward(ag_tape *t, const ag_vision_model *m, ag_tensor *x);

/* ---- training and evaluation (src/learn/classify.c) ------------------------ */

typedef enum ag_lr_schedule { AG_LR_CONSTANT = 0, AG_LR_COSINE = 1 } ag_lr_schedule;

/* Everything that determines a run's arithmetic is here and is saved in each
 * checkpoint; a resumed run must use the same values (checked). */
typedef struct ag_classify_config {
  ag_vision_model_kind model;
  char data[AG_DATASET_NAME_MAX]; /* dataset name, recorded for `vision eval` */
  int epochs;
  int64_t batch_size;
  int64_t eval_batch_size; /* does not change the weights, only evaluation speed */
  ag_optim_kind optimizer;
  float lr;
  float momentum;     /* SGD only */
  float weight_decay; /* SGD: L2 in the gradient; AdamW: decoupled */
  ag_lr_schedule schedule;
  int64_t limit; /* train on the first `limit` examples; 0: all */
  uint64_t seed; /* initial weights; data order of epoch e is shuffle(ag_rng_seed2(seed, e)) */
  /* Augmentation: each training image mirrored left to right with
   * probability 1/2, drawn from (seed, update number), so that a restart
   * from any epoch replays it exactly. Off by default. */
  bool flip;
} ag_classify_config;

/* The recommended settings for `kind` (optimizer, epochs, batch size,
 * learning rate, ...): on Fashion-MNIST with 2 threads they meet the
 * accuracy and time targets in docs/vision.md. */
ag_classify_config ag_classify_defaults(ag_vision_model_kind kind);
/* Switches c to `optimizer` with that optimizer's default learning rate,
 * momentum and weight decay for c->model (nothing changes when c already
 * uses it). */
void ag_classify_set_optimizer(ag_classify_config *c, ag_optim_kind optimizer);

/* How a training run starts and where it writes. */
typedef struct ag_classify_run {
  const char *out_dir;  /* metrics.jsonl and epoch-NNN/ checkpoints */
  bool resume;          /* continue from the last complete checkpoint in out_dir, if any */
  int from_epoch;       /* > 0: start from epoch from_epoch's checkpoint (0: not used) */
  const char *from_dir; /* folder holding that checkpoint; NULL: out_dir */
  bool log_epochs;      /* one line per epoch on stderr (ag_info) */
} ag_classify_run;

/* One epoch's results; a line of metrics.jsonl. */
typedef struct ag_classify_metrics {
  int epoch;
  double train_loss; /* mean over the epoch's examples */
  double test_loss;
  double test_acc;
  double lr;      /* learning rate of the epoch's last update */
  double seconds; /* wall clock of the epoch (training + evaluation) */
  int64_t steps;  /* optimizer updates done after this epoch */
} ag_classify_metrics;

/* Trains cfg on `train`, evaluating on `test` after every epoch, and keeps
 * every epoch's checkpoint in out_dir/epoch-NNN/ (model.safetensors,
 * optimizer.safetensors, state.json), every file written atomically. A
 * fresh run refuses an out_dir that already holds checkpoints. With
 * run->resume or run->from_epoch, cfg must match the checkpoint's config
 * (epochs may grow under a constant schedule). `last` receives the final
 * epoch's metrics (also when resuming a finished run). */
ag_status ag_classify_train(const ag_classify_config *cfg, const ag_classify_run *run,
                            const ag_image_dataset *train, const ag_image_dataset *test,
                            ag_classify_metrics *last);

/* Accuracy and mean loss of `m` over `d` in batches, gradients off. t may be
 * NULL (a tape is made for the call). */
ag_status ag_classify_evaluate(const ag_vision_model *m, const ag_image_dataset *d,
                               int64_t batch_size, ag_tape *t, double *accuracy, double *loss);

/* What a checkpoint folder says about itself (its state.json). */
typedef struct ag_classify_checkpoint {
  ag_classify_config config;
  int epoch;
  int64_t optimizer_step;
  int channels, height, width, num_classes;
  int threads;                 /* threads of the run that wrote it */
  ag_classify_metrics metrics; /* that epoch's line of metrics.jsonl */
} ag_classify_checkpoint;

/* Reads dir/state.json and checks the other files are there; a missing or
 * malformed checkpoint is one clear error naming the folder. */
ag_status ag_classify_checkpoint_read(const char *dir, ag_classify_checkpoint *out);
/* Loads dir's model (ag_vision_model_destroy it) after checking it fits. */
ag_status ag_classify_checkpoint_load_model(const char *dir, const ag_classify_checkpoint *info,
                                            ag_vision_model **out);
/* The path of epoch `epoch`'s checkpoint under run_dir into buf. */
void ag_classify_checkpoint_path(const char *run_dir, int epoch, char *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif
