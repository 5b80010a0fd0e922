// embedapt: the command-line tool, a thin layer over the library.
#include <malloc.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "tools/cli/cli.h"

namespace {

using namespace embedapt::cli;

// The command line parsed and run: the exit status.
int run(int argc, char** argv) {
  CLI::App app{"embedapt: an embedded vector store that learns from its query log"};
  // Bad usage is one line, as every other error (CLI11 adds a second).
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return "embedapt: " + std::string(e.what()) + " (--help: usage)\n";
  });
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
  }
  // Output lost on the way out (a full disk, a closed pipe) is a failure too.
  if (std::fflush(stdout) != 0 || std::ferror(stdout)) {
    std::fprintf(stderr, "embedapt: writing to standard output failed: %s\n", std::strerror(errno));
    return kExitFailure;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // glibc hands freed blocks above 128 KiB back to the kernel (munmap, or a
  // trim of the heap's top) and takes them back a page fault at a time on the
  // next allocation. Training allocates and frees tensors of 0.1-2 MB every
  // step: a two-layer retrain of 309 logged queries (make demo's) spent 7.4 of
  // its 22.5 CPU-s in the kernel, 0.3 of 15.9 with these limits. The
  // allocator's policy is the program's to set, so the library leaves it to
  // the programs that link it.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 128 << 20);
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {  // a library bug or a user's code that threw: fail, never abort
    std::fprintf(stderr, "embedapt: internal error: %s\n", e.what());
    return kExitFailure;
  }
}
