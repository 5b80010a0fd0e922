// Evaluation datasets: LlamaIndex JSON, JSONL pairs and BEIR folders. The
// first byte picks the format; a BEIR input is split into corpus.jsonl,
// queries.jsonl and qrels/test.tsv at "\n--\n". Any input gives a Status;
// an OK dataset passes validate_dataset and reads back from LlamaIndex JSON.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "core/common/files.h"
#include "core/eval/dataset.h"

namespace {

const std::string& scratch() {
  static const std::string dir = [] {
    auto path =
        std::filesystem::temp_directory_path() / ("embedapt-fuzz-dataset-" + std::to_string(getpid()));
    std::filesystem::create_directories(path / "qrels");
    return path.string();
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace embedapt;
  if (size < 1) return 0;
  std::string input(reinterpret_cast<const char*>(data + 1), size - 1);
  QaDataset dataset;
  Status s;
  switch (data[0] % 3) {
    case 0:
      s = parse_llamaindex_json(input, "fuzz", &dataset);
      break;
    case 1:
      if (!write_file_atomic(scratch() + "/pairs.jsonl", input).ok()) std::abort();
      s = read_jsonl_pairs(scratch() + "/pairs.jsonl", &dataset);
      break;
    default: {
      const char* files[] = {"/corpus.jsonl", "/queries.jsonl", "/qrels/test.tsv"};
      size_t begin = 0;
      for (int i = 0; i < 3; ++i) {
        size_t end = i < 2 ? input.find("\n--\n", begin) : std::string::npos;
        std::string part = input.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
        if (!write_file_atomic(scratch() + files[i], part).ok()) std::abort();
        begin = end == std::string::npos ? input.size() : end + 4;
      }
      s = read_beir(scratch(), "test", &dataset);
    }
  }
  if (!s.ok()) return 0;
  if (!validate_dataset(dataset, "fuzz").ok()) std::abort();
  QaDataset again;  // what `split` and `generate` write must read back
  if (!parse_llamaindex_json(to_llamaindex_json(dataset), "again", &again).ok()) std::abort();
  return 0;
}
