// The adapter exchange directory: config.json + adapter.safetensors.
#include <filesystem>
#include <system_error>

#include "core/common/files.h"
#include "embedapt/adapter.h"

namespace embedapt {

namespace {
constexpr const char* kConfigFile = "config.json";
constexpr const char* kWeightsFile = "adapter.safetensors";
}  // namespace

Status read_adapter_dir(const std::string& dir, std::string* config_json, std::string* weights) {
  for (const char* name : {kConfigFile, kWeightsFile}) {
    if (!std::filesystem::exists(std::filesystem::path(dir) / name)) {
      return Status::NotFound(dir + ": not an adapter directory (no " + name + ")");
    }
  }
  EMBEDAPT_RETURN_IF_ERROR(read_file((std::filesystem::path(dir) / kConfigFile).string(), config_json));
  return read_file((std::filesystem::path(dir) / kWeightsFile).string(), weights);
}

// Each file is replaced atomically, the weights first: a config.json is
// written only once the weights it describes are on disk.
Status write_adapter_dir(const std::string& dir, const std::string& config_json, const std::string& weights) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status::IOError(dir + ": cannot create directory: " + ec.message());
  EMBEDAPT_RETURN_IF_ERROR(write_file_atomic((std::filesystem::path(dir) / kWeightsFile).string(), weights));
  return write_file_atomic((std::filesystem::path(dir) / kConfigFile).string(), config_json);
}

}  // namespace embedapt
