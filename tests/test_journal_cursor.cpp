// The journal as consumers read it (Store::read_journal) and the cursors that
// keep snapshots from trimming what a consumer has not read yet.
#include <memory>
#include <string>
#include <vector>

#include "embedapt/store.h"
#include "tests/support/catch.h"
#include "tests/support/store.h"
#include "tests/support/temp_dir.h"

namespace embedapt {
namespace {

using testing::open_store;

std::vector<JournalEntry> journal_after(const Store& store, uint64_t seq, Status* status) {
  std::vector<JournalEntry> entries;
  *status = store.read_journal(seq, [&](const JournalEntry& e) {
    entries.push_back(e);
    return true;
  });
  return entries;
}

TEST_CASE("a journal cursor keeps what its consumer has not read through snapshots and reopens", "[store]") {
  testing::TempDir dir("cursor");
  const std::string db = dir / "db";
  auto store = open_store(db, 2);
  const float a[2] = {1, 0}, b[2] = {0, 1};
  REQUIRE(store->upsert("a", a, 2, "").ok());
  REQUIRE(store->upsert("b", b, 2, "").ok());
  Record got;
  REQUIRE(store->get("a", &got).ok());
  const uint64_t version_a = got.version;
  CHECK(version_a != 0);

  REQUIRE(store->put_cursor("mirror", {2, "state bytes"}).ok());
  REQUIRE(store->upsert("a", b, 2, "").ok());  // replaces version_a
  REQUIRE(store->remove("b").ok());
  const float c[2] = {1, 1};
  REQUIRE(store->upsert("c", c, 2, "").ok());
  REQUIRE(store->remove("c").ok());
  REQUIRE(store->flush().ok());  // a snapshot at seq 7; the cursor holds the journal from 3
  store.reset();
  store = open_store(db, 2);

  JournalCursor cursor;
  REQUIRE(store->get_cursor("mirror", &cursor).ok());
  CHECK(cursor.seq == 2);
  CHECK(cursor.state == "state bytes");
  Status status;
  std::vector<JournalEntry> entries = journal_after(*store, cursor.seq, &status);
  REQUIRE(status.ok());
  REQUIRE(entries.size() == 5);
  CHECK((entries[0].removed && entries[0].version == version_a && entries[0].seq == 3));
  CHECK((!entries[1].removed && entries[1].record.id == "a" &&
         entries[1].record.vector == std::vector<float>{0, 1}));
  REQUIRE(store->get("a", &got).ok());
  CHECK(entries[1].version == got.version);
  CHECK(entries[2].removed);
  CHECK((!entries[3].removed && entries[3].record.id.empty()));  // "c" was removed since
  CHECK(entries[4].removed);
  CHECK(journal_after(*store, 7, &status).empty());
  CHECK(status.ok());

  // Without the cursor the next snapshot trims it all: reading from 2 is refused.
  REQUIRE(store->remove_cursor("mirror").ok());
  CHECK(store->get_cursor("mirror", &cursor).code() == Code::kNotFound);
  REQUIRE(store->upsert("d", a, 2, "").ok());
  REQUIRE(store->flush().ok());
  journal_after(*store, 2, &status);
  CHECK(status.code() == Code::kFailedPrecondition);

  CHECK(store->put_cursor("ahead", {99, ""}).code() == Code::kInvalidArgument);
  CHECK(store->put_cursor("", {1, ""}).code() == Code::kInvalidArgument);
}

}  // namespace
}  // namespace embedapt
