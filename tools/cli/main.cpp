// embedapt: the command-line tool, a thin layer over the library.
#include <cstdio>

#include "tools/cli/cli.h"

int main(int argc, char** argv) {
  using namespace embedapt::cli;
  CLI::App app{"embedapt: an embedded vector store that learns from its query log"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "embedapt 0.1.0");
  add_ingest_command(app);
  add_search_command(app);
  add_remove_command(app);
  add_inspect_command(app);
  add_embed_command(app);
  add_eval_command(app);
  add_split_command(app);
  add_retrain_command(app);
  add_adapters_command(app);
  add_generate_command(app);
  add_milvus_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const Failure& f) {
    std::fprintf(stderr, "embedapt: %s\n", f.message.c_str());
    return kExitFailure;
  } catch (const std::exception& e) {  // a library bug or a user's code that threw: fail, never abort
    std::fprintf(stderr, "embedapt: internal error: %s\n", e.what());
    return kExitFailure;
  }
  return 0;
}
