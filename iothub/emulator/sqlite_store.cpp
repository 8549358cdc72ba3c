// store on SQLite (Debian's libsqlite3): prepared statements kept for the store's life,
// every text and blob bound, never formatted into SQL.
#include <algorithm>
#include <array>
#include <deque>
#include <limits>
#include <string>
#include <utility>

#include <sqlite3.h>

#include "emulator/store.hpp"

namespace amqp::iothub::emulator {

namespace {

class sqlite_error_category final : public std::error_category {
public:
  [[nodiscard]] const char* name() const noexcept override { return "sqlite"; }
  [[nodiscard]] std::string message(int code) const override { return sqlite3_errstr(code); }
};

std::error_code sqlite_error(int code) noexcept {
  // Extended codes keep the primary code in their low byte; the primary one is what
  // callers compare with (SQLITE_BUSY, SQLITE_CONSTRAINT, ...).
  return {code & 0xff, sqlite_category()};
}

constexpr int schema_version = 1;

// The schema. WITHOUT ROWID tables are clustered on their primary key: events are read and
// trimmed in (partition, sequence) order.
constexpr const char* schema_sql = R"sql(
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE devices (
  id TEXT PRIMARY KEY,
  primary_key TEXT NOT NULL,
  secondary_key TEXT NOT NULL,
  enabled INTEGER NOT NULL,
  auth_type TEXT NOT NULL,
  generation_id TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE modules (
  device_id TEXT NOT NULL,
  id TEXT NOT NULL,
  primary_key TEXT NOT NULL,
  secondary_key TEXT NOT NULL,
  generation_id TEXT NOT NULL,
  PRIMARY KEY (device_id, id)
) WITHOUT ROWID;
CREATE TABLE policies (
  name TEXT PRIMARY KEY,
  primary_key TEXT NOT NULL,
  secondary_key TEXT NOT NULL,
  permissions INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE consumer_groups (name TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE partitions (
  partition INTEGER PRIMARY KEY,
  next_sequence INTEGER NOT NULL,
  next_offset INTEGER NOT NULL,
  last_enqueued_time INTEGER NOT NULL,
  last_offset INTEGER NOT NULL
);
CREATE TABLE events (
  partition INTEGER NOT NULL,
  sequence INTEGER NOT NULL,
  offset INTEGER NOT NULL,
  enqueued_time INTEGER NOT NULL,
  device TEXT NOT NULL,
  bytes BLOB NOT NULL,
  PRIMARY KEY (partition, sequence)
) WITHOUT ROWID;
CREATE TABLE c2d (
  device TEXT NOT NULL,
  module TEXT NOT NULL,
  sequence INTEGER NOT NULL,
  message BLOB NOT NULL,
  message_id TEXT,
  ack TEXT NOT NULL,
  expiry INTEGER NOT NULL,
  enqueued_time INTEGER NOT NULL,
  delivery_count INTEGER NOT NULL,
  lock_token BLOB,
  lock_expiry INTEGER,
  PRIMARY KEY (device, module, sequence)
) WITHOUT ROWID;
CREATE TABLE feedback_records (
  id INTEGER PRIMARY KEY,
  original_message_id TEXT NOT NULL,
  device_id TEXT NOT NULL,
  device_generation_id TEXT NOT NULL,
  status_code TEXT NOT NULL,
  description TEXT NOT NULL,
  enqueued_time INTEGER NOT NULL,
  batch INTEGER
);
CREATE TABLE feedback_batches (
  id INTEGER PRIMARY KEY,
  body BLOB NOT NULL,
  enqueued_time INTEGER NOT NULL,
  delivery_count INTEGER NOT NULL,
  lock_token BLOB,
  lock_expiry INTEGER
);
)sql";

// A prepared statement, reset after each use.
class statement {
public:
  statement() = default;
  statement(const statement&) = delete;
  statement& operator=(const statement&) = delete;
  ~statement() { sqlite3_finalize(stmt_); }

  int prepare(sqlite3* db, const char* sql) {
    return sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr);
  }
  // Texts and blobs are bound without a copy (SQLITE_STATIC): every statement is stepped
  // and reset (its bindings cleared) before the function that bound them returns.
  void bind(int i, std::string_view s) {
    (void)sqlite3_bind_text(stmt_, i, s.data(), static_cast<int>(s.size()), SQLITE_STATIC);
  }
  void bind(int i, std::span<const std::byte> b) {
    // A zero-length blob would bind as NULL with a null pointer: bind zeroblob instead.
    if (b.empty()) {
      (void)sqlite3_bind_zeroblob(stmt_, i, 0);
    } else {
      (void)sqlite3_bind_blob(stmt_, i, b.data(), static_cast<int>(b.size()), SQLITE_STATIC);
    }
  }
  void bind(int i, std::int64_t v) { (void)sqlite3_bind_int64(stmt_, i, v); }
  // SQLITE_ROW, SQLITE_DONE or an error.
  int step() { return sqlite3_step(stmt_); }
  void reset() {
    (void)sqlite3_reset(stmt_);
    (void)sqlite3_clear_bindings(stmt_);
  }
  [[nodiscard]] std::string text(int col) const {
    const auto* p = sqlite3_column_text(stmt_, col);
    const int n = sqlite3_column_bytes(stmt_, col);
    return p == nullptr
               ? std::string()
               : std::string(reinterpret_cast<const char*>(p), static_cast<std::size_t>(n));
  }
  [[nodiscard]] std::vector<std::byte> blob(int col) const {
    const auto* p = static_cast<const std::byte*>(sqlite3_column_blob(stmt_, col));
    const int n = sqlite3_column_bytes(stmt_, col);
    return p == nullptr ? std::vector<std::byte>() : std::vector<std::byte>(p, p + n);
  }
  [[nodiscard]] std::int64_t integer(int col) const { return sqlite3_column_int64(stmt_, col); }
  [[nodiscard]] bool is_null(int col) const {
    return sqlite3_column_type(stmt_, col) == SQLITE_NULL;
  }

private:
  sqlite3_stmt* stmt_ = nullptr;
};

// Resets a statement when the scope ends, whatever path leaves it.
class use {
public:
  explicit use(statement& s) noexcept : s_(s) {}
  use(const use&) = delete;
  use& operator=(const use&) = delete;
  ~use() { s_.reset(); }
  statement* operator->() noexcept { return &s_; }
  statement& operator*() noexcept { return s_; }

private:
  statement& s_;
};

// Runs a statement that returns no rows.
result<void> run(statement& s) {
  const int rc = s.step();
  s.reset();
  if (rc != SQLITE_DONE) {
    return sqlite_error(rc);
  }
  return {};
}

} // namespace

const std::error_category& sqlite_category() noexcept {
  static const sqlite_error_category c;
  return c;
}

// Statements, by name. Indexes into impl::stmts.
enum stmt : std::size_t {
  s_begin,
  s_commit,
  s_rollback,
  s_get_meta,
  s_set_meta,
  s_put_device,
  s_delete_device,
  s_delete_device_modules,
  s_devices,
  s_put_module,
  s_delete_module,
  s_modules,
  s_put_policy,
  s_delete_policy,
  s_policies,
  s_put_cg,
  s_delete_cg,
  s_cgs,
  s_heads,
  s_insert_event,
  s_upsert_head,
  s_read_by_sequence,
  s_read_by_sequence_gt,
  s_read_by_offset,
  s_read_by_offset_gt,
  s_read_by_time,
  s_read_by_time_gt,
  s_range,
  s_trim_time,
  s_trim_oldest,
  s_put_c2d,
  s_delete_c2d,
  s_c2d,
  s_lock_c2d,
  s_add_feedback,
  s_pending_feedback,
  s_delete_feedback,
  s_add_batch,
  s_batch_count,
  s_delete_batch,
  s_batches,
  s_count
};

// The events of one partition when the store is in memory (store::open(":memory:")): in
// sequence order, with their bytes together.
struct memory_partition {
  std::deque<stored_event> events;
  std::int64_t bytes = 0;
};

// What the open transaction did to the in-memory events, undone in reverse by a rollback.
struct event_undo {
  bool appended = false; // appended: remove it again; else trimmed: put it back
  stored_event event;    // trimmed: the event; appended: its partition and sequence only
};

struct store::impl {
  sqlite3* db = nullptr;
  std::array<statement, s_count> stmts;
  bool in_tx = false;
  // Heads moved by append_event in the open transaction, written by commit() (one row a
  // partition rather than one a message).
  std::vector<partition_head> pending_heads;
  // In memory, the events are not in SQLite: an insert there cost a third of the hub's CPU
  // a message, for rows that live no longer than the process. Everything else (the heads,
  // the registry, C2D, feedback) stays in the in-memory database, transactions included:
  // `undo` makes the events follow them.
  bool memory_events = false;
  std::vector<memory_partition> partitions; // by partition number, grown on demand
  std::vector<event_undo> undo;

  memory_partition& partition(std::uint32_t p) {
    if (p >= partitions.size()) {
      partitions.resize(std::size_t{p} + 1);
    }
    return partitions[p];
  }
  // Puts `e` back where its sequence number goes.
  void restore(stored_event e) {
    memory_partition& m = partition(e.partition);
    const auto at =
        std::lower_bound(m.events.begin(), m.events.end(), e.sequence,
                         [](const stored_event& x, std::int64_t seq) { return x.sequence < seq; });
    m.bytes += static_cast<std::int64_t>(e.bytes.size());
    m.events.insert(at, std::move(e));
  }
  // Removes the event of `partition` with `sequence`, if there is one.
  void remove(std::uint32_t p, std::int64_t sequence) {
    memory_partition& m = partition(p);
    const auto at =
        std::lower_bound(m.events.begin(), m.events.end(), sequence,
                         [](const stored_event& x, std::int64_t seq) { return x.sequence < seq; });
    if (at != m.events.end() && at->sequence == sequence) {
      m.bytes -= static_cast<std::int64_t>(at->bytes.size());
      m.events.erase(at);
    }
  }
  // A trimmed event: kept for a rollback while a transaction is open.
  void trimmed(stored_event&& e) {
    if (in_tx) {
      undo.push_back(event_undo{false, std::move(e)});
    }
  }
  void undo_events() {
    while (!undo.empty()) { // newest first
      event_undo u = std::move(undo.back());
      undo.pop_back();
      if (u.appended) {
        remove(u.event.partition, u.event.sequence);
      } else {
        restore(std::move(u.event));
      }
    }
  }

  // sqlite3_close_v2 leaves the connection open until the statements, members destroyed
  // after this body, are finalized.
  ~impl() { sqlite3_close_v2(db); }

  result<void> exec(const char* sql) {
    char* msg = nullptr;
    const int rc = sqlite3_exec(db, sql, nullptr, nullptr, &msg);
    sqlite3_free(msg);
    if (rc != SQLITE_OK) {
      return sqlite_error(rc);
    }
    return {};
  }

  result<void> prepare_all() {
    static constexpr std::array<const char*, s_count> sql = {
        "BEGIN",
        "COMMIT",
        "ROLLBACK",
        "SELECT value FROM meta WHERE key = ?1",
        "INSERT INTO meta(key, value) VALUES (?1, ?2) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        "INSERT OR REPLACE INTO devices(id, primary_key, secondary_key, enabled, auth_type, "
        "generation_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        "DELETE FROM devices WHERE id = ?1",
        "DELETE FROM modules WHERE device_id = ?1",
        "SELECT id, primary_key, secondary_key, enabled, auth_type, generation_id FROM devices "
        "ORDER BY id",
        "INSERT OR REPLACE INTO modules(device_id, id, primary_key, secondary_key, "
        "generation_id) VALUES (?1, ?2, ?3, ?4, ?5)",
        "DELETE FROM modules WHERE device_id = ?1 AND id = ?2",
        "SELECT device_id, id, primary_key, secondary_key, generation_id FROM modules "
        "ORDER BY device_id, id",
        "INSERT OR REPLACE INTO policies(name, primary_key, secondary_key, permissions) "
        "VALUES (?1, ?2, ?3, ?4)",
        "DELETE FROM policies WHERE name = ?1",
        "SELECT name, primary_key, secondary_key, permissions FROM policies ORDER BY name",
        "INSERT OR IGNORE INTO consumer_groups(name) VALUES (?1)",
        "DELETE FROM consumer_groups WHERE name = ?1",
        "SELECT name FROM consumer_groups ORDER BY name",
        "SELECT partition, next_sequence, next_offset, last_enqueued_time, last_offset "
        "FROM partitions ORDER BY partition",
        "INSERT INTO events(partition, sequence, offset, enqueued_time, device, bytes) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        "INSERT INTO partitions(partition, next_sequence, next_offset, last_enqueued_time, "
        "last_offset) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(partition) DO UPDATE SET "
        "next_sequence = excluded.next_sequence, next_offset = excluded.next_offset, "
        "last_enqueued_time = excluded.last_enqueued_time, last_offset = excluded.last_offset",
        // Offsets and enqueued times grow with the sequence number in a partition (the hub
        // keeps them so), so every read walks the primary key from its start.
        "SELECT partition, sequence, offset, enqueued_time, device, bytes FROM events "
        "WHERE partition = ?1 AND sequence >= ?2 ORDER BY sequence LIMIT ?3",
        "SELECT partition, sequence, offset, enqueued_time, device, bytes FROM events "
        "WHERE partition = ?1 AND sequence > ?2 ORDER BY sequence LIMIT ?3",
        "SELECT partition, sequence, offset, enqueued_time, device, bytes FROM events "
        "WHERE partition = ?1 AND sequence >= (SELECT coalesce(min(sequence), 9e18) FROM events "
        "WHERE partition = ?1 AND offset >= ?2) ORDER BY sequence LIMIT ?3",
        "SELECT partition, sequence, offset, enqueued_time, device, bytes FROM events "
        "WHERE partition = ?1 AND sequence >= (SELECT coalesce(min(sequence), 9e18) FROM events "
        "WHERE partition = ?1 AND offset > ?2) ORDER BY sequence LIMIT ?3",
        "SELECT partition, sequence, offset, enqueued_time, device, bytes FROM events "
        "WHERE partition = ?1 AND sequence >= (SELECT coalesce(min(sequence), 9e18) FROM events "
        "WHERE partition = ?1 AND enqueued_time >= ?2) ORDER BY sequence LIMIT ?3",
        "SELECT partition, sequence, offset, enqueued_time, device, bytes FROM events "
        "WHERE partition = ?1 AND sequence >= (SELECT coalesce(min(sequence), 9e18) FROM events "
        "WHERE partition = ?1 AND enqueued_time > ?2) ORDER BY sequence LIMIT ?3",
        "SELECT count(*), min(sequence), min(offset), coalesce(sum(length(bytes)), 0) "
        "FROM events WHERE partition = ?1",
        "DELETE FROM events WHERE partition = ?1 AND enqueued_time < ?2",
        "DELETE FROM events WHERE partition = ?1 AND sequence = "
        "(SELECT min(sequence) FROM events WHERE partition = ?1)",
        "INSERT OR REPLACE INTO c2d(device, module, sequence, message, message_id, ack, expiry, "
        "enqueued_time, delivery_count, lock_expiry) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, "
        "nullif(?10, 0))",
        "DELETE FROM c2d WHERE device = ?1 AND module = ?2 AND sequence = ?3",
        "SELECT device, module, sequence, message, message_id, ack, expiry, enqueued_time, "
        "delivery_count, coalesce(lock_expiry, 0) FROM c2d ORDER BY device, module, sequence",
        "UPDATE c2d SET lock_expiry = nullif(?4, 0) WHERE device = ?1 AND module = ?2 AND "
        "sequence = ?3",
        "INSERT INTO feedback_records(original_message_id, device_id, device_generation_id, "
        "status_code, description, enqueued_time) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        "SELECT id, original_message_id, device_id, device_generation_id, status_code, "
        "description, enqueued_time FROM feedback_records WHERE batch IS NULL ORDER BY id",
        "DELETE FROM feedback_records WHERE id = ?1",
        "INSERT INTO feedback_batches(body, enqueued_time, delivery_count) VALUES (?1, ?2, 0)",
        "UPDATE feedback_batches SET delivery_count = ?2 WHERE id = ?1",
        "DELETE FROM feedback_batches WHERE id = ?1",
        "SELECT id, body, enqueued_time, delivery_count FROM feedback_batches ORDER BY id",
    };
    for (std::size_t i = 0; i < s_count; ++i) {
      const int rc = stmts[i].prepare(db, sql[i]);
      if (rc != SQLITE_OK) {
        return sqlite_error(rc);
      }
    }
    return {};
  }

  statement& operator[](stmt s) noexcept { return stmts[s]; }

  // Writes the heads append_event moved (in the open transaction) to `partitions`.
  result<void> write_heads() {
    for (const partition_head& head : pending_heads) {
      statement& h = stmts[s_upsert_head];
      h.bind(1, std::int64_t{head.partition});
      h.bind(2, head.next_sequence);
      h.bind(3, head.next_offset);
      h.bind(4, head.last_enqueued_time);
      h.bind(5, head.last_offset);
      if (auto r = run(h); !r) {
        return r;
      }
    }
    pending_heads.clear();
    return {};
  }
};

store::store(std::unique_ptr<impl> p) noexcept : impl_(std::move(p)) {}
store::~store() = default;

result<std::unique_ptr<store>> store::open(const std::string& path) {
  auto p = std::make_unique<impl>();
  // One thread uses the store: no SQLite mutexes.
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  const bool in_memory = path == ":memory:";
  std::string name = path;
  if (in_memory) {
    // Not SQLite's ":memory:", whose pages all live in the page cache: a B-tree balance
    // that renumbers pages (inserts into several partitions interleave in `events`) moves
    // one through the lock-byte page number (262145 at 4 KiB pages), and the next COMMIT
    // then walks the whole page cache, the whole database, to drop pages past its end:
    // ingest slowed in proportion to the events stored. The memdb VFS keeps the database
    // in one heap image instead, behind an ordinary bounded page cache. No name starting
    // with '/': private to this connection.
    name = "file:hub?vfs=memdb";
    flags |= SQLITE_OPEN_URI;
  }
  int rc = sqlite3_open_v2(name.c_str(), &p->db, flags, nullptr);
  if (rc != SQLITE_OK) {
    return sqlite_error(rc);
  }
  if (in_memory) {
    // memdb's image is capped at 1 GiB unless told otherwise; ":memory:" had no cap.
    sqlite3_int64 limit = std::numeric_limits<sqlite3_int64>::max();
    (void)sqlite3_file_control(p->db, "main", SQLITE_FCNTL_SIZE_LIMIT, &limit);
  }
  (void)sqlite3_extended_result_codes(p->db, 1);
  // Another emulator on the same directory is refused at once rather than waited for.
  (void)sqlite3_busy_timeout(p->db, 0);
  // WAL + NORMAL: a commit is in the WAL file (written, not fsynced) when COMMIT returns, so
  // a killed process loses nothing it committed; a power loss can lose the last commits.
  // EXCLUSIVE locking keeps a second process off the file for as long as this one runs.
  if (!in_memory) {
    // The exclusive lock is taken by the first write transaction and kept from then on.
    if (auto r = p->exec("PRAGMA locking_mode = EXCLUSIVE; PRAGMA journal_mode = WAL; "
                         "BEGIN EXCLUSIVE; COMMIT;");
        !r) {
      return r.error();
    }
  }
  if (auto r = p->exec("PRAGMA synchronous = NORMAL;"); !r) {
    return r.error();
  }
  // The schema: created in one transaction when the database is new.
  int version = 0;
  {
    statement s;
    rc = s.prepare(p->db, "PRAGMA user_version");
    if (rc != SQLITE_OK) {
      return sqlite_error(rc);
    }
    rc = s.step();
    if (rc != SQLITE_ROW) {
      return sqlite_error(rc);
    }
    version = static_cast<int>(s.integer(0));
  }
  if (version == 0) {
    if (auto r = p->exec("BEGIN"); !r) {
      return r.error();
    }
    auto r = p->exec(schema_sql);
    if (r) {
      r = p->exec("PRAGMA user_version = 1");
    }
    if (r) {
      r = p->exec("COMMIT");
    }
    if (!r) {
      (void)p->exec("ROLLBACK");
      return r.error();
    }
  } else if (version != schema_version) {
    return amqp::errc::invalid_state;
  }
  if (auto r = p->prepare_all(); !r) {
    return r.error();
  }
  p->memory_events = in_memory;
  return std::unique_ptr<store>(new store(std::move(p)));
}

// ---- transactions --------------------------------------------------------------------------

result<void> store::begin() {
  if (impl_->in_tx) {
    return amqp::errc::invalid_state;
  }
  if (auto r = run((*impl_)[s_begin]); !r) {
    return r;
  }
  impl_->in_tx = true;
  return {};
}

result<void> store::commit() {
  if (!impl_->in_tx) {
    return amqp::errc::invalid_state;
  }
  auto r = impl_->write_heads();
  if (r) {
    r = run((*impl_)[s_commit]);
  }
  if (!r) {
    rollback();
    return r;
  }
  impl_->in_tx = false;
  impl_->undo.clear();
  return {};
}

void store::rollback() noexcept {
  impl_->pending_heads.clear();
  if (!impl_->in_tx) {
    return;
  }
  (void)run((*impl_)[s_rollback]);
  impl_->in_tx = false;
  impl_->undo_events();
}

bool store::in_transaction() const noexcept {
  return impl_->in_tx;
}

// ---- meta ----------------------------------------------------------------------------------

result<std::optional<std::string>> store::get_meta(std::string_view key) {
  use s((*impl_)[s_get_meta]);
  s->bind(1, key);
  const int rc = s->step();
  if (rc == SQLITE_ROW) {
    return std::optional<std::string>(s->text(0));
  }
  if (rc != SQLITE_DONE) {
    return sqlite_error(rc);
  }
  return std::optional<std::string>();
}

result<void> store::set_meta(std::string_view key, std::string_view value) {
  statement& s = (*impl_)[s_set_meta];
  s.bind(1, key);
  s.bind(2, value);
  return run(s);
}

// ---- registry ------------------------------------------------------------------------------

namespace {

// Runs a DELETE; true when it removed a row.
result<bool> run_delete(sqlite3* db, statement& s) {
  if (auto r = run(s); !r) {
    return r.error();
  }
  return sqlite3_changes(db) > 0;
}

} // namespace

result<void> store::put_device(const device_record& d) {
  statement& s = (*impl_)[s_put_device];
  s.bind(1, d.id);
  s.bind(2, d.primary_key);
  s.bind(3, d.secondary_key);
  s.bind(4, std::int64_t{d.enabled ? 1 : 0});
  s.bind(5, d.auth_type);
  s.bind(6, d.generation_id);
  return run(s);
}

result<bool> store::delete_device(std::string_view id) {
  statement& m = (*impl_)[s_delete_device_modules];
  m.bind(1, id);
  if (auto r = run(m); !r) {
    return r.error();
  }
  statement& s = (*impl_)[s_delete_device];
  s.bind(1, id);
  return run_delete(impl_->db, s);
}

result<std::vector<device_record>> store::devices() {
  use s((*impl_)[s_devices]);
  std::vector<device_record> out;
  int rc = 0;
  while ((rc = s->step()) == SQLITE_ROW) {
    device_record d;
    d.id = s->text(0);
    d.primary_key = s->text(1);
    d.secondary_key = s->text(2);
    d.enabled = s->integer(3) != 0;
    d.auth_type = s->text(4);
    d.generation_id = s->text(5);
    out.push_back(std::move(d));
  }
  if (rc != SQLITE_DONE) {
    return sqlite_error(rc);
  }
  return out;
}

result<void> store::put_module(const module_record& m) {
  statement& s = (*impl_)[s_put_module];
  s.bind(1, m.device_id);
  s.bind(2, m.id);
  s.bind(3, m.primary_key);
  s.bind(4, m.secondary_key);
  s.bind(5, m.generation_id);
  return run(s);
}

result<bool> store::delete_module(std::string_view device_id, std::string_view id) {
  statement& s = (*impl_)[s_delete_module];
  s.bind(1, device_id);
  s.bind(2, id);
  return run_delete(impl_->db, s);
}

result<std::vector<module_record>> store::modules() {
  use s((*impl_)[s_modules]);
  std::vector<module_record> out;
  int rc = 0;
  while ((rc = s->step()) == SQLITE_ROW) {
    module_record m;
    m.device_id = s->text(0);
    m.id = s->text(1);
    m.primary_key = s->text(2);
    m.secondary_key = s->text(3);
    m.generation_id = s->text(4);
    out.push_back(std::move(m));
  }
  if (rc != SQLITE_DONE) {
    return sqlite_error(rc);
  }
  return out;
}

result<void> store::put_policy(const policy_record& p) {
  statement& s = (*impl_)[s_put_policy];
  s.bind(1, p.name);
  s.bind(2, p.primary_key);
  s.bind(3, p.secondary_key);
  s.bind(4, std::int64_t{p.permissions});
  return run(s);
}

result<bool> store::delete_policy(std::string_view name) {
  statement& s = (*impl_)[s_delete_policy];
  s.bind(1, name);
  return run_delete(impl_->db, s);
}

result<std::vector<policy_record>> store::policies() {
  use s((*impl_)[s_policies]);
  std::vector<policy_record> out;
  int rc = 0;
  while ((rc = s->step()) == SQLITE_ROW) {
    policy_record p;
    p.name = s->text(0);
    p.primary_key = s->text(1);
    p.secondary_key = s->text(2);
    p.permissions = static_cast<std::uint32_t>(s->integer(3));
    out.push_back(std::move(p));
  }
  if (rc != SQLITE_DONE) {
    return sqlite_error(rc);
  }
  return out;
}

result<void> store::put_consumer_group(std::string_view name) {
  statement& s = (*impl_)[s_put_cg];
  s.bind(1, name);
  return run(s);
}

result<bool> store::delete_consumer_group(std::string_view name) {
  statement& s = (*impl_)[s_delete_cg];
  s.bind(1, name);
  return run_delete(impl_->db, s);
}

result<std::vector<std::string>> store::consumer_groups() {
  use s((*impl_)[s_cgs]);
  std::vector<std::string> out;
  int rc = 0;
  while ((rc = s->step()) == SQLITE_ROW) {
    out.push_back(s->text(0));
  }
  if (rc != SQLITE_DONE) {
    return sqlite_error(rc);
  }
  return out;
}

// ---- partitions and events -----------------------------------------------------------------

result<std::vector<partition_head>> store::partition_heads() {
  if (auto r = impl_->write_heads(); !r) {
    return r.error();
  }
  use s((*impl_)[s_heads]);
  std::vector<partition_head> out;
  int rc = 0;
  while ((rc = s->step()) == SQLITE_ROW) {
    partition_head h;
    h.partition = static_cast<std::uint32_t>(s->integer(0));
    h.next_sequence = s->integer(1);
    h.next_offset = s->integer(2);
    h.last_enqueued_time = s->integer(3);
    h.last_offset = s->integer(4);
    out.push_back(h);
  }
  if (rc != SQLITE_DONE) {
    return sqlite_error(rc);
  }
  return out;
}

result<void> store::append_event(const stored_event& e) {
  if (impl_->memory_events) {
    memory_partition& m = impl_->partition(e.partition);
    if (!m.events.empty() && m.events.back().sequence >= e.sequence) {
      // As the table's primary key: a taken sequence number is refused.
      const auto at = std::lower_bound(
          m.events.begin(), m.events.end(), e.sequence,
          [](const stored_event& x, std::int64_t seq) { return x.sequence < seq; });
      if (at != m.events.end() && at->sequence == e.sequence) {
        return sqlite_error(SQLITE_CONSTRAINT_PRIMARYKEY);
      }
      impl_->restore(e);
    } else {
      m.events.push_back(e);
      m.bytes += static_cast<std::int64_t>(e.bytes.size());
    }
    if (impl_->in_tx) {
      stored_event key;
      key.partition = e.partition;
      key.sequence = e.sequence;
      impl_->undo.push_back(event_undo{true, std::move(key)});
    }
  } else {
    statement& s = (*impl_)[s_insert_event];
    s.bind(1, std::int64_t{e.partition});
    s.bind(2, e.sequence);
    s.bind(3, e.offset);
    s.bind(4, e.enqueued_time);
    s.bind(5, e.device);
    s.bind(6, std::span<const std::byte>(e.bytes));
    if (auto r = run(s); !r) {
      return r;
    }
  }
  partition_head head;
  head.partition = e.partition;
  head.next_sequence = e.sequence + 1;
  head.next_offset = e.offset + static_cast<std::int64_t>(e.bytes.size());
  head.last_enqueued_time = e.enqueued_time;
  head.last_offset = e.offset;
  auto& pending = impl_->pending_heads;
  const auto it = std::find_if(pending.begin(), pending.end(),
                               [&](const partition_head& h) { return h.partition == e.partition; });
  if (it != pending.end()) {
    *it = head;
  } else {
    pending.push_back(head);
  }
  // In a transaction the head is written once a partition by commit(); alone, now.
  return impl_->in_tx ? result<void>{} : impl_->write_heads();
}

result<std::vector<stored_event>>
store::read_events(std::uint32_t partition, const event_position& from, std::size_t max_count) {
  if (impl_->memory_events) {
    const memory_partition& m = impl_->partition(partition);
    const std::int64_t v = from.value;
    const bool in = from.inclusive;
    auto first = m.events.end();
    if (from.by == event_position::field::sequence) {
      first = std::partition_point(m.events.begin(), m.events.end(), [&](const stored_event& e) {
        return in ? e.sequence < v : e.sequence <= v;
      });
    } else {
      // As the SQL: from the first event (in sequence order) whose offset or enqueued time
      // passes, on.
      const bool by_offset = from.by == event_position::field::offset;
      first = std::find_if(m.events.begin(), m.events.end(), [&](const stored_event& e) {
        const std::int64_t x = by_offset ? e.offset : e.enqueued_time;
        return in ? x >= v : x > v;
      });
    }
    const auto n =
        std::min<std::size_t>(max_count, static_cast<std::size_t>(m.events.end() - first));
    return std::vector<stored_event>(first, first + static_cast<std::ptrdiff_t>(n));
  }
  stmt which = s_read_by_sequence;
  switch (from.by) {
  case event_position::field::sequence:
    which = from.inclusive ? s_read_by_sequence : s_read_by_sequence_gt;
    break;
  case event_position::field::offset:
    which = from.inclusive ? s_read_by_offset : s_read_by_offset_gt;
    break;
  case event_position::field::enqueued_time:
    which = from.inclusive ? s_read_by_time : s_read_by_time_gt;
    break;
  }
  use s((*impl_)[which]);
  s->bind(1, std::int64_t{partition});
  s->bind(2, from.value);
  s->bind(3, static_cast<std::int64_t>(std::min<std::size_t>(max_count, INT64_MAX)));
  std::vector<stored_event> out;
  int rc = 0;
  while ((rc = s->step()) == SQLITE_ROW) {
    stored_event e;
    e.partition = static_cast<std::uint32_t>(s->integer(0));
    e.sequence = s->integer(1);
    e.offset = s->integer(2);
    e.enqueued_time = s->integer(3);
    e.device = s->text(4);
    e.bytes = s->blob(5);
    out.push_back(std::move(e));
  }
  if (rc != SQLITE_DONE) {
    return sqlite_error(rc);
  }
  return out;
}

result<partition_range> store::range(std::uint32_t partition) {
  if (impl_->memory_events) {
    const memory_partition& m = impl_->partition(partition);
    partition_range r;
    r.count = static_cast<std::int64_t>(m.events.size());
    r.empty = m.events.empty();
    if (!r.empty) {
      r.first_sequence = m.events.front().sequence;
      // Offsets grow with the sequence number (the hub assigns them so).
      r.first_offset = m.events.front().offset;
    }
    r.bytes = m.bytes;
    return r;
  }
  use s((*impl_)[s_range]);
  s->bind(1, std::int64_t{partition});
  const int rc = s->step();
  if (rc != SQLITE_ROW) {
    return sqlite_error(rc);
  }
  partition_range r;
  r.count = s->integer(0);
  r.empty = r.count == 0;
  if (!r.empty) {
    r.first_sequence = s->integer(1);
    r.first_offset = s->integer(2);
  }
  r.bytes = s->integer(3);
  return r;
}

result<std::size_t> store::trim(std::uint32_t partition, std::int64_t before,
                                std::int64_t max_bytes) {
  if (impl_->memory_events) {
    memory_partition& m = impl_->partition(partition);
    std::size_t deleted = 0;
    // As the SQL: every event enqueued before `before`, then the oldest over the bound.
    for (auto it = m.events.begin(); it != m.events.end();) {
      if (it->enqueued_time < before) {
        m.bytes -= static_cast<std::int64_t>(it->bytes.size());
        impl_->trimmed(std::move(*it));
        it = m.events.erase(it);
        ++deleted;
      } else {
        ++it;
      }
    }
    while (m.bytes > max_bytes && !m.events.empty()) {
      m.bytes -= static_cast<std::int64_t>(m.events.front().bytes.size());
      impl_->trimmed(std::move(m.events.front()));
      m.events.pop_front();
      ++deleted;
    }
    return deleted;
  }
  statement& t = (*impl_)[s_trim_time];
  t.bind(1, std::int64_t{partition});
  t.bind(2, before);
  if (auto r = run(t); !r) {
    return r.error();
  }
  auto deleted = static_cast<std::size_t>(sqlite3_changes(impl_->db));
  auto r = range(partition);
  if (!r) {
    return r.error();
  }
  std::int64_t bytes = r->bytes;
  if (bytes <= max_bytes) {
    return deleted;
  }
  // Oldest first, one at a time (each delete is an index seek), until within the bound. The
  // sizes come with the rows read, so the loop stops as soon as the bound holds.
  while (bytes > max_bytes) {
    auto first = read_events(partition, event_position{}, 1);
    if (!first) {
      return first.error();
    }
    if (first->empty()) {
      break;
    }
    statement& o = (*impl_)[s_trim_oldest];
    o.bind(1, std::int64_t{partition});
    if (auto d = run(o); !d) {
      return d.error();
    }
    bytes -= static_cast<std::int64_t>(first->front().bytes.size());
    ++deleted;
  }
  return deleted;
}

// ---- cloud-to-device -----------------------------------------------------------------------

result<void> store::put_c2d(const c2d_record& m) {
  statement& s = (*impl_)[s_put_c2d];
  s.bind(1, m.device);
  s.bind(2, m.module);
  s.bind(3, m.sequence);
  s.bind(4, std::span<const std::byte>(m.message));
  s.bind(5, m.message_id);
  s.bind(6, m.ack);
  s.bind(7, m.expiry);
  s.bind(8, m.enqueued_time);
  s.bind(9, std::int64_t{m.delivery_count});
  s.bind(10, m.lock_expiry);
  return run(s);
}

result<bool> store::set_c2d_lock(std::string_view device, std::string_view module,
                                 std::int64_t sequence, std::int64_t lock_expiry) {
  statement& s = (*impl_)[s_lock_c2d];
  s.bind(1, device);
  s.bind(2, module);
  s.bind(3, sequence);
  s.bind(4, lock_expiry);
  return run_delete(impl_->db, s);
}

result<bool> store::delete_c2d(std::string_view device, std::string_view module,
                               std::int64_t sequence) {
  statement& s = (*impl_)[s_delete_c2d];
  s.bind(1, device);
  s.bind(2, module);
  s.bind(3, sequence);
  return run_delete(impl_->db, s);
}

result<std::vector<c2d_record>> store::c2d_messages() {
  use s((*impl_)[s_c2d]);
  std::vector<c2d_record> out;
  int rc = 0;
  while ((rc = s->step()) == SQLITE_ROW) {
    c2d_record m;
    m.device = s->text(0);
    m.module = s->text(1);
    m.sequence = s->integer(2);
    m.message = s->blob(3);
    m.message_id = s->text(4);
    m.ack = s->text(5);
    m.expiry = s->integer(6);
    m.enqueued_time = s->integer(7);
    m.delivery_count = static_cast<std::uint32_t>(s->integer(8));
    m.lock_expiry = s->integer(9);
    out.push_back(std::move(m));
  }
  if (rc != SQLITE_DONE) {
    return sqlite_error(rc);
  }
  return out;
}

// ---- feedback ------------------------------------------------------------------------------

result<std::int64_t> store::add_feedback(const stored_feedback& r) {
  statement& s = (*impl_)[s_add_feedback];
  s.bind(1, r.original_message_id);
  s.bind(2, r.device_id);
  s.bind(3, r.device_generation_id);
  s.bind(4, r.status_code);
  s.bind(5, r.description);
  s.bind(6, r.enqueued_time);
  if (auto res = run(s); !res) {
    return res.error();
  }
  return sqlite3_last_insert_rowid(impl_->db);
}

result<std::vector<stored_feedback>> store::pending_feedback() {
  use s((*impl_)[s_pending_feedback]);
  std::vector<stored_feedback> out;
  int rc = 0;
  while ((rc = s->step()) == SQLITE_ROW) {
    stored_feedback r;
    r.id = s->integer(0);
    r.original_message_id = s->text(1);
    r.device_id = s->text(2);
    r.device_generation_id = s->text(3);
    r.status_code = s->text(4);
    r.description = s->text(5);
    r.enqueued_time = s->integer(6);
    out.push_back(std::move(r));
  }
  if (rc != SQLITE_DONE) {
    return sqlite_error(rc);
  }
  return out;
}

result<std::int64_t> store::make_feedback_batch(std::span<const std::int64_t> ids,
                                                std::span<const std::byte> message,
                                                std::int64_t enqueued_time) {
  statement& b = (*impl_)[s_add_batch];
  b.bind(1, message);
  b.bind(2, enqueued_time);
  if (auto r = run(b); !r) {
    return r.error();
  }
  const std::int64_t id = sqlite3_last_insert_rowid(impl_->db);
  for (const std::int64_t record : ids) {
    statement& d = (*impl_)[s_delete_feedback];
    d.bind(1, record);
    if (auto r = run(d); !r) {
      return r.error();
    }
  }
  return id;
}

result<void> store::set_feedback_delivery_count(std::int64_t id, std::uint32_t count) {
  statement& s = (*impl_)[s_batch_count];
  s.bind(1, id);
  s.bind(2, std::int64_t{count});
  return run(s);
}

result<bool> store::delete_feedback_batch(std::int64_t id) {
  statement& s = (*impl_)[s_delete_batch];
  s.bind(1, id);
  return run_delete(impl_->db, s);
}

result<std::vector<feedback_batch>> store::feedback_batches() {
  use s((*impl_)[s_batches]);
  std::vector<feedback_batch> out;
  int rc = 0;
  while ((rc = s->step()) == SQLITE_ROW) {
    feedback_batch b;
    b.id = s->integer(0);
    b.message = s->blob(1);
    b.enqueued_time = s->integer(2);
    b.delivery_count = static_cast<std::uint32_t>(s->integer(3));
    out.push_back(std::move(b));
  }
  if (rc != SQLITE_DONE) {
    return sqlite_error(rc);
  }
  return out;
}

void* store::native_handle() const noexcept {
  return impl_->db;
}

} // namespace amqp::iothub::emulator
