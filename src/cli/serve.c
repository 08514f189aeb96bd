/* `agora serve MODEL --port P`: a local model over the OpenAI HTTP API until
 * SIGINT or SIGTERM. Flag parsing and signals only; the server is in
 * libagora (agora/serve.h). */
#include "agora/serve.h"

#include "cli/args.h"
#include "cli/cli.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

#define MAX_FLAGS 16

int ag_cli_serve(int argc, char **argv) {
  ag_common_flags common = {0};
  ag_server_options o = ag_server_defaults();
  int port = 8080;
  const char *host = o.host, *model_name = NULL, *chat_template = NULL;
  int64_t max_body_bytes = o.max_body_bytes;
  ag_flag flags[MAX_FLAGS];
  int n = 0;
  flags[n++] = (ag_flag){.name = "port",
                         .type = AG_FLAG_INT,
                         .value = &port,
                         .help = "TCP port to listen on; 0: any free port (the log says which)",
                         .min = 0,
                         .max = 65535};
  flags[n++] = (ag_flag){.name = "host",
                         .type = AG_FLAG_STRING,
                         .value = &host,
                         .metavar = "ADDRESS",
                         .help = "address to bind (0.0.0.0: every interface)"};
  flags[n++] = (ag_flag){.name = "model-name",
                         .type = AG_FLAG_STRING,
                         .value = &model_name,
                         .metavar = "NAME",
                         .help = "the model id /v1/models lists and responses carry",
                         .default_text = "the folder's or file's base name"};
  flags[n++] = (ag_flag){.name = "chat-template",
                         .type = AG_FLAG_STRING,
                         .value = &chat_template,
                         .metavar = "NAME",
                         .help = "chat template family (chatml, llama3, gemma, phi3, plain) used "
                                 "instead of the model's; without either, chat requests get 400",
                         .default_text = "the model's own"};
  flags[n++] = (ag_flag){.name = "max-body-bytes",
                         .type = AG_FLAG_INT64,
                         .value = &max_body_bytes,
                         .metavar = "N",
                         .help = "larger request bodies get 413",
                         .min = 1024,
                         .max = 1e10};
  ag_flag shared[AG_COMMON_FLAG_COUNT];
  ag_args_common_flags(shared, &common);
  for (int i = 0; i < AG_COMMON_FLAG_COUNT; i++)
    if (strcmp(shared[i].name, "json")) flags[n++] = shared[i];
  ag_flag *seed = ag_args_find(&(ag_command){.flags = flags, .flag_count = n}, "seed");
  if (seed) seed->help = "seeds the requests that give no \"seed\"";
  ag_command cmd = {.name = "serve",
                    .summary = "Serve a local model (a Hugging Face folder or a GGUF file) over "
                               "the OpenAI HTTP API: POST /v1/chat/completions, POST "
                               "/v1/completions, GET /v1/models, GET /health. Runs until SIGINT "
                               "or SIGTERM; logs go to stderr. See docs/serve.md.",
                    .flags = flags,
                    .flag_count = n,
                    .positional_metavar = "MODEL"};
  const char *positional[2];
  int n_positional = 0;
  ag_args_result r = ag_args_parse(&cmd, argc, argv, positional, 2, &n_positional);
  if (r != AG_ARGS_OK) return r == AG_ARGS_HELP ? 0 : 2;
  if (n_positional != 1)
    return ag_args_usage_error(&cmd, "serve takes one MODEL (a model folder or a .gguf file)");
  ag_args_apply_common(&common);
  const char *path = positional[0];

  /* Signals are taken by sigwait below: block them before any thread starts
   * so that every thread inherits the mask. */
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);

  ag_lm *lm = NULL;
  if (ag_lm_open(path, &lm)) return ag_cli_error("%s", ag_error_message());
  char base[256];
  if (!model_name) { /* the folder's or file's base name */
    size_t end = strlen(path);
    while (end > 1 && path[end - 1] == '/') end--;
    size_t begin = end;
    while (begin > 0 && path[begin - 1] != '/') begin--;
    snprintf(base, sizeof base, "%.*s", (int)(end - begin), path + begin);
    model_name = base;
  }
  o.host = host;
  o.port = port;
  o.model_name = model_name;
  o.chat_template = chat_template;
  o.max_body_bytes = max_body_bytes;
  o.seed = common.seed;
  ag_server *server = NULL;
  if (ag_server_start(lm, &o, &server)) {
    int rc = ag_cli_error("%s", ag_error_message());
    ag_lm_close(lm);
    return rc;
  }
  const char *chat = chat_template       ? chat_template
                     : lm->chat_template ? ag_chat_template_name(lm->chat_template)
                                         : NULL;
  bool ipv6 = strchr(host, ':') != NULL;
  fprintf(stderr, "agora: serving %s as \"%s\" (chat template: %s)\n", path, model_name,
          chat ? chat : "none: /v1/chat/completions answers 400; see --chat-template");
  fprintf(stderr, "agora: listening on http://%s%s%s:%d\n", ipv6 ? "[" : "", host, ipv6 ? "]" : "",
          ag_server_port(server));
  fflush(stderr);
  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  fprintf(stderr, "agora: %s: stopping\n", signal_number == SIGINT ? "SIGINT" : "SIGTERM");
  ag_server_stop(server);
  ag_lm_close(lm);
  fprintf(stderr, "agora: stopped\n");
  return 0;
}
