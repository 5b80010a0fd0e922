// milvus_sync: a full push when the collection cannot be caught up, else the
// journal's changes since the cursor. See embedapt/milvus.h for why a sync
// killed at any point is finished by the next one.
#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <unordered_set>
#include <utility>
#include <vector>

#include "core/common/progress.h"
#include "core/milvus/client.h"
#include "embedapt/milvus.h"

namespace embedapt {
namespace {

std::string describe_docs(uint64_t version) {
  return version ? "adapter v" + std::to_string(version) : "raw";
}

// Sends `records` (raw vectors) to the collection in batches, mapped into its space.
class Pusher {
 public:
  Pusher(const MilvusClient& client, const Adapter* doc_adapter, Metric metric, int store_dim,
         const MilvusSyncOptions& options, Progress* progress)
      : client_(client),
        doc_adapter_(doc_adapter),
        metric_(metric),
        store_dim_(store_dim),
        options_(options),
        progress_(progress) {}

  Status add(const Record& record) {
    pending_.push_back(record);
    return pending_.size() >= std::max<size_t>(1, options_.batch_size) ? flush() : Status::OK();
  }

  Status flush() {
    if (pending_.empty()) return Status::OK();
    std::vector<float> raw;
    raw.reserve(pending_.size() * store_dim_);
    for (const Record& r : pending_) raw.insert(raw.end(), r.vector.begin(), r.vector.end());
    std::vector<float> mapped;
    EMBEDAPT_RETURN_IF_ERROR(
        to_collection_space(doc_adapter_, metric_, raw.data(), pending_.size(), store_dim_, &mapped));
    const int dim = doc_adapter_ ? doc_adapter_->out_dim() : store_dim_;
    std::vector<MilvusRow> rows;
    for (size_t i = 0; i < pending_.size(); ++i) {
      rows.push_back({pending_[i].id, pending_[i].version, mapped.data() + i * size_t(dim)});
    }
    EMBEDAPT_RETURN_IF_ERROR(client_.upsert(rows, dim));
    sent_ += pending_.size();
    progress_->add(pending_.size());
    pending_.clear();
    return Status::OK();
  }

  uint64_t sent() const { return sent_; }

 private:
  const MilvusClient& client_;
  const Adapter* doc_adapter_;
  const Metric metric_;
  const int store_dim_;
  const MilvusSyncOptions& options_;
  Progress* progress_;
  std::vector<Record> pending_;
  uint64_t sent_ = 0;
};

// Milvus 2.3's REST queries and searches read a bounded-stale view, so the
// sync waits until they show its writes: every upserted record at its new
// version, none of the deleted versions, and (after a full push) nothing else.
Status wait_visible(const MilvusClient& client, const std::vector<std::pair<std::string, uint64_t>>& upserted,
                    const std::vector<uint64_t>& deleted, uint64_t full_count) {
  for (int attempt = 0; attempt < 600; ++attempt) {
    bool visible = true;
    uint64_t n = 0;
    if (full_count > 0) {
      EMBEDAPT_RETURN_IF_ERROR(client.count("version >= 0", &n));
      visible = n == full_count;
    }
    for (size_t i = 0; visible && i < deleted.size(); i += 1000) {
      std::vector<uint64_t> chunk(deleted.begin() + i, deleted.begin() + std::min(deleted.size(), i + 1000));
      EMBEDAPT_RETURN_IF_ERROR(client.count(MilvusClient::versions_filter(chunk), &n));
      visible = n == 0;
    }
    for (size_t i = 0; visible && full_count == 0 && i < upserted.size(); i += 500) {
      std::vector<std::pair<std::string, uint64_t>> want(
          upserted.begin() + i, upserted.begin() + std::min(upserted.size(), i + 500));
      std::vector<std::string> ids;
      ids.reserve(want.size());
      for (const auto& [id, version] : want) ids.push_back(id);
      std::vector<std::pair<std::string, uint64_t>> found;
      EMBEDAPT_RETURN_IF_ERROR(client.versions(ids, &found));
      std::sort(want.begin(), want.end());
      std::sort(found.begin(), found.end());
      visible = found == want;
    }
    if (visible) return Status::OK();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return Status::Unavailable("Milvus did not show the sync's writes within 2 minutes");
}

}  // namespace

Status milvus_sync(Store& store, const MilvusCollection& collection, const MilvusSyncOptions& options,
                   MilvusSyncReport* report) {
  *report = MilvusSyncReport();
  if (options.shards < 1 || options.replicas < 1) {
    return Status::InvalidArgument("Milvus sync: shards and replicas must be at least 1");
  }
  MilvusClient client;
  EMBEDAPT_RETURN_IF_ERROR(MilvusClient::make(collection, &client));
  StoreStats stats;
  EMBEDAPT_RETURN_IF_ERROR(store.stats(&stats));

  // Documents go through the active adapter only when it covers both sides.
  std::unique_ptr<Adapter> doc_adapter;
  if (stats.active_adapter != 0) {
    AdapterVersion version;
    EMBEDAPT_RETURN_IF_ERROR(store.get_adapter(stats.active_adapter, &version));
    std::unique_ptr<Adapter> active;
    AdapterLoadOptions load;
    load.trust_code = options.trust_code;
    EMBEDAPT_RETURN_IF_ERROR(load_adapter(version.config_json, version.weights, load, &active)
                                 .WithContext("adapter v" + std::to_string(stats.active_adapter)));
    if (active->side() == AdapterSide::kBoth) {
      doc_adapter = std::move(active);
      report->doc_adapter = stats.active_adapter;
    }
  }

  const std::string cursor_name = sync_cursor_name(collection);
  JournalCursor cursor;
  MilvusSyncState state;
  Status found = get_sync_cursor(store, collection, &cursor);
  if (!found.ok() && found.code() != Code::kNotFound) return found;
  bool exists = false;
  EMBEDAPT_RETURN_IF_ERROR(client.exists(&exists));

  std::string reason;
  if (!found.ok()) {
    reason = "first sync of this store to " + collection.name;
  } else if (!parse_sync_state(cursor.state, &state)) {
    return Status::Corruption("journal cursor '" + cursor_name + "' holds an unreadable state");
  } else if (!state.complete) {
    reason = "the last full push did not finish";
  } else if (!exists) {
    reason = "collection " + collection.name + " does not exist";
  } else if (state.index != options.index) {
    reason = std::string("index type changes from ") + MilvusIndexName(state.index) + " to " +
             MilvusIndexName(options.index);
  } else if (state.doc_adapter != report->doc_adapter) {
    reason = "documents change from " + describe_docs(state.doc_adapter) + " to " +
             describe_docs(report->doc_adapter) + " (the active adapter's side)";
  }

  std::vector<uint64_t> removed;
  std::vector<Record> added;
  uint64_t last_seq = cursor.seq;
  if (reason.empty()) {
    std::unordered_set<uint64_t> gone;
    Status read = store.read_journal(cursor.seq, [&](const JournalEntry& entry) {
      last_seq = entry.seq;
      if (entry.removed) {
        removed.push_back(entry.version);
        gone.insert(entry.version);
      } else if (!entry.record.id.empty()) {
        added.push_back(entry.record);
      }
      return true;
    });
    if (read.code() == Code::kFailedPrecondition) {
      reason = read.message();
    } else {
      EMBEDAPT_RETURN_IF_ERROR(read);
      // A version added and removed since the cursor: only its delete matters.
      added.erase(std::remove_if(added.begin(), added.end(),
                                 [&](const Record& r) { return gone.count(r.version) != 0; }),
                  added.end());
    }
  }

  const Metric metric = stats.metric;
  const int dim = doc_adapter ? doc_adapter->out_dim() : stats.dim;
  state.index = options.index;
  state.doc_adapter = report->doc_adapter;
  if (!reason.empty()) {
    report->full = true;
    report->reason = reason;
    // Pin the journal from here on, marked unfinished until every record is in.
    cursor.seq = stats.journal_seq;
    state.complete = false;
    cursor.state = encode_sync_state(state);
    EMBEDAPT_RETURN_IF_ERROR(store.put_cursor(cursor_name, cursor));
    EMBEDAPT_RETURN_IF_ERROR(client.drop());
    EMBEDAPT_RETURN_IF_ERROR(client.create(dim, milvus_metric(metric), options.index, options.shards,
                                           options.replicas, stats.count));
    Progress progress("milvus push", stats.count, options.show_progress);
    Pusher pusher(client, doc_adapter.get(), metric, stats.dim, options, &progress);
    Status pushed;
    EMBEDAPT_RETURN_IF_ERROR(store.scan([&](const Record& record) {
      pushed = pusher.add(record);
      return pushed.ok();
    }));
    EMBEDAPT_RETURN_IF_ERROR(pushed);
    EMBEDAPT_RETURN_IF_ERROR(pusher.flush());
    report->upserted = pusher.sent();
    if (report->upserted > 0) EMBEDAPT_RETURN_IF_ERROR(wait_visible(client, {}, {}, report->upserted));
  } else {
    Progress progress("milvus sync", added.size() + removed.size(), options.show_progress);
    for (size_t i = 0; i < removed.size(); i += 1000) {
      std::vector<uint64_t> chunk(removed.begin() + i, removed.begin() + std::min(removed.size(), i + 1000));
      EMBEDAPT_RETURN_IF_ERROR(client.delete_versions(chunk));
      progress.add(chunk.size());
    }
    report->deleted = removed.size();
    Pusher pusher(client, doc_adapter.get(), metric, stats.dim, options, &progress);
    std::vector<std::pair<std::string, uint64_t>> upserted;
    for (const Record& record : added) {
      EMBEDAPT_RETURN_IF_ERROR(pusher.add(record));
      upserted.emplace_back(record.id, record.version);
    }
    EMBEDAPT_RETURN_IF_ERROR(pusher.flush());
    report->upserted = pusher.sent();
    EMBEDAPT_RETURN_IF_ERROR(wait_visible(client, upserted, removed, 0));
    cursor.seq = last_seq;
  }
  state.complete = true;
  cursor.state = encode_sync_state(state);
  EMBEDAPT_RETURN_IF_ERROR(store.put_cursor(cursor_name, cursor));
  // A cursor under the old name (which holds the URI's password) goes: it
  // would pin the journal. Only if it is there: a delete writes its key too.
  const std::string legacy = legacy_sync_cursor_name(collection);
  JournalCursor old;
  if (legacy != cursor_name && store.get_cursor(legacy, &old).ok()) {
    EMBEDAPT_RETURN_IF_ERROR(store.remove_cursor(legacy));
  }
  report->seq = cursor.seq;
  return Status::OK();
}

}  // namespace embedapt
