#include "core/milvus/client.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <thread>
#include <unordered_set>

#include "core/common/http.h"
#include "core/common/json.h"
#include "core/common/utf8.h"

namespace embedapt {
namespace {

using nlohmann::json;

// Loopback and cluster alike: a request may wait on a segment load or a
// compaction, so an attempt gets the collection's timeout_seconds (60 s by
// default) and there are 4; a server that never answers fails after
// 4 x timeout plus at most 3.5 s of backoff: about 4 minutes by default.
RetryPolicy milvus_retry(double timeout_seconds) {
  RetryPolicy policy;
  policy.max_attempts = 4;
  policy.timeout_seconds = timeout_seconds;
  return policy;
}

// Protocol-buffer encoding of the few messages sent over gRPC, written by
// hand: field numbers from Milvus's milvus.proto, schema.proto, common.proto.
void put_varint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}
void put_varint_field(std::string* out, int field, uint64_t v) {
  put_varint(out, uint64_t(field) << 3);  // wire type 0
  put_varint(out, v);
}
void put_bytes_field(std::string* out, int field, std::string_view bytes) {
  put_varint(out, (uint64_t(field) << 3) | 2);  // wire type 2
  put_varint(out, bytes.size());
  out->append(bytes);
}
std::string key_value(const std::string& key, const std::string& value) {  // common.KeyValuePair
  std::string kv;
  put_bytes_field(&kv, 1, key);
  put_bytes_field(&kv, 2, value);
  return kv;
}

bool get_varint(std::string_view* in, uint64_t* v) {
  *v = 0;
  for (int shift = 0; shift < 64 && !in->empty(); shift += 7) {
    auto byte = static_cast<unsigned char>(in->front());
    in->remove_prefix(1);
    *v |= uint64_t(byte & 0x7f) << shift;
    if (!(byte & 0x80)) return true;
  }
  return false;
}

// Reads a common.Status: error_code (1), reason (2), code (3); other fields skipped.
bool parse_status(std::string_view in, uint64_t* error_code, uint64_t* code, std::string* reason) {
  *error_code = *code = 0;
  while (!in.empty()) {
    uint64_t tag = 0, v = 0;
    if (!get_varint(&in, &tag)) return false;
    switch (tag & 7) {
      case 0:
        if (!get_varint(&in, &v)) return false;
        if ((tag >> 3) == 1) *error_code = v;
        if ((tag >> 3) == 3) *code = v;
        break;
      case 2:
        if (!get_varint(&in, &v) || v > in.size()) return false;
        if ((tag >> 3) == 2) reason->assign(in.substr(0, v));
        in.remove_prefix(v);
        break;
      default:
        return false;  // no fixed-width fields in the messages read here
    }
  }
  return true;
}

// A Milvus expression string literal.
std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out + "\"";
}

// Server answers are read through these, never with at(), value() or get<>
// on a field whose type was not checked: those throw, and a throw in a
// MilvusView search worker thread ends the process.
const json* field(const json& object, const char* key) {
  if (!object.is_object()) return nullptr;
  auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

const std::string* string_field(const json& object, const char* key) {
  const json* v = field(object, key);
  return v != nullptr && v->is_string() ? &v->get_ref<const std::string&>() : nullptr;
}

// Milvus writes Int64 fields as numbers, or as strings when they exceed 2^53.
bool as_u64(const json* v, uint64_t* out) {
  if (v == nullptr) return false;
  if (v->is_number_unsigned()) {
    *out = v->get<uint64_t>();
    return true;
  }
  if (!v->is_string()) return false;
  const std::string& text = v->get_ref<const std::string&>();
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return !text.empty() && error == std::errc() && end == text.data() + text.size();
}

json vector_json(const float* v, int dim) { return json(std::vector<float>(v, v + dim)); }

}  // namespace

const char* MilvusIndexName(MilvusIndex index) {
  switch (index) {
    case MilvusIndex::kFlat:
      return "FLAT";
    case MilvusIndex::kHnsw:
      return "HNSW";
    case MilvusIndex::kIvf:
      return "IVF";
  }
  return "?";
}

Status ParseMilvusIndex(std::string_view name, MilvusIndex* out) {
  for (MilvusIndex index : {MilvusIndex::kFlat, MilvusIndex::kHnsw, MilvusIndex::kIvf}) {
    if (name == MilvusIndexName(index)) {
      *out = index;
      return Status::OK();
    }
  }
  return Status::InvalidArgument("unknown Milvus index type '" + std::string(name) + "' (FLAT, HNSW or IVF)");
}

std::string sync_cursor_name(const MilvusCollection& collection) {
  std::string address = collection.uri;
  while (!address.empty() && address.back() == '/') address.pop_back();
  const size_t scheme = address.find("://");
  if (scheme != std::string::npos) {
    const size_t host = scheme + 3;
    const size_t path = address.find('/', host);
    const size_t at = address.rfind('@', path);
    if (at != std::string::npos && at >= host) address.erase(host, at + 1 - host);
  }
  return "milvus " + address + " " + collection.name;
}

std::string legacy_sync_cursor_name(const MilvusCollection& collection) {
  std::string uri = collection.uri;
  while (!uri.empty() && uri.back() == '/') uri.pop_back();
  return "milvus " + uri + " " + collection.name;
}

Status get_sync_cursor(const Store& store, const MilvusCollection& collection, JournalCursor* out) {
  Status found = store.get_cursor(sync_cursor_name(collection), out);
  const std::string legacy = legacy_sync_cursor_name(collection);
  if (found.code() != Code::kNotFound || legacy == sync_cursor_name(collection)) return found;
  return store.get_cursor(legacy, out);
}

std::string encode_sync_state(const MilvusSyncState& state) {
  return json{{"index", MilvusIndexName(state.index)},
              {"doc_adapter", state.doc_adapter},
              {"complete", state.complete}}
      .dump();
}

bool parse_sync_state(const std::string& bytes, MilvusSyncState* out) {
  json state = json::parse(bytes, nullptr, /*allow_exceptions=*/false);
  if (!state.is_object() || !state.contains("index") || !state["index"].is_string() ||
      !state.contains("doc_adapter") || !state["doc_adapter"].is_number_unsigned() ||
      !state.contains("complete") || !state["complete"].is_boolean()) {
    return false;
  }
  out->doc_adapter = state["doc_adapter"].get<uint64_t>();
  out->complete = state["complete"].get<bool>();
  return ParseMilvusIndex(state["index"].get<std::string>(), &out->index).ok();
}

const char* milvus_metric(Metric metric) { return metric == Metric::kL2 ? "L2" : "IP"; }

Status to_collection_space(const Adapter* adapter, Metric metric, const float* in, size_t n, int in_dim,
                           std::vector<float>* out) {
  int dim = in_dim;
  if (adapter != nullptr) {
    dim = adapter->out_dim();
    out->resize(n * size_t(dim));
    EMBEDAPT_RETURN_IF_ERROR(adapter->apply(in, n, out->data()));
  } else {
    out->assign(in, in + n * size_t(dim));
  }
  if (metric != Metric::kCosine) return Status::OK();
  for (size_t i = 0; i < n; ++i) {
    float* v = out->data() + i * size_t(dim);
    double norm = 0;
    for (int j = 0; j < dim; ++j) norm += double(v[j]) * v[j];
    if (norm > 0) {
      const float scale = float(1.0 / std::sqrt(norm));
      for (int j = 0; j < dim; ++j) v[j] *= scale;
    }
  }
  return Status::OK();
}

Status MilvusClient::make(const MilvusCollection& collection, MilvusClient* out) {
  const std::string& uri = collection.uri;
  if (uri.rfind("http://", 0) != 0 && uri.rfind("https://", 0) != 0) {
    return Status::InvalidArgument("Milvus URI '" + printable_url(uri) +
                                   "' must start with http:// or https://");
  }
  // Without a host curl fails only after every retry ("Could not resolve host").
  const size_t host = uri.find("://") + 3;
  const size_t at = uri.find('@', host);
  const size_t authority_end = uri.find('/', host);
  const size_t host_begin = at != std::string::npos && at < authority_end ? at + 1 : host;
  if (host_begin == uri.size() || uri[host_begin] == '/' || uri[host_begin] == ':') {
    return Status::InvalidArgument("Milvus URI '" + printable_url(uri) + "' names no host");
  }
  // The client appends each request's path to the URI.
  if (uri.find_first_of("?#") != std::string::npos) {
    return Status::InvalidArgument("Milvus URI '" + printable_url(uri) + "': no query string or fragment");
  }
  const std::string timeout = timeout_problem(collection.timeout_seconds);
  if (!timeout.empty()) return Status::InvalidArgument("Milvus timeout: " + timeout);
  const std::string& name = collection.name;
  bool valid = !name.empty() && name.size() <= 255 && !std::isdigit(static_cast<unsigned char>(name[0]));
  for (char c : name) valid = valid && (std::isalnum(static_cast<unsigned char>(c)) || c == '_');
  if (!valid) {
    return Status::InvalidArgument("Milvus collection name '" + name +
                                   "': use letters, digits and '_', not starting with a digit");
  }
  out->collection_ = collection;
  while (!out->collection_.uri.empty() && out->collection_.uri.back() == '/') out->collection_.uri.pop_back();
  return Status::OK();
}

Status MilvusClient::rest(const std::string& path, const std::string& body, std::string* data) const {
  HttpRequest request;
  request.url = collection_.uri + "/v1/vector/" + path;
  request.method = body.empty() ? "GET" : "POST";
  request.body = body;
  request.headers = {"Content-Type: application/json", "Accept: application/json"};
  HttpResponse response;
  EMBEDAPT_RETURN_IF_ERROR(http_send(request, milvus_retry(collection_.timeout_seconds), &response));
  const std::string where = "Milvus " + path + " (" + collection_.name + ")";
  if (response.status != 200) {
    return Status::Unavailable(where + ": HTTP " + std::to_string(response.status) + ": " +
                               quotable(response.body));
  }
  // Depth-bounded: a message or data nested deeper would overflow the stack
  // in the dump()s below.
  json answer;
  if (!parse_json(response.body, where, &answer).ok()) answer = nullptr;
  const json* code = field(answer, "code");
  if (code == nullptr || !code->is_number_integer()) {
    return Status::Unavailable(where + ": unexpected answer: " + quotable(response.body));
  }
  if (*code != 200) {
    const json* message = field(answer, "message");
    const std::string text = message == nullptr ? ""
                             : message->is_string()
                                 ? message->get_ref<const std::string&>()
                                 : message->dump(-1, ' ', false, json::error_handler_t::replace);
    // Milvus's "collection not found" (code 100) is the one callers act on.
    if (*code == 100) return Status::NotFound(where + ": " + quotable(text));
    return Status::Unavailable(where + ": code " + code->dump() + ": " + quotable(text));
  }
  const json* answer_data = field(answer, "data");
  *data = answer_data ? answer_data->dump(-1, ' ', false, json::error_handler_t::replace) : "null";
  return Status::OK();
}

Status MilvusClient::grpc(const std::string& method, const std::string& request) const {
  HttpRequest http;
  http.url = collection_.uri + "/milvus.proto.milvus.MilvusService/" + method;
  http.http2 = true;
  http.headers = {"Content-Type: application/grpc", "TE: trailers"};
  http.body.push_back('\0');  // not compressed
  for (int shift = 24; shift >= 0; shift -= 8)
    http.body.push_back(static_cast<char>((request.size() >> shift) & 0xff));
  http.body += request;
  HttpResponse response;
  EMBEDAPT_RETURN_IF_ERROR(http_send(http, milvus_retry(collection_.timeout_seconds), &response));
  const std::string where = "Milvus " + method + " (" + collection_.name + ")";
  auto grpc_status = response.headers.find("grpc-status");
  if (response.status != 200 || grpc_status == response.headers.end()) {
    return Status::Unavailable(where + ": not a gRPC answer (HTTP " + std::to_string(response.status) + ")");
  }
  if (grpc_status->second != "0") {
    return Status::Unavailable(where + ": gRPC status " + grpc_status->second + ": " +
                               response.headers["grpc-message"]);
  }
  if (response.body.size() < 5) return Status::Unavailable(where + ": empty gRPC answer");
  uint64_t error_code = 0, code = 0;
  std::string reason;
  if (!parse_status(std::string_view(response.body).substr(5), &error_code, &code, &reason)) {
    return Status::Unavailable(where + ": malformed status");
  }
  if (error_code != 0 || code != 0) return Status::Unavailable(where + ": " + reason);
  return Status::OK();
}

Status MilvusClient::exists(bool* out) const {
  std::string data;
  Status s = rest("collections/describe?collectionName=" + collection_.name, "", &data);
  *out = s.ok();
  return s.code() == Code::kNotFound ? Status::OK() : s;
}

Status MilvusClient::drop() const {
  std::string data;
  Status s = rest("collections/drop", json{{"collectionName", collection_.name}}.dump(), &data);
  return s.code() == Code::kNotFound ? Status::OK() : s;
}

Status MilvusClient::create(int dim, const std::string& metric, MilvusIndex index, int shards, int replicas,
                            uint64_t rows_hint) const {
  // schema.DataType: Int64 = 5, VarChar = 21, FloatVector = 101.
  auto field = [](const std::string& name, int type, bool primary, const std::string& param_key,
                  const std::string& param_value) {
    std::string f;
    put_bytes_field(&f, 2, name);
    if (primary) put_varint_field(&f, 3, 1);
    put_varint_field(&f, 5, type);
    if (!param_key.empty()) put_bytes_field(&f, 6, key_value(param_key, param_value));
    return f;
  };
  std::string schema;
  put_bytes_field(&schema, 1, collection_.name);
  put_bytes_field(&schema, 4, field("id", 21, true, "max_length", std::to_string(kMaxIdBytes)));
  put_bytes_field(&schema, 4, field("version", 5, false, "", ""));
  put_bytes_field(&schema, 4, field("vector", 101, false, "dim", std::to_string(dim)));

  std::string create;
  put_bytes_field(&create, 3, collection_.name);
  put_bytes_field(&create, 4, schema);
  put_varint_field(&create, 5, static_cast<uint64_t>(shards));
  // ConsistencyLevel Strong for gRPC clients; REST searches are bounded whatever it says.
  put_varint_field(&create, 6, 0);
  EMBEDAPT_RETURN_IF_ERROR(grpc("CreateCollection", create));

  std::string type = "FLAT";
  json params = json::object();
  if (index == MilvusIndex::kHnsw) {
    type = "HNSW";
    params = {{"M", 32}, {"efConstruction", 200}};
  } else if (index == MilvusIndex::kIvf) {
    type = "IVF_FLAT";
    params = {{"nlist", std::clamp<uint64_t>(uint64_t(4 * std::sqrt(double(rows_hint))), 1, 65536)}};
  }
  std::string create_index;
  put_bytes_field(&create_index, 3, collection_.name);
  put_bytes_field(&create_index, 4, "vector");
  put_bytes_field(&create_index, 5, key_value("index_type", type));
  put_bytes_field(&create_index, 5, key_value("metric_type", metric));
  put_bytes_field(&create_index, 5, key_value("params", params.dump()));
  put_bytes_field(&create_index, 6, "vector");
  EMBEDAPT_RETURN_IF_ERROR(grpc("CreateIndex", create_index));

  std::string load;
  put_bytes_field(&load, 3, collection_.name);
  put_varint_field(&load, 4, static_cast<uint64_t>(replicas));
  EMBEDAPT_RETURN_IF_ERROR(grpc("LoadCollection", load));

  // Loading is asynchronous; an empty collection loads in about a second.
  for (int attempt = 0; attempt < 600; ++attempt) {
    std::string data;
    EMBEDAPT_RETURN_IF_ERROR(rest("collections/describe?collectionName=" + collection_.name, "", &data));
    const json described = json::parse(data, nullptr, false);
    const std::string* load = string_field(described, "load");
    if (load != nullptr && *load == "LoadStateLoaded") return Status::OK();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return Status::Unavailable("Milvus collection " + collection_.name + " did not load within 2 minutes");
}

Status MilvusClient::upsert(const std::vector<MilvusRow>& rows, int dim) const {
  if (rows.empty()) return Status::OK();
  json data = json::array();
  for (const MilvusRow& row : rows) {
    data.push_back({{"id", row.id}, {"version", row.version}, {"vector", vector_json(row.vector, dim)}});
  }
  std::string body;
  try {
    body = json{{"collectionName", collection_.name}, {"data", std::move(data)}}.dump();
  } catch (const json::exception&) {
    return Status::InvalidArgument("Milvus upsert: a record id is not valid UTF-8 (Milvus ids are strings)");
  }
  std::string answer;
  return rest("upsert", body, &answer);
}

Status MilvusClient::delete_versions(const std::vector<uint64_t>& versions) const {
  if (versions.empty()) return Status::OK();
  std::string answer;
  return rest("delete",
              json{{"collectionName", collection_.name}, {"filter", versions_filter(versions)}}.dump(),
              &answer);
}

std::string MilvusClient::versions_filter(const std::vector<uint64_t>& versions) {
  std::string filter = "version in [";
  for (size_t i = 0; i < versions.size(); ++i) filter += (i ? "," : "") + std::to_string(versions[i]);
  return filter + "]";
}

Status MilvusClient::count(const std::string& filter, uint64_t* out) const {
  std::string data;
  EMBEDAPT_RETURN_IF_ERROR(rest("query",
                                json{{"collectionName", collection_.name},
                                     {"filter", filter},
                                     {"outputFields", {"count(*)"}},
                                     {"limit", 0}}  // Milvus refuses count(*) with its default page
                                    .dump(),
                                &data));
  const json rows = json::parse(data, nullptr, false);
  if (!rows.is_array() || rows.size() != 1 || !as_u64(field(rows[0], "count(*)"), out)) {
    return Status::Unavailable("Milvus count (" + collection_.name + "): unexpected answer " +
                               quotable(data, 200));
  }
  return Status::OK();
}

Status MilvusClient::versions(const std::vector<std::string>& ids,
                              std::vector<std::pair<std::string, uint64_t>>* out) const {
  out->clear();
  if (ids.empty()) return Status::OK();
  std::string filter = "id in [";
  for (size_t i = 0; i < ids.size(); ++i) filter += (i ? "," : "") + quoted(ids[i]);
  filter += "]";
  std::string data;
  EMBEDAPT_RETURN_IF_ERROR(rest("query",
                                json{{"collectionName", collection_.name},
                                     {"filter", filter},
                                     {"outputFields", {"id", "version"}},
                                     {"limit", ids.size()}}
                                    .dump(),
                                &data));
  const json rows = json::parse(data, nullptr, false);
  bool valid = rows.is_array();
  for (size_t i = 0; valid && i < rows.size(); ++i) {
    const std::string* id = string_field(rows[i], "id");
    uint64_t version = 0;
    valid = id != nullptr && as_u64(field(rows[i], "version"), &version);
    if (valid) out->emplace_back(*id, version);
  }
  if (!valid) {
    out->clear();
    return Status::Unavailable("Milvus query (" + collection_.name + "): unexpected answer " +
                               quotable(data, 200));
  }
  return Status::OK();
}

Status MilvusClient::search(const float* query, int dim, int k, std::vector<MilvusHit>* out) const {
  json body = {{"collectionName", collection_.name},
               {"vector", vector_json(query, dim)},
               {"limit", k},
               {"outputFields", {"id"}}};
  std::string data;
  EMBEDAPT_RETURN_IF_ERROR(rest("search", body.dump(), &data));
  out->clear();
  const std::string where = "Milvus search (" + collection_.name + ")";
  const json hits = json::parse(data, nullptr, false);
  bool valid = hits.is_array();
  // What a search returns must read as the store's own would: each id once
  // (a repeated id counted as several relevant hits in eval, ndcg@10 4.5),
  // at most k of them, scores that are numbers.
  std::unordered_set<std::string> seen;
  for (size_t i = 0; valid && i < hits.size() && out->size() < size_t(k); ++i) {
    const std::string* id = string_field(hits[i], "id");
    const json* distance = field(hits[i], "distance");
    valid = id != nullptr && distance != nullptr && distance->is_number();
    if (!valid) break;
    const double d = distance->get<double>();
    if (!(std::abs(d) <= std::numeric_limits<float>::max())) {
      out->clear();
      return Status::Unavailable(where + ": distance " + distance->dump() + " is not a finite float");
    }
    if (seen.insert(*id).second) out->push_back({*id, float(d)});
  }
  if (!valid) {
    out->clear();
    return Status::Unavailable(where + ": unexpected answer " + quotable(data, 200));
  }
  return Status::OK();
}

}  // namespace embedapt
