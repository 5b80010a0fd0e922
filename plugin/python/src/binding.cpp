// embedapt._core: the Python binding, a thin layer over the library's calls.
//
// Every call that searches, writes, embeds, trains or evaluates releases the
// GIL, so Python threads run it in parallel (the Store is thread-safe: many
// readers and one serialized writer). A Status that is not ok becomes an
// embedapt.Error carrying its code and message.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdlib>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include "core/common/files.h"
#include "core/eval/dataset.h"
#include "core/eval/evaluator.h"
#include "core/eval/report.h"
#include "embedapt/adapter.h"
#include "embedapt/embedder.h"
#include "embedapt/learn.h"
#include "embedapt/store.h"

namespace py = pybind11;
using namespace embedapt;

namespace {

// A not-ok Status on its way to Python.
struct StatusError {
  Status status;
};

void check(const Status& s) {
  if (!s.ok()) throw StatusError{s};
}

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;

// Vectors from Python as float32 rows: `rows` vectors of `dim` floats at
// `data`, inside `array` (the caller's own when it was C-ordered float32,
// else a converted copy).
struct Vectors {
  FloatArray array;
  const float* data = nullptr;
  size_t rows = 0;
  size_t dim = 0;
};

// Every call that takes vectors checks them here: an array or a sequence of
// real numbers (integers and floats of any width), a `single` one as one
// 1-d vector, the others as an (n, dim) array, of the store's dimension.
// Complex numbers are refused: converting them dropped the imaginary part
// with only a warning, and (1+2j, 0, ...) was stored as (1, 0, ...).
Vectors vectors_of(const py::object& given, bool single, int store_dim, const char* what) {
  const py::array any = py::array::ensure(given);
  const char kind = any ? any.dtype().kind() : 'O';
  if (kind != 'f' && kind != 'i' && kind != 'u') {
    throw StatusError{
        Status::InvalidArgument(std::string(what) + ": expected real numbers, got " +
                                (any ? "an array of " + py::str(any.dtype()).cast<std::string>()
                                     : std::string("a value numpy makes no array of numbers from")))};
  }
  FloatArray a = FloatArray::ensure(any);
  if (a.ndim() != (single ? 1 : 2)) {
    throw StatusError{Status::InvalidArgument(std::string(what) + ": expected " +
                                              (single ? "a 1-d vector" : "an (n, dim) array") + ", got a " +
                                              std::to_string(a.ndim()) + "-d array")};
  }
  const size_t dim = static_cast<size_t>(a.shape(a.ndim() - 1));
  if (store_dim > 0 && dim != static_cast<size_t>(store_dim)) {
    throw StatusError{Status::InvalidArgument(std::string(what) + ": vectors have " + std::to_string(dim) +
                                              " dimensions; the store holds " + std::to_string(store_dim))};
  }
  const float* data = a.data();
  const size_t rows = single ? 1 : static_cast<size_t>(a.shape(0));
  return {std::move(a), data, rows, dim};
}

// Metadata and filters cross as Python dicts and reach the library as the
// JSON text it parses and checks (Record::metadata, Filter::parse): Python's
// json module writes it, so whatever it cannot write is refused here.
std::string to_json(const py::handle& value, const std::string& what) {
  try {
    return py::module_::import("json").attr("dumps")(value, py::arg("allow_nan") = false).cast<std::string>();
  } catch (py::error_already_set& e) {
    // The exception's own text: e.what() appends the Python traceback.
    throw StatusError{
        Status::InvalidArgument(what + ": not JSON: " + py::str(e.value()).cast<std::string>())};
  }
}

// A record's metadata as a dict ({} if it has none).
py::object metadata_dict(const std::string& json) {
  return json.empty() ? py::object(py::dict()) : py::module_::import("json").attr("loads")(json);
}

SearchOptions search_options(int k, const py::object& filter, int ef_search, int nprobe, bool ids_only) {
  SearchOptions options(k);
  if (!filter.is_none()) check(Filter::parse(to_json(filter, "filter"), &options.filter));
  options.ef_search = ef_search;
  options.nprobe = nprobe;
  options.ids_only = ids_only;
  return options;
}

// What an upsert writes: row i of `vectors` as record ids[i], with
// payloads[i] and metadata[i] (none given: empty ones; a None metadata: none).
std::vector<Record> to_records(const std::vector<std::string>& ids, const Vectors& vectors,
                               const std::vector<std::string>& payloads,
                               const std::vector<py::object>& metadata) {
  if (ids.size() != vectors.rows || (!payloads.empty() && payloads.size() != vectors.rows) ||
      (!metadata.empty() && metadata.size() != vectors.rows)) {
    throw StatusError{Status::InvalidArgument(
        "upsert: expected as many ids (and payloads and metadata, if any) as vectors; got " +
        std::to_string(ids.size()) + " ids, " + std::to_string(payloads.size()) + " payloads, " +
        std::to_string(metadata.size()) + " metadata, " + std::to_string(vectors.rows) + " vectors")};
  }
  std::vector<Record> records(vectors.rows);
  for (size_t i = 0; i < vectors.rows; ++i) {
    records[i].id = ids[i];
    records[i].vector.assign(vectors.data + i * vectors.dim, vectors.data + (i + 1) * vectors.dim);
    if (!payloads.empty()) records[i].payload = payloads[i];
    if (!metadata.empty() && !metadata[i].is_none())
      records[i].metadata = to_json(metadata[i], "metadata of " + ids[i]);
  }
  return records;
}

// Search results of one query: parallel lists, best first.
struct Results {
  std::vector<std::string> ids;
  std::vector<float> scores;
  std::vector<std::string> payloads;
  std::vector<std::string> metadata;
};

// A record id as Python text. The store takes any bytes as an id (bytes
// given from Python, an ids file): one that is not UTF-8 comes back with
// U+FFFD for its bad bytes, as `embedapt search --json` writes it, instead
// of a UnicodeDecodeError on every search that finds it.
py::str id_text(const std::string& id) {
  return py::reinterpret_steal<py::str>(
      PyUnicode_DecodeUTF8(id.data(), static_cast<py::ssize_t>(id.size()), "replace"));
}

py::list id_list(const std::vector<std::string>& ids) {
  py::list out;
  for (const std::string& id : ids) out.append(id_text(id));
  return out;
}

Results to_results(std::vector<Hit>&& hits) {
  Results r;
  for (Hit& h : hits) {
    r.ids.push_back(std::move(h.id));
    r.scores.push_back(h.score);
    r.payloads.push_back(std::move(h.payload));
    r.metadata.push_back(std::move(h.metadata));
  }
  return r;
}

py::dict adapter_dict(const AdapterVersion& v) {
  py::dict d;
  d["version"] = v.version;
  d["parent"] = v.parent;
  d["config"] = v.config_json;
  d["metrics"] = v.metrics_json;
  d["data_fingerprint"] = v.data_fingerprint;
  d["created_unix"] = v.created_unix;
  return d;
}

// The Python-side Store: the library's Store, closed explicitly or when collected.
class PyStore {
 public:
  static std::unique_ptr<PyStore> open(const std::string& path, int dim, const std::string& metric,
                                       const std::string& index, bool create_if_missing, bool sync_writes,
                                       bool trust_code) {
    Options options;
    options.dim = dim;
    check(ParseMetric(metric, &options.metric));
    options.index_spec = index;
    options.create_if_missing = create_if_missing;
    options.sync_writes = sync_writes;
    options.trust_code = trust_code;
    auto out = std::make_unique<PyStore>();
    out->path_ = path;
    py::gil_scoped_release release;
    check(Store::open(path, options, &out->store_));
    StoreStats stats;
    check(out->store_->stats(&stats));
    out->dim_ = stats.dim;
    return out;
  }

  // Runs fn(store) with the GIL released and the store held open: close()
  // waits for every call in flight (freeing the store under a search in
  // another thread crashed the process). FailedPrecondition once closed.
  template <typename Fn>
  auto with_store(Fn&& fn) const {
    py::gil_scoped_release release;
    std::shared_lock<std::shared_mutex> open(mu_);
    if (!store_) throw StatusError{Status::FailedPrecondition(path_ + ": the store is closed")};
    return fn(*store_);
  }
  const std::string& path() const { return path_; }
  int dim() const { return dim_; }

  void close() {
    py::gil_scoped_release release;
    std::unique_lock<std::shared_mutex> closing(mu_);
    store_.reset();
  }

  void upsert(const std::string& id, const py::object& vector, const py::bytes& payload,
              const py::object& metadata) {
    write(to_records({id}, vectors_of(vector, true, dim_, "upsert"), {payload}, {metadata}));
  }

  void upsert_batch(const std::vector<std::string>& ids, const py::object& vectors,
                    const std::vector<py::bytes>& payloads, const std::vector<py::object>& metadata) {
    write(to_records(ids, vectors_of(vectors, false, dim_, "upsert_batch"),
                     std::vector<std::string>(payloads.begin(), payloads.end()), metadata));
  }

  uint64_t remove_matching(const py::object& filter) {
    Filter parsed;
    check(Filter::parse(to_json(filter, "filter"), &parsed));
    uint64_t removed = 0;
    with_store([&](Store& s) { check(s.remove_matching(parsed, &removed)); });
    return removed;
  }

  void remove(const std::string& id) {
    with_store([&](Store& s) { check(s.remove(id)); });
  }

  py::tuple get(const std::string& id) const {
    Record record;
    with_store([&](Store& s) { check(s.get(id, &record)); });
    FloatArray vector(static_cast<py::ssize_t>(record.vector.size()));
    std::copy(record.vector.begin(), record.vector.end(), vector.mutable_data());
    return py::make_tuple(vector, py::bytes(record.payload), metadata_dict(record.metadata));
  }

  Results search(const py::object& query, int k, const py::object& filter, int ef_search, int nprobe,
                 bool ids_only) const {
    const Vectors q = vectors_of(query, true, dim_, "search");
    const SearchOptions options = search_options(k, filter, ef_search, nprobe, ids_only);
    std::vector<Hit> hits;
    with_store([&](Store& s) { check(s.search(q.data, q.dim, options, &hits)); });
    return to_results(std::move(hits));
  }

  std::vector<Results> search_batch(const py::object& queries, int k, const py::object& filter, int ef_search,
                                    int nprobe, bool ids_only) const {
    const Vectors q = vectors_of(queries, false, dim_, "search_batch");
    const SearchOptions options = search_options(k, filter, ef_search, nprobe, ids_only);
    std::vector<std::vector<Hit>> hits;
    with_store([&](Store& s) { check(s.search_batch(q.data, q.rows, options, &hits)); });
    std::vector<Results> out;
    for (auto& h : hits) out.push_back(to_results(std::move(h)));
    return out;
  }

  // Every record's id, payload and metadata, in id order (vectors left out: get() has them).
  py::list records() const {
    std::vector<Record> rows;
    with_store([&](Store& s) {
      check(s.scan([&](const Record& r) {
        rows.push_back({r.id, {}, r.payload, r.metadata});
        return true;
      }));
    });
    py::list out;
    for (const Record& r : rows)
      out.append(py::make_tuple(id_text(r.id), py::bytes(r.payload), metadata_dict(r.metadata)));
    return out;
  }

  uint64_t log_query(const py::object& query, const std::vector<std::string>& result_ids) {
    const Vectors q = vectors_of(query, true, dim_, "log_query");
    uint64_t id = 0;
    with_store([&](Store& s) { check(s.log_query(q.data, q.dim, result_ids, &id)); });
    return id;
  }

  void log_hit(uint64_t query_id, const std::string& doc_id) {
    with_store([&](Store& s) { check(s.log_hit(query_id, doc_id)); });
  }

  py::list adapters() const {
    std::vector<AdapterVersion> versions;
    with_store([&](Store& s) { check(s.list_adapters(&versions)); });
    py::list out;
    for (const auto& v : versions) out.append(adapter_dict(v));
    return out;
  }

  void activate(uint64_t version) {
    with_store([&](Store& s) { check(s.activate_adapter(version)); });
  }

  void rollback() {
    with_store([&](Store& s) { check(s.rollback_adapter()); });
  }

  void export_adapter(uint64_t version, const std::string& dir) const {
    AdapterVersion v;
    with_store([&](Store& s) { check(s.get_adapter(version, &v)); });
    py::gil_scoped_release release;
    check(write_adapter_dir(dir, v.config_json, v.weights));
  }

  uint64_t import_adapter(const std::string& dir, bool trust_code) {
    uint64_t version = 0;
    with_store([&](Store& s) { check(import_adapter_dir(&s, dir, trust_code, &version)); });
    return version;
  }

  py::dict stats() const {
    StoreStats st;
    with_store([&](Store& s) { check(s.stats(&st)); });
    py::dict d;
    d["count"] = st.count;
    d["dim"] = st.dim;
    d["metric"] = MetricName(st.metric);
    d["index"] = st.index_spec;
    d["journal_seq"] = st.journal_seq;
    d["snapshot_seq"] = st.snapshot_seq;
    d["disk_bytes"] = st.disk_bytes;
    d["active_adapter"] = st.active_adapter;
    d["adapter_versions"] = st.adapter_versions;
    d["logged_queries"] = st.logged_queries;
    d["logged_hits"] = st.logged_hits;
    d["embedder"] = st.embedder;
    d["recovery"] = st.recovery;
    return d;
  }

  RetrainReport retrain(const std::string& kind, const std::string& side, int hidden, int epochs, double lr,
                        const std::string& loss, int folds, uint64_t seed, int threads,
                        const std::string& checkpoint_dir, int checkpoint_every, bool resume,
                        const std::string& activate, const py::bytes& torchscript_archive, bool trust_code) {
    RetrainOptions options;
    options.kind = kind;
    if (side == "query" || side == "both") {
      options.side = side == "both" ? AdapterSide::kBoth : AdapterSide::kQuery;
    } else {
      throw StatusError{
          Status::InvalidArgument("retrain: side must be \"query\" or \"both\", got \"" + side + "\"")};
    }
    if (activate == "never") {
      options.activate = ActivationPolicy::kNever;
    } else if (activate == "if-better") {
      options.activate = ActivationPolicy::kIfBetter;
    } else if (activate == "always") {
      options.activate = ActivationPolicy::kAlways;
    } else {
      throw StatusError{Status::InvalidArgument(
          "retrain: activate must be \"never\", \"if-better\" or \"always\", got \"" + activate + "\"")};
    }
    options.hidden = hidden;
    options.epochs = epochs;
    options.lr = lr;
    options.loss = loss;
    options.folds = folds;
    options.seed = seed;
    options.threads = threads;
    options.checkpoint_dir = checkpoint_dir;
    options.checkpoint_every = checkpoint_every;
    options.resume = resume;
    options.torchscript_archive = torchscript_archive;
    options.trust_code = trust_code;
    RetrainReport report;
    with_store([&](Store& s) { check(embedapt::retrain(&s, options, &report)); });
    return report;
  }

  void set_embedder(const std::string& identity) {
    with_store([&](Store& s) { check(s.set_embedder(identity)); });
  }

  void verify() const {
    with_store([&](Store& s) { check(s.verify()); });
  }

  void flush() {
    with_store([&](Store& s) { check(s.flush()); });
  }

 private:
  void write(const std::vector<Record>& records) {
    with_store([&](Store& s) { check(s.upsert_batch(records)); });
  }

  std::string path_;
  int dim_ = 0;
  mutable std::shared_mutex mu_;  // shared by calls in flight, exclusive to close()
  std::unique_ptr<Store> store_;
};

class PyEmbedder {
 public:
  PyEmbedder(const std::string& spec, const std::string& cache_dir, bool use_cache,
             const std::string& models_dir, int threads, double timeout) {
    EmbedderOptions options;
    // As the CLI's --timeout: each request of a command: or openai: embedder
    // (0 leaves their defaults).
    if (timeout != 0) check(set_request_timeout(timeout, &options).WithContext("timeout"));
    options.cache_dir = cache_dir;
    options.use_cache = use_cache;
    options.models_dir = models_dir;
    const char* env = std::getenv("EMBEDAPT_MODELS_DIR");
    if (models_dir.empty() && (env == nullptr || *env == '\0')) options.models_dir = EMBEDAPT_REPO_MODELS;
    options.threads = threads;
    py::gil_scoped_release release;
    check(make_embedder(spec, options, &embedder_));
  }

  int dim() const { return embedder_->dim(); }
  const std::string& identity() const { return embedder_->identity(); }
  Embedder& get() { return *embedder_; }

  FloatArray embed(const std::vector<std::string>& texts, bool query) {
    std::vector<float> out;
    {
      py::gil_scoped_release release;
      // An embedder is not promised to be thread-safe; Python threads take turns.
      std::lock_guard<std::mutex> lock(mu_);
      out.reserve(texts.size() * static_cast<size_t>(embedder_->dim()));
      check(embedder_->embed(texts, query ? EmbedSide::kQuery : EmbedSide::kDocument, &out));
    }
    FloatArray array({static_cast<py::ssize_t>(texts.size()), static_cast<py::ssize_t>(embedder_->dim())});
    std::copy(out.begin(), out.end(), array.mutable_data());
    return array;
  }

  std::mutex& mutex() { return mu_; }

 private:
  std::mutex mu_;
  std::unique_ptr<Embedder> embedder_;
};

py::dict result_dict(const SystemResult& r) {
  const Curve curve = rank_curve(r);
  py::dict d;
  d["name"] = r.name;
  d["adapter"] = r.source.empty() ? py::object(py::none()) : py::object(py::str(r.source));
  d["n_queries"] = r.queries.size();
  d["top_k"] = r.top_k;
  d["hit_rate"] = r.hit_rate;
  d["mrr"] = r.mrr;
  d["ndcg@10"] = r.ndcg_at_10;
  d["recall@10"] = r.recall_at_10;
  d["hit_rate_ci95"] = py::make_tuple(r.hit_rate_ci95.lo, r.hit_rate_ci95.hi);
  d["mrr_ci95"] = py::make_tuple(r.mrr_ci95.lo, r.mrr_ci95.hi);
  d["hit_at_k"] = curve.hit;
  d["mrr_at_k"] = curve.mrr;
  return d;
}

py::dict evaluate_store(const PyStore& store, const std::string& dataset_path, PyEmbedder& embedder,
                        const std::vector<std::string>& adapters, int top_k, uint64_t seed, bool trust_code,
                        const std::string& html, const std::string& json) {
  EvalReport report;
  store.with_store([&](const Store& opened) {
    QaDataset dataset;
    check(read_dataset(dataset_path, &dataset));
    std::vector<EvalSystem> systems;
    for (const std::string& spec : adapters) {
      EvalSystem system;
      Status s = load_eval_system(opened, spec, embedder.identity(), trust_code, &system);
      check(s.WithContext("adapter " + spec));
      systems.push_back(std::move(system));
    }
    EvalOptions options;
    options.top_k = top_k;
    options.seed = seed;
    std::lock_guard<std::mutex> lock(embedder.mutex());
    check(evaluate(opened, embedder.get(), dataset, systems, options, &report));
    if (!html.empty()) {
      check(write_file_atomic(html,
                              report_html(report, "embedapt eval: " + store.path() + " on " + dataset_path)));
    }
    if (!json.empty()) check(write_file_atomic(json, report_json(report)));
  });
  py::list results, comparisons;
  for (const SystemResult& r : report.results) results.append(result_dict(r));
  for (const Comparison& c : report.comparisons) {
    py::dict d;
    d["a"] = c.a;
    d["b"] = c.b;
    d["metric"] = c.metric;
    d["delta"] = c.delta;
    d["p_value"] = c.p_value;
    comparisons.append(d);
  }
  py::dict out;
  out["results"] = results;
  out["comparisons"] = comparisons;
  out["unanswerable_queries"] = report.unanswerable_queries;
  return out;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "embedapt's native core (use the embedapt package, which re-exports it)";

  py::enum_<Code>(m, "Code")
      .value("OK", Code::kOk)
      .value("INVALID_ARGUMENT", Code::kInvalidArgument)
      .value("NOT_FOUND", Code::kNotFound)
      .value("CORRUPTION", Code::kCorruption)
      .value("IO_ERROR", Code::kIOError)
      .value("BUSY", Code::kBusy)
      .value("NOT_SUPPORTED", Code::kNotSupported)
      .value("FAILED_PRECONDITION", Code::kFailedPrecondition)
      .value("UNAVAILABLE", Code::kUnavailable)
      .value("INTERNAL", Code::kInternal);

  // embedapt.Error(message) with .code (a Code) and .message; str() is "CodeName: message".
  static PyObject* error = PyErr_NewException("embedapt.Error", PyExc_Exception, nullptr);
  m.attr("Error") = py::handle(error);
  // What a record's metadata may hold (embedapt/store.h): the LlamaIndex
  // integration keeps what does not fit in the payload only.
  m.attr("MAX_METADATA_BYTES") = kMaxMetadataBytes;
  m.attr("MAX_METADATA_FIELDS") = kMaxMetadataFields;
  m.attr("MAX_METADATA_FIELD_BYTES") = kMaxMetadataFieldBytes;
  m.attr("MAX_METADATA_LIST_ITEMS") = kMaxMetadataListItems;
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const StatusError& e) {
      py::object instance = py::handle(error)(e.status.ToString());
      instance.attr("code") = py::cast(e.status.code());
      instance.attr("message") = e.status.message();
      PyErr_SetObject(error, instance.ptr());
    }
  });

  py::class_<Results>(m, "Results")
      .def_property_readonly("ids", [](const Results& r) { return id_list(r.ids); })
      .def_property_readonly("scores",
                             [](const Results& r) {
                               FloatArray a(static_cast<py::ssize_t>(r.scores.size()));
                               std::copy(r.scores.begin(), r.scores.end(), a.mutable_data());
                               return a;
                             })
      .def_property_readonly("payloads",
                             [](const Results& r) {
                               py::list out;
                               for (const auto& p : r.payloads) out.append(py::bytes(p));
                               return out;
                             })
      .def_property_readonly("metadata",
                             [](const Results& r) {
                               py::list out;
                               for (const auto& m : r.metadata) out.append(metadata_dict(m));
                               return out;
                             })
      .def("__len__", [](const Results& r) { return r.ids.size(); });

  const RetrainOptions retrain_defaults;
  py::class_<RetrainScore>(m, "RetrainScore")
      .def_readonly("hit", &RetrainScore::hit)
      .def_readonly("mrr", &RetrainScore::mrr)
      .def_readonly("rr", &RetrainScore::rr)
      .def("__repr__", [](const RetrainScore& s) {
        return "RetrainScore(hit=" + std::to_string(s.hit) + ", mrr=" + std::to_string(s.mrr) +
               ", rr=" + std::to_string(s.rr) + ")";
      });

  py::class_<RetrainReport>(m, "RetrainReport")
      .def_property_readonly("decision", [](const RetrainReport& r) { return DecisionName(r.decision); })
      .def_readonly("version", &RetrainReport::version)
      .def_readonly("previous_active", &RetrainReport::previous_active)
      .def_readonly("queries", &RetrainReport::queries)
      .def_readonly("pairs", &RetrainReport::pairs)
      .def_readonly("dropped_hits", &RetrainReport::dropped_hits)
      .def_readonly("folds", &RetrainReport::folds)
      .def_readonly("top_k", &RetrainReport::top_k)
      .def_readonly("base", &RetrainReport::base)
      .def_readonly("adapter", &RetrainReport::adapter)
      .def_readonly("incumbent", &RetrainReport::incumbent)
      .def_property_readonly("hit_gain", [](const RetrainReport& r) { return r.hit_gain.mean; })
      .def_property_readonly(
          "hit_gain_ci95",
          [](const RetrainReport& r) { return py::make_tuple(r.hit_gain.low, r.hit_gain.high); })
      .def_property_readonly("rr_gain", [](const RetrainReport& r) { return r.rr_gain.mean; })
      .def_property_readonly(
          "rr_gain_ci95",
          [](const RetrainReport& r) { return py::make_tuple(r.rr_gain.low, r.rr_gain.high); })
      .def_property_readonly("log_rank_gain", [](const RetrainReport& r) { return r.log_rank_gain.mean; })
      .def_property_readonly(
          "log_rank_gain_ci95",
          [](const RetrainReport& r) { return py::make_tuple(r.log_rank_gain.low, r.log_rank_gain.high); })
      .def_readonly("gain_z", &RetrainReport::gain_z)
      .def_readonly("min_gain_z", &RetrainReport::min_gain_z)
      .def_readonly("summary", &RetrainReport::summary)
      .def_readonly("epochs_run", &RetrainReport::epochs_run)
      .def_readonly("read_seconds", &RetrainReport::read_seconds)
      .def_readonly("train_seconds", &RetrainReport::train_seconds)
      .def_readonly("store_seconds", &RetrainReport::store_seconds)
      .def("__repr__", [](const RetrainReport& r) {
        return std::string("RetrainReport(decision=") + DecisionName(r.decision) +
               ", version=" + std::to_string(r.version) + ", hit_gain=" + std::to_string(r.hit_gain.mean) +
               ")";
      });

  py::class_<PyStore>(m, "Store")
      .def_static("open", &PyStore::open, py::arg("path"), py::kw_only(), py::arg("dim") = 0,
                  py::arg("metric") = "cosine", py::arg("index") = "Flat",
                  py::arg("create_if_missing") = true, py::arg("sync_writes") = false,
                  py::arg("trust_code") = false)
      .def_property_readonly("path", &PyStore::path)
      .def_property_readonly("dim", &PyStore::dim)
      .def("close", &PyStore::close)
      .def(
          "__enter__", [](PyStore& s) -> PyStore& { return s; }, py::return_value_policy::reference)
      .def("__exit__", [](PyStore& s, const py::args&) { s.close(); })
      .def("upsert", &PyStore::upsert, py::arg("id"), py::arg("vector"), py::arg("payload") = py::bytes(),
           py::arg("metadata") = py::none())
      .def("upsert_batch", &PyStore::upsert_batch, py::arg("ids"), py::arg("vectors"),
           py::arg("payloads") = std::vector<py::bytes>(), py::arg("metadata") = std::vector<py::object>())
      .def("remove", &PyStore::remove, py::arg("id"))
      .def("remove_matching", &PyStore::remove_matching, py::arg("filter"))
      .def("get", &PyStore::get, py::arg("id"))
      .def("search", &PyStore::search, py::arg("query"), py::arg("k") = 10, py::arg("filter") = py::none(),
           py::kw_only(), py::arg("ef_search") = 0, py::arg("nprobe") = 0, py::arg("ids_only") = false)
      .def("search_batch", &PyStore::search_batch, py::arg("queries"), py::arg("k") = 10,
           py::arg("filter") = py::none(), py::kw_only(), py::arg("ef_search") = 0, py::arg("nprobe") = 0,
           py::arg("ids_only") = false)
      .def("records", &PyStore::records)
      .def("log_query", &PyStore::log_query, py::arg("query"), py::arg("result_ids"))
      .def("log_hit", &PyStore::log_hit, py::arg("query_id"), py::arg("doc_id"))
      .def("adapters", &PyStore::adapters)
      .def("activate", &PyStore::activate, py::arg("version"))
      .def("rollback", &PyStore::rollback)
      .def("export_adapter", &PyStore::export_adapter, py::arg("version"), py::arg("dir"))
      .def("import_adapter", &PyStore::import_adapter, py::arg("dir"), py::arg("trust_code") = false)
      // The library's defaults (RetrainOptions), except `activate`, spelled as in the CLI.
      .def("retrain", &PyStore::retrain, py::kw_only(), py::arg("kind") = retrain_defaults.kind,
           py::arg("side") = "query", py::arg("hidden") = retrain_defaults.hidden,
           py::arg("epochs") = retrain_defaults.epochs, py::arg("lr") = retrain_defaults.lr,
           py::arg("loss") = retrain_defaults.loss, py::arg("folds") = retrain_defaults.folds,
           py::arg("seed") = retrain_defaults.seed, py::arg("threads") = retrain_defaults.threads,
           py::arg("checkpoint_dir") = retrain_defaults.checkpoint_dir,
           py::arg("checkpoint_every") = retrain_defaults.checkpoint_every,
           py::arg("resume") = retrain_defaults.resume, py::arg("activate") = "if-better",
           py::arg("torchscript_archive") = py::bytes(), py::arg("trust_code") = retrain_defaults.trust_code)
      .def("set_embedder", &PyStore::set_embedder, py::arg("identity"))
      .def("stats", &PyStore::stats)
      .def("verify", &PyStore::verify)
      .def("flush", &PyStore::flush);

  py::class_<PyEmbedder>(m, "Embedder")
      .def(py::init<const std::string&, const std::string&, bool, const std::string&, int, double>(),
           py::arg("spec"), py::kw_only(), py::arg("cache_dir") = "", py::arg("use_cache") = true,
           py::arg("models_dir") = "", py::arg("threads") = 0, py::arg("timeout") = 0.0)
      .def_property_readonly("dim", &PyEmbedder::dim)
      .def_property_readonly("identity", &PyEmbedder::identity)
      .def("embed", &PyEmbedder::embed, py::arg("texts"), py::kw_only(), py::arg("query") = false);

  m.def("evaluate", &evaluate_store, py::arg("store"), py::arg("dataset"), py::arg("embedder"), py::kw_only(),
        py::arg("adapters") = std::vector<std::string>(), py::arg("top_k") = 5, py::arg("seed") = 0,
        py::arg("trust_code") = false, py::arg("html") = "", py::arg("json") = "");
}
