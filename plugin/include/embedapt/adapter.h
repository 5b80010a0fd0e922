// Adapter: a learned transform applied to embedding vectors.
//
// An adapter maps in_dim-float vectors to out_dim-float vectors. A `query`
// adapter transforms only queries (documents stay as embedded); a `both`
// adapter transforms queries and documents with the same function, so the
// store rebuilds its index from the raw document vectors when one is activated.
//
// An adapter is stored and exchanged as two pieces: a JSON config naming its
// kind and shape, and its weights as safetensors bytes. The config always has
// "kind", "in_dim", "out_dim", "side" ("query"|"both") and "embedder" (the
// identity of the embedder it was trained on); kinds add their own keys. load_adapter() turns
// the pair back into a callable Adapter; the kinds it knows are the built-in
// ones (`linear`, `two-layer`), `torchscript` (only with trust_code, since a
// TorchScript file is code), and any registered through adapter_plugin.h.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "embedapt/status.h"

namespace embedapt {

// The largest vector dimension a store or an adapter accepts.
constexpr int kMaxDim = 65536;

enum class AdapterSide { kQuery, kBoth };

const char* AdapterSideName(AdapterSide side);  // "query" / "both"

class Adapter {
 public:
  virtual ~Adapter() = default;

  virtual const std::string& kind() const = 0;
  virtual int in_dim() const = 0;
  virtual int out_dim() const = 0;
  virtual AdapterSide side() const = 0;

  // Writes the transform of `n` row-major vectors (n * in_dim floats at `in`)
  // to `out` (n * out_dim floats). Safe to call from many threads at once.
  virtual Status apply(const float* in, size_t n, float* out) const = 0;
};

// The shape and identity every adapter config carries (listed above); `config_json` is the whole config, so a
// kind can read its own keys.
struct AdapterConfig {
  std::string kind;
  int in_dim = 0;
  int out_dim = 0;
  AdapterSide side = AdapterSide::kQuery;
  std::string embedder;
  std::string config_json;
};

// Parses and checks the keys every config has (the adapter code owns them:
// read a config through this, never by its JSON keys).
Status parse_adapter_config(const std::string& config_json, AdapterConfig* out);

// Whether an adapter with `config` can serve vectors of `dim` floats made by
// the embedder `embedder` ("": unknown, not checked): kInvalidArgument unless
// it maps dim -> dim, kFailedPrecondition if it was trained on another
// embedder (its output would be noise). Every place that puts an adapter in
// front of a store's vectors asks this.
Status check_adapter_fits(const AdapterConfig& config, int dim, const std::string& embedder);

struct AdapterLoadOptions {
  // TorchScript adapters execute code from the file; they load only if true.
  bool trust_code = false;
};

// Builds an adapter from its serialized config (JSON) and weights (safetensors).
Status load_adapter(const std::string& config_json, const std::string& weights,
                    const AdapterLoadOptions& options, std::unique_ptr<Adapter>* out);

// The exchange directory: `config.json` + `adapter.safetensors`, readable by
// Python's safetensors. Reads the two files back as they were written.
Status read_adapter_dir(const std::string& dir, std::string* config_json, std::string* weights);
Status write_adapter_dir(const std::string& dir, const std::string& config_json, const std::string& weights);

}  // namespace embedapt
