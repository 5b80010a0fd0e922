// retrain(): the store's query log -> the trainer -> a stored (and maybe
// activated) adapter version. See embedapt/learn.h.
#include "embedapt/learn.h"

#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <unordered_map>

#include "core/adapt/trainer.h"
#include "core/common/sha256.h"
#include "embedapt/store.h"
#include "index/store_impl.h"

namespace embedapt {
namespace {

// Far past any schedule that helps (an epoch visits up to 8,192 pairs);
// --epochs 2000000000 ran for ever.
constexpr int kMaxEpochs = 10000;

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

void add_u64(Sha256* hash, uint64_t v) { hash->add({reinterpret_cast<const char*>(&v), sizeof v}); }

// The trainer's input read through the store: every document's raw vector,
// and each logged query once with the rows of the documents it hit (hits of
// documents removed since are dropped, and a query left without hits too).
// `fingerprint` hashes what was trained on, in scan order (query id, vector,
// hit ids), so two versions trained on the same log share it.
Status read_training_set(const Store& store, size_t dim, TrainingSet* data, std::string* fingerprint,
                         RetrainReport* report) {
  data->docs.cols = data->queries.cols = dim;
  std::unordered_map<std::string, size_t> doc_row;
  EMBEDAPT_RETURN_IF_ERROR(store.scan([&](const Record& r) {
    doc_row.emplace(r.id, data->docs.rows++);
    data->docs.data.insert(data->docs.data.end(), r.vector.begin(), r.vector.end());
    return true;
  }));
  Sha256 hashed;
  std::vector<size_t> rows;
  EMBEDAPT_RETURN_IF_ERROR(store.scan_log([&](const LoggedQuery& q) {
    rows.clear();
    for (const std::string& id : q.hit_ids) {
      auto doc = doc_row.find(id);
      if (doc == doc_row.end()) {
        ++report->dropped_hits;
      } else {
        rows.push_back(doc->second);
      }
    }
    if (rows.empty() || q.vector.size() != dim) return true;
    add_u64(&hashed, q.id);
    hashed.add({reinterpret_cast<const char*>(q.vector.data()), q.vector.size() * sizeof(float)});
    for (const std::string& id : q.hit_ids) {
      add_u64(&hashed, id.size());
      hashed.add(id);
    }
    data->queries.data.insert(data->queries.data.end(), q.vector.begin(), q.vector.end());
    ++data->queries.rows;
    report->pairs += rows.size();
    data->relevant.push_back(rows);
    return true;
  }));
  report->queries = data->queries.rows;
  *fingerprint = "sha256:" + hex(hashed.digest());
  return Status::OK();
}

// The one place public options become the trainer's (internal) ones.
Status to_train_options(const RetrainOptions& in, const std::string& embedder, TrainOptions* out) {
  if (in.kind == "torchscript" && !in.trust_code) {
    return Status::FailedPrecondition(
        "retrain: a TorchScript adapter is code; it trains only with trust_code");
  }
  if (in.epochs < 0 || in.epochs > kMaxEpochs || !(in.lr >= 0 && std::isfinite(in.lr)) || in.folds < 0 ||
      in.folds == 1 || in.threads < 1 || in.checkpoint_every < 0) {
    return Status::InvalidArgument(
        "retrain: epochs must be 0 (the default) to " + std::to_string(kMaxEpochs) +
        ", lr finite and >= 0 (0: the default), folds 0 (the default) or at least 2, threads >= 1, "
        "checkpoint_every >= 0");
  }
  TrainOptions o;
  o.kind = in.kind;
  o.torchscript_archive = in.torchscript_archive;
  o.trust_code = in.trust_code;
  o.side = in.side;
  o.hidden = in.hidden;
  o.embedder = embedder;
  if (in.epochs > 0) o.epochs = in.epochs;
  if (in.lr > 0) o.lr = in.lr;
  if (!in.loss.empty()) EMBEDAPT_RETURN_IF_ERROR(ParseLoss(in.loss, &o.loss).WithContext("retrain"));
  if (in.folds > 0) o.folds = in.folds;
  o.seed = in.seed;
  o.threads = in.threads;
  o.checkpoint_dir = in.checkpoint_dir;
  o.checkpoint_every = in.checkpoint_dir.empty() ? 0 : in.checkpoint_every;
  o.resume = in.resume;
  o.cancel = in.cancel;
  *out = std::move(o);
  return Status::OK();
}

RetrainScore score_of(const ValidationScore& v) { return {v.hit, v.mrr, v.rr}; }
RetrainGain gain_of(const Gain& g) { return {g.mean, g.low, g.high}; }

}  // namespace

const char* DecisionName(RetrainReport::Decision decision) {
  switch (decision) {
    case RetrainReport::Decision::kNoGain:
      return "no-gain";
    case RetrainReport::Decision::kStored:
      return "stored";
    case RetrainReport::Decision::kNotBetter:
      return "not-better";
    case RetrainReport::Decision::kActivated:
      return "activated";
  }
  return "?";
}

Status retrain(Store* store, const RetrainOptions& options, RetrainReport* report) {
  if (store == nullptr || report == nullptr)
    return Status::InvalidArgument("retrain: store and report must be set");
  *report = RetrainReport();
  const auto read_start = Clock::now();
  StoreStats stats;
  EMBEDAPT_RETURN_IF_ERROR(store->stats(&stats));
  report->previous_active = stats.active_adapter;
  TrainOptions train;
  EMBEDAPT_RETURN_IF_ERROR(to_train_options(options, stats.embedder, &train));
  if (options.activate == ActivationPolicy::kIfBetter && stats.active_adapter != 0) {
    AdapterVersion active;
    EMBEDAPT_RETURN_IF_ERROR(store->get_adapter(stats.active_adapter, &active));
    std::unique_ptr<Adapter> incumbent;
    EMBEDAPT_RETURN_IF_ERROR(
        load_adapter(active.config_json, active.weights, {options.trust_code}, &incumbent)
            .WithContext("retrain: the active version " + std::to_string(stats.active_adapter)));
    train.incumbent = std::move(incumbent);
  }
  TrainingSet data;
  std::string fingerprint;
  EMBEDAPT_RETURN_IF_ERROR(
      read_training_set(*store, static_cast<size_t>(stats.dim), &data, &fingerprint, report));
  report->read_seconds = seconds_since(read_start);
  // The trainer would say "no logged query/hit pairs" of a log whose hits
  // all name documents removed since, while the store counts them.
  if (data.queries.rows == 0 && report->dropped_hits > 0) {
    return Status::InvalidArgument("retrain: every one of the " + std::to_string(report->dropped_hits) +
                                   " logged hits names a document no longer stored; nothing to train on");
  }

  const auto train_start = Clock::now();
  TrainResult result;
  EMBEDAPT_RETURN_IF_ERROR(train_adapter(data, train, &result));
  report->train_seconds = seconds_since(train_start);
  if (result.interrupted) return Status::Unavailable("retrain: cancelled; nothing was stored");
  report->folds = result.folds;
  report->top_k = train.top_k;
  report->base = score_of(result.base);
  report->adapter = score_of(result.cross_validated);
  report->incumbent = score_of(result.incumbent);
  report->hit_gain = gain_of(result.hit_gain);
  report->rr_gain = gain_of(result.rr_gain);
  report->log_rank_gain = gain_of(result.log_rank_gain);
  report->gain_z = result.gain_z;
  report->min_gain_z = gain_bar(train, result.signal_z);
  report->signal_z = result.signal_z;
  report->min_signal_z = train.min_signal_z;
  report->epochs_run = static_cast<int>(result.epochs.size());
  report->summary = result.summary(train);
  if (!result.improved) return Status::OK();

  const auto store_start = Clock::now();
  AdapterVersion version;
  version.parent = stats.active_adapter;
  version.config_json = result.config_json;
  version.weights = result.weights;
  version.data_fingerprint = fingerprint;
  version.metrics_json = result.metrics_json(train);
  EMBEDAPT_RETURN_IF_ERROR(store->put_adapter(&version));
  report->version = version.version;
  switch (options.activate) {
    case ActivationPolicy::kNever:
      report->decision = RetrainReport::Decision::kStored;
      break;
    case ActivationPolicy::kIfBetter:
      report->decision = !train.incumbent || result.cross_validated.rr > result.incumbent.rr
                             ? RetrainReport::Decision::kActivated
                             : RetrainReport::Decision::kNotBetter;
      break;
    case ActivationPolicy::kAlways:
      report->decision = RetrainReport::Decision::kActivated;
      break;
  }
  if (report->decision == RetrainReport::Decision::kActivated) {
    EMBEDAPT_RETURN_IF_ERROR(store->activate_adapter(version.version));
  }
  report->store_seconds = seconds_since(store_start);
  return Status::OK();
}

void StoreImpl::count_new_hit() {
  if (options_.background_retrain.after_hits == 0) return;
  std::lock_guard<std::mutex> lock(background_mu_);
  if (++hits_since_retrain_ >= options_.background_retrain.after_hits) background_cv_.notify_all();
}

// Waits until enough hits arrived and the interval since the last start
// passed, then retrains through the public call like any caller. Searches and
// writes never wait for it: retrain() reads through RocksDB snapshots and takes
// the store's locks only to store and activate the version.
void StoreImpl::background_loop() {
  const BackgroundRetrain& config = options_.background_retrain;
  // Background work yields the CPU to the app's own threads (learn.h).
  // Raising a thread's nice value does not fail for lack of privilege; if it
  // failed the retrain would only run at the normal priority.
  setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), config.nice);
  RetrainOptions options = config.retrain;
  options.cancel = &cancel_background_;
  const auto interval = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(config.min_interval_seconds));
  std::unique_lock<std::mutex> lock(background_mu_);
  while (true) {
    background_cv_.wait(lock, [&] { return closing_ || hits_since_retrain_ >= config.after_hits; });
    if (retrained_) {
      background_cv_.wait_until(lock, last_retrain_start_ + interval, [&] { return closing_; });
    }
    if (closing_) return;
    hits_since_retrain_ = 0;
    retrained_ = true;
    last_retrain_start_ = std::chrono::steady_clock::now();
    lock.unlock();
    RetrainReport report;
    Status status = retrain(this, options, &report);
    if (config.on_retrain) config.on_retrain(status, report);
    lock.lock();
  }
}

}  // namespace embedapt
