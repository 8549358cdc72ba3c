// The emulator's SQLite store: schema, registry tables, partitions and events, transactions,
// durability across a reopen, and the file lock.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <system_error>

#include <doctest/doctest.h>
#include <sqlite3.h>
#include <unistd.h>

#include "emulator/store.hpp"

using namespace amqp::iothub::emulator;

namespace {

std::unique_ptr<store> memory_store() {
  auto s = store::open(":memory:");
  REQUIRE(s);
  return std::move(*s);
}

// A directory removed at the end of the test.
struct temp_dir {
  std::filesystem::path path;
  temp_dir() {
    static int n = 0;
    path = std::filesystem::temp_directory_path() /
           ("iothub-store-test-" + std::to_string(::getpid()) + "-" + std::to_string(++n));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

// The events of a store in memory live apart from SQLite (sqlite_store.cpp): the event tests
// run on both kinds, each a subcase.
std::unique_ptr<store> either_store(const std::filesystem::path& dir) {
  std::unique_ptr<store> s;
  SUBCASE("in memory") {
    s = memory_store();
  }
  SUBCASE("in a file") {
    auto f = store::open((dir / "hub.db").string());
    REQUIRE(f);
    s = std::move(*f);
  }
  REQUIRE(s);
  return s;
}

std::vector<std::byte> bytes_of(std::string_view s) {
  const auto* p = reinterpret_cast<const std::byte*>(s.data());
  return {p, p + s.size()};
}

stored_event event(std::uint32_t partition, std::int64_t sequence, std::int64_t offset,
                   std::int64_t time, std::string_view body) {
  stored_event e;
  e.partition = partition;
  e.sequence = sequence;
  e.offset = offset;
  e.enqueued_time = time;
  e.device = "d1";
  e.bytes = bytes_of(body);
  return e;
}

std::vector<std::int64_t> sequences(const std::vector<stored_event>& v) {
  std::vector<std::int64_t> out;
  for (const auto& e : v) {
    out.push_back(e.sequence);
  }
  return out;
}

} // namespace

TEST_CASE("store: meta values are set, replaced and read back") {
  auto s = memory_store();
  auto none = s->get_meta("hub_name");
  REQUIRE(none);
  CHECK_FALSE(none->has_value());
  REQUIRE(s->set_meta("hub_name", "a"));
  REQUIRE(s->set_meta("hub_name", "b"));
  auto v = s->get_meta("hub_name");
  REQUIRE(v);
  CHECK(**v == "b");
}

TEST_CASE("store: devices, modules, policies and consumer groups") {
  auto s = memory_store();
  device_record d{"dev-1", "pk", "sk", true, "sas", "637983364741039849"};
  device_record x{"cam", "", "", false, "selfSigned", "1"};
  REQUIRE(s->put_device(d));
  REQUIRE(s->put_device(x));
  auto ds = s->devices();
  REQUIRE(ds);
  REQUIRE(ds->size() == 2);
  CHECK((*ds)[0] == x); // ordered by id
  CHECK((*ds)[1] == d);

  d.primary_key = "pk2";
  REQUIRE(s->put_device(d)); // replaced
  ds = s->devices();
  CHECK((*ds)[1].primary_key == "pk2");

  module_record m{"dev-1", "mod", "mpk", "msk", "2"};
  REQUIRE(s->put_module(m));
  auto ms = s->modules();
  REQUIRE(ms);
  REQUIRE(ms->size() == 1);
  CHECK((*ms)[0] == m);

  // Deleting a device deletes its modules.
  auto del = s->delete_device("dev-1");
  REQUIRE(del);
  CHECK(*del);
  del = s->delete_device("dev-1");
  REQUIRE(del);
  CHECK_FALSE(*del);
  CHECK(s->modules()->empty());
  CHECK(s->devices()->size() == 1);

  policy_record p{"service", "a", "b", 4};
  REQUIRE(s->put_policy(p));
  auto ps = s->policies();
  REQUIRE(ps);
  REQUIRE(ps->size() == 1);
  CHECK((*ps)[0] == p);
  CHECK(*s->delete_policy("service"));
  CHECK(s->policies()->empty());

  REQUIRE(s->put_consumer_group("cg2"));
  REQUIRE(s->put_consumer_group("cg1"));
  REQUIRE(s->put_consumer_group("cg1")); // ignored
  auto cgs = s->consumer_groups();
  REQUIRE(cgs);
  CHECK(*cgs == std::vector<std::string>{"cg1", "cg2"});
  CHECK(*s->delete_consumer_group("cg1"));
  CHECK(*s->consumer_groups() == std::vector<std::string>{"cg2"});
}

TEST_CASE("store: events are appended, the head moves, and reads start where asked") {
  temp_dir dir;
  auto s = either_store(dir.path);
  CHECK(s->partition_heads()->empty());
  // Partition 1: three events of 10, 20 and 30 bytes at times 1000, 2000, 2000.
  REQUIRE(s->append_event(event(1, 0, 0, 1000, std::string(10, 'a'))));
  REQUIRE(s->append_event(event(1, 1, 10, 2000, std::string(20, 'b'))));
  REQUIRE(s->append_event(event(1, 2, 30, 2000, std::string(30, 'c'))));
  REQUIRE(s->append_event(event(3, 0, 0, 5000, "x")));

  auto heads = s->partition_heads();
  REQUIRE(heads);
  REQUIRE(heads->size() == 2);
  CHECK((*heads)[0] == partition_head{1, 3, 60, 2000, 30});
  CHECK((*heads)[1] == partition_head{3, 1, 1, 5000, 0});

  // A taken sequence number is refused.
  auto dup = s->append_event(event(1, 2, 60, 3000, "d"));
  REQUIRE_FALSE(dup);
  CHECK(dup.error() == std::error_code(SQLITE_CONSTRAINT, sqlite_category()));

  using f = event_position::field;
  auto read = [&](f by, std::int64_t v, bool inclusive, std::size_t n = 10) {
    auto r = s->read_events(1, event_position{by, v, inclusive}, n);
    REQUIRE(r);
    return sequences(*r);
  };
  CHECK(read(f::sequence, 0, true) == std::vector<std::int64_t>{0, 1, 2});
  CHECK(read(f::sequence, 0, false) == std::vector<std::int64_t>{1, 2});
  CHECK(read(f::sequence, 2, false).empty());
  CHECK(read(f::sequence, 0, true, 2) == std::vector<std::int64_t>{0, 1});
  CHECK(read(f::offset, 10, true) == std::vector<std::int64_t>{1, 2});
  CHECK(read(f::offset, 10, false) == std::vector<std::int64_t>{2});
  CHECK(read(f::offset, -1, false) == std::vector<std::int64_t>{0, 1, 2});
  CHECK(read(f::offset, 60, true).empty());
  CHECK(read(f::enqueued_time, 2000, true) == std::vector<std::int64_t>{1, 2});
  CHECK(read(f::enqueued_time, 2000, false).empty());
  CHECK(read(f::enqueued_time, 0, false) == std::vector<std::int64_t>{0, 1, 2});

  auto all = s->read_events(1, event_position{}, 10);
  REQUIRE(all);
  CHECK((*all)[1] == event(1, 1, 10, 2000, std::string(20, 'b')));

  auto r = s->range(1);
  REQUIRE(r);
  CHECK_FALSE(r->empty);
  CHECK(r->first_sequence == 0);
  CHECK(r->count == 3);
  CHECK(r->bytes == 60);
  auto empty = s->range(2);
  REQUIRE(empty);
  CHECK(empty->empty);
}

TEST_CASE("store: trim drops events older than the retention, then the oldest over the size") {
  temp_dir dir;
  auto s = either_store(dir.path);
  for (int i = 0; i < 10; ++i) {
    REQUIRE(s->append_event(event(0, i, 10 * i, 1000 * i, std::string(10, 'e'))));
  }
  // Older than 3000 ms: events 0, 1, 2.
  auto n = s->trim(0, 3000, 1'000'000);
  REQUIRE(n);
  CHECK(*n == 3);
  CHECK(s->range(0)->first_sequence == 3);
  // At most 35 bytes: keeps the last three (30 bytes).
  n = s->trim(0, 0, 35);
  REQUIRE(n);
  CHECK(*n == 4);
  auto r = s->range(0);
  CHECK(r->first_sequence == 7);
  CHECK(r->bytes == 30);
  // Everything trimmed: the head stays, so sequence numbers never go back.
  n = s->trim(0, 1'000'000, 1'000'000);
  CHECK(*n == 3);
  CHECK(s->range(0)->empty);
  CHECK((*s->partition_heads())[0] == partition_head{0, 10, 100, 9000, 90});
}

TEST_CASE("store: transactions commit, roll back, and refuse calls out of order") {
  temp_dir dir;
  auto s = either_store(dir.path);
  CHECK(s->commit().error() == amqp::errc::invalid_state);
  REQUIRE(s->begin());
  CHECK(s->in_transaction());
  CHECK(s->begin().error() == amqp::errc::invalid_state);
  REQUIRE(s->append_event(event(0, 0, 0, 1, "a")));
  s->rollback();
  CHECK_FALSE(s->in_transaction());
  CHECK(s->range(0)->empty);
  CHECK(s->partition_heads()->empty());

  REQUIRE(s->begin());
  REQUIRE(s->append_event(event(0, 0, 0, 1, "a")));
  REQUIRE(s->set_meta("k", "v"));
  REQUIRE(s->commit());
  CHECK_FALSE(s->in_transaction());
  CHECK(s->range(0)->count == 1);
  s->rollback(); // nothing open: nothing happens
  CHECK(s->range(0)->count == 1);
}

TEST_CASE("store: a file keeps what was committed, and only that, across a reopen") {
  temp_dir dir;
  const std::string path = (dir.path / "hub.db").string();
  {
    auto s = store::open(path);
    REQUIRE(s);
    REQUIRE((*s)->put_device(device_record{"d1", "p", "q", true, "sas", "1"}));
    REQUIRE((*s)->begin());
    REQUIRE((*s)->append_event(event(2, 0, 0, 7, "committed")));
    REQUIRE((*s)->commit());
    REQUIRE((*s)->begin());
    REQUIRE((*s)->append_event(event(2, 1, 9, 8, "never committed")));
    // The store goes away with the transaction open, as a killed process would.
  }
  auto s = store::open(path);
  REQUIRE(s);
  CHECK((*s)->devices()->size() == 1);
  auto events = (*s)->read_events(2, event_position{}, 10);
  REQUIRE(events);
  REQUIRE(events->size() == 1);
  CHECK((*events)[0] == event(2, 0, 0, 7, "committed"));
  CHECK((*(*s)->partition_heads())[0] == partition_head{2, 1, 9, 7, 0});
}

TEST_CASE("store: a second store on the same file is refused while the first is open") {
  temp_dir dir;
  const std::string path = (dir.path / "hub.db").string();
  auto first = store::open(path);
  REQUIRE(first);
  auto second = store::open(path);
  REQUIRE_FALSE(second);
  CHECK(second.error() == std::error_code(SQLITE_BUSY, sqlite_category()));
  first->reset();
  auto third = store::open(path);
  CHECK(third);
}

TEST_CASE("store: a database of another schema version is refused") {
  temp_dir dir;
  const std::string path = (dir.path / "hub.db").string();
  {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
    REQUIRE(sqlite3_exec(db, "PRAGMA user_version = 7", nullptr, nullptr, nullptr) == SQLITE_OK);
    sqlite3_close(db);
  }
  auto s = store::open(path);
  REQUIRE_FALSE(s);
  CHECK(s.error() == amqp::errc::invalid_state);
}

TEST_CASE("store: a file that is not a database is refused") {
  temp_dir dir;
  const auto path = dir.path / "hub.db";
  {
    std::FILE* f = std::fopen(path.c_str(), "wb");
    REQUIRE(f != nullptr);
    const std::string junk(4096, 'x');
    std::fwrite(junk.data(), 1, junk.size(), f);
    std::fclose(f);
  }
  auto s = store::open(path.string());
  REQUIRE_FALSE(s);
  CHECK(s.error() == std::error_code(SQLITE_NOTADB, sqlite_category()));
}

TEST_CASE("store: C2D messages are put, replaced, listed in order and deleted") {
  auto s = memory_store();
  c2d_record a{"d1", "", 2, bytes_of("two"), "m2", "full", 9000, 1000, 0};
  c2d_record b{"d1", "", 1, bytes_of("one"), "m1", "none", 9000, 900, 3};
  c2d_record m{"d1", "mod", 1, bytes_of("module"), "m3", "positive", 9000, 950, 0};
  REQUIRE(s->put_c2d(a));
  REQUIRE(s->put_c2d(b));
  REQUIRE(s->put_c2d(m));
  auto all = s->c2d_messages();
  REQUIRE(all);
  REQUIRE(all->size() == 3);
  CHECK((*all)[0] == b);
  CHECK((*all)[1] == a);
  CHECK((*all)[2] == m);
  a.delivery_count = 4;
  REQUIRE(s->put_c2d(a)); // replaced
  CHECK((*s->c2d_messages())[1].delivery_count == 4);
  CHECK(*s->delete_c2d("d1", "", 1));
  CHECK_FALSE(*s->delete_c2d("d1", "", 1));
  CHECK(s->c2d_messages()->size() == 2);
}

TEST_CASE("store: feedback records wait, become a batch, and the batch is counted and deleted") {
  auto s = memory_store();
  stored_feedback r{0, "m1", "d1", "1001", "Success", "Success", 5000};
  auto id1 = s->add_feedback(r);
  r.original_message_id = "m2";
  auto id2 = s->add_feedback(r);
  REQUIRE(id1);
  REQUIRE(id2);
  CHECK(*id2 > *id1);
  auto pending = s->pending_feedback();
  REQUIRE(pending->size() == 2);
  CHECK((*pending)[0].id == *id1);
  CHECK((*pending)[1].original_message_id == "m2");
  const std::int64_t ids[1] = {*id1};
  auto batch = s->make_feedback_batch(ids, bytes_of("message"), 7000);
  REQUIRE(batch);
  REQUIRE(s->pending_feedback()->size() == 1); // the first went into the batch
  auto batches = s->feedback_batches();
  REQUIRE(batches->size() == 1);
  CHECK((*batches)[0] == feedback_batch{*batch, bytes_of("message"), 7000, 0});
  REQUIRE(s->set_feedback_delivery_count(*batch, 3));
  CHECK((*s->feedback_batches())[0].delivery_count == 3);
  CHECK(*s->delete_feedback_batch(*batch));
  CHECK(s->feedback_batches()->empty());
}

// Two partitions appended in turn make SQLite renumber B-tree pages through the lock-byte
// page number, after which every COMMIT walks the whole page cache. With SQLite's ":memory:"
// that cache held the whole database, so ingest slowed as events accumulated (bench_iothub:
// the emulator's CPU a message 8 -> 18 us over 200,000 events). The in-memory store keeps
// its page cache bounded: here 16 MB of events with at most 4 MB cached.
TEST_CASE("store: in memory, the page cache stays bounded as events accumulate") {
  auto s = memory_store();
  auto* db = static_cast<sqlite3*>(s->native_handle());
  const std::string body(700, 'x');
  std::int64_t offsets[2] = {0, 0};
  constexpr int per_commit = 20;
  constexpr int events = 24'000;
  for (int i = 0; i < events; i += per_commit) {
    REQUIRE(s->begin());
    for (int k = i; k < i + per_commit; ++k) {
      const auto p = static_cast<std::uint32_t>(k % 2);
      REQUIRE(s->append_event(event(p, k / 2, offsets[p], k, body)));
      offsets[p] += static_cast<std::int64_t>(body.size());
    }
    REQUIRE(s->commit());
  }
  CHECK(s->range(0)->count == events / 2);
  CHECK(s->range(1)->count == events / 2);
  int used = 0;
  int highwater = 0;
  REQUIRE(sqlite3_db_status(db, SQLITE_DBSTATUS_CACHE_USED, &used, &highwater, 0) == SQLITE_OK);
  CHECK(used < 4 * 1024 * 1024);
  // What was appended reads back.
  const auto last =
      s->read_events(1, event_position{event_position::field::sequence, events / 2 - 1, true}, 10);
  REQUIRE(last);
  REQUIRE(last->size() == 1);
  CHECK(last->front().bytes == bytes_of(body));
}

TEST_CASE("store: heads moved in a transaction are written by commit, and dropped by rollback") {
  temp_dir dir;
  auto s = either_store(dir.path);
  REQUIRE(s->begin());
  REQUIRE(s->append_event(event(0, 0, 0, 10, "aa")));
  REQUIRE(s->append_event(event(1, 0, 0, 11, "b")));
  REQUIRE(s->append_event(event(0, 1, 2, 12, "ccc")));
  REQUIRE(s->commit());
  auto heads = s->partition_heads();
  REQUIRE(heads);
  REQUIRE(heads->size() == 2);
  CHECK((*heads)[0] == partition_head{0, 2, 5, 12, 2});
  CHECK((*heads)[1] == partition_head{1, 1, 1, 11, 0});

  // Read inside the transaction, the heads are where the appends moved them.
  REQUIRE(s->begin());
  REQUIRE(s->append_event(event(1, 1, 1, 13, "dd")));
  heads = s->partition_heads();
  REQUIRE(heads);
  CHECK((*heads)[1] == partition_head{1, 2, 3, 13, 1});
  REQUIRE(s->append_event(event(1, 2, 3, 14, "e")));
  s->rollback();
  heads = s->partition_heads();
  REQUIRE(heads);
  REQUIRE(heads->size() == 2);
  CHECK((*heads)[0] == partition_head{0, 2, 5, 12, 2});
  CHECK((*heads)[1] == partition_head{1, 1, 1, 11, 0});

  // Outside a transaction an append writes its head at once.
  REQUIRE(s->append_event(event(1, 1, 1, 15, "f")));
  heads = s->partition_heads();
  REQUIRE(heads);
  CHECK((*heads)[1] == partition_head{1, 2, 2, 15, 1});
}

TEST_CASE("store: a rollback puts trimmed events back and takes appended ones away; a failed "
          "commit is a rollback") {
  temp_dir dir;
  auto s = either_store(dir.path);
  for (int i = 0; i < 5; ++i) {
    REQUIRE(s->append_event(event(0, i, 10 * i, 1000 * i, std::string(10, 'e'))));
  }
  auto all = [&] {
    auto r = s->read_events(0, event_position{}, 100);
    REQUIRE(r);
    return sequences(*r);
  };
  const std::vector<std::int64_t> five{0, 1, 2, 3, 4};

  REQUIRE(s->begin());
  REQUIRE(s->trim(0, 2000, 1'000'000).value() == 2);
  REQUIRE(s->append_event(event(0, 5, 50, 5000, "new")));
  REQUIRE(s->trim(0, 0, 25).value() == 1); // 33 bytes: event 2 goes
  CHECK(all() == std::vector<std::int64_t>{3, 4, 5});
  s->rollback();
  CHECK(all() == five);
  CHECK(s->range(0)->bytes == 50);
  CHECK(s->range(0)->first_offset == 0);

  // The commit fails (a hook refuses it): nothing of the transaction stays.
  auto* db = static_cast<sqlite3*>(s->native_handle());
  sqlite3_commit_hook(
      db, [](void*) { return 1; }, nullptr);
  REQUIRE(s->begin());
  REQUIRE(s->append_event(event(0, 5, 50, 5000, "lost")));
  REQUIRE(s->trim(0, 1500, 1'000'000).value() == 2);
  CHECK_FALSE(s->commit());
  sqlite3_commit_hook(db, nullptr, nullptr);
  CHECK_FALSE(s->in_transaction());
  CHECK(all() == five);
  CHECK((*s->partition_heads())[0] == partition_head{0, 5, 50, 4000, 40});

  // Committed, it stays.
  REQUIRE(s->begin());
  REQUIRE(s->append_event(event(0, 5, 50, 5000, "kept")));
  REQUIRE(s->trim(0, 1000, 1'000'000).value() == 1);
  REQUIRE(s->commit());
  s->rollback();
  CHECK(all() == std::vector<std::int64_t>{1, 2, 3, 4, 5});
  CHECK(s->range(0)->bytes == 44);
}
