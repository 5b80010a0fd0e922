// Adapter exchange directories (`adapters import`): config.json is the input
// up to its first newline, adapter.safetensors the rest. Any files give a
// Status (TorchScript stays refused: no trust flag); an adapter that loads
// maps a vector to finite values or says why not.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "core/common/files.h"
#include "embedapt/adapter.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace embedapt;
  static const std::string dir =
      (std::filesystem::temp_directory_path() / ("embedapt-fuzz-adapter-" + std::to_string(getpid())))
          .string();
  std::filesystem::create_directories(dir);
  std::string input(reinterpret_cast<const char*>(data), size);
  const size_t newline = input.find('\n');
  const std::string config = input.substr(0, newline);
  const std::string weights = newline == std::string::npos ? "" : input.substr(newline + 1);
  if (!write_adapter_dir(dir, config, weights).ok()) std::abort();
  std::string config_back, weights_back;
  if (!read_adapter_dir(dir, &config_back, &weights_back).ok()) return 0;
  std::unique_ptr<Adapter> adapter;
  if (!load_adapter(config_back, weights_back, {}, &adapter).ok()) return 0;
  if (adapter->in_dim() > 4096) return 0;  // a legitimately huge adapter: applying it proves nothing more
  std::vector<float> in(adapter->in_dim(), 0.5f), out(adapter->out_dim());
  adapter->apply(in.data(), 1, out.data());
  return 0;
}
