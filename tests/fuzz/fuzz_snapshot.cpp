// Index snapshots with the checksum bypassed, as a corrupted file that
// happened to match it would arrive: the first byte picks the index kind and
// metric; any bytes give a Status; an index that loads can be searched and
// serialized again.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "index/snapshot.h"
#include "index/vector_index.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace embedapt;
  if (size < 1) return 0;
  static const char* const kSpecs[] = {"Flat", "HNSW8", "IVF4,Flat"};
  static const Metric kMetrics[] = {Metric::kCosine, Metric::kInnerProduct, Metric::kL2};
  const std::string spec = kSpecs[data[0] % 3];
  const Metric metric = kMetrics[(data[0] / 3) % 3];
  constexpr int kDim = 4;
  SnapshotInfo info;
  std::string_view payload;
  if (!parse_snapshot({reinterpret_cast<const char*>(data + 1), size - 1}, /*check_sum=*/false, &info,
                      &payload)
           .ok()) {
    return 0;
  }
  std::unique_ptr<VectorIndex> index;
  if (!VectorIndex::deserialize(payload, kDim, metric, spec, &index).ok()) return 0;
  std::vector<float> query = {0.5f, -0.5f, 0.5f, 0.5f};
  std::vector<std::vector<Neighbor>> hits;
  index->search(query.data(), 1, 3, /*allowed=*/nullptr, &hits);
  std::string again;
  index->serialize(&again);
  return 0;
}
