#include "db.hpp"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <mutex>
#include <thread>
#include <utility>

namespace lsp_sweeper::store::sqlite {

namespace {

// SQLite's messages are one line already; a step's text may not be (a migration's SQL).
std::string one_line(std::string text) {
  for (char& c : text) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return text;
}

[[noreturn]] void throw_for(int rc, const std::string& message) {
  const int primary = rc & 0xff;
  if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) {
    throw StoreBusy(one_line(message) + " (still locked after " + std::to_string(kBusyTimeoutMs) +
                    " ms)");
  }
  throw StoreError(one_line(message));
}

// SQLite's lock bytes in the unix VFS (sqlite3.c: PENDING_BYTE, RESERVED_BYTE, SHARED_FIRST,
// SHARED_SIZE): the pending byte at 1 GiB, the reserved byte after it, then 510 shared bytes.
// Every lock a connection takes in the rollback journal lies in this range.
constexpr off_t kPendingByte = 0x40000000;
constexpr off_t kLockBytes = 2 + 510;

}  // namespace

struct Db::ProbeFile {
  explicit ProbeFile(int descriptor) : fd(descriptor) {}
  ~ProbeFile() { ::close(fd); }
  ProbeFile(const ProbeFile&) = delete;
  ProbeFile& operator=(const ProbeFile&) = delete;
  int fd;
};

Db::Db(const std::string& path, OpenMode mode) : path_(path) {
  int flags = SQLITE_OPEN_NOMUTEX;
  switch (mode) {
    case OpenMode::ReadOnly: flags |= SQLITE_OPEN_READONLY; break;
    case OpenMode::ReadWrite: flags |= SQLITE_OPEN_READWRITE; break;
    case OpenMode::ReadWriteCreate: flags |= SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE; break;
  }
  const int rc = sqlite3_open_v2(path.c_str(), &db_, flags, nullptr);
  if (rc != SQLITE_OK) {
    const std::string reason = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    sqlite3_close(db_);
    db_ = nullptr;
    throw StoreError("opening SQLite database " + path + ": " + one_line(reason));
  }
  sqlite3_extended_result_codes(db_, 1);
  sqlite3_busy_timeout(db_, kBusyTimeoutMs);
}

Db::~Db() { sqlite3_close_v2(db_); }  // then probe_ goes, after the connection's own locks

bool Db::wal() {
  Stmt mode(*this, "PRAGMA journal_mode", "reading the journal mode");
  mode.step();
  const bool wal = mode.text(0) == "wal";
  mode.reset();
  return wal;
}

bool Db::another_process_holds_a_lock() {
  if (!probe_) {
    // One descriptor per file for the whole process, found by device and inode.
    static std::mutex mutex;
    static std::map<std::pair<dev_t, ino_t>, std::weak_ptr<const ProbeFile>> open_files;
    const std::lock_guard lock(mutex);
    struct stat st {};
    if (::stat(path_.c_str(), &st) != 0) return false;
    auto& slot = open_files[{st.st_dev, st.st_ino}];
    probe_ = slot.lock();
    if (!probe_) {
      const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) return false;
      probe_ = std::make_shared<const ProbeFile>(fd);
      slot = probe_;
    }
  }
  // The lock an EXCLUSIVE needs conflicts with every lock of another process in the range; the
  // kernel names one if any is held, and never this process's own.
  struct flock lock {};
  lock.l_type = F_WRLCK;
  lock.l_whence = SEEK_SET;
  lock.l_start = kPendingByte;
  lock.l_len = kLockBytes;
  if (::fcntl(probe_->fd, F_GETLK, &lock) != 0) return false;
  return lock.l_type != F_UNLCK;
}

void Db::exec_script(std::string_view sql, const std::string& step) {
  const std::string text(sql);
  char* message = nullptr;
  const int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &message);
  if (rc != SQLITE_OK) {
    const std::string reason = message ? message : sqlite3_errstr(rc);
    sqlite3_free(message);
    throw_for(rc, step + ": " + reason);
  }
}

bool Db::read_only() const { return sqlite3_db_readonly(db_, "main") == 1; }

std::int64_t Db::changes() const { return sqlite3_changes64(db_); }

void Db::fail(int rc, const std::string& step) const {
  throw_for(rc, step + ": " + sqlite3_errmsg(db_));
}

Stmt::Stmt(Db& db, std::string_view sql, std::string step) : db_(&db), step_(std::move(step)) {
  const int rc =
      sqlite3_prepare_v2(db.handle(), sql.data(), static_cast<int>(sql.size()), &stmt_, nullptr);
  if (rc != SQLITE_OK) db.fail(rc, step_);
}

Stmt::~Stmt() { sqlite3_finalize(stmt_); }

Stmt::Stmt(Stmt&& other) noexcept
    : db_(other.db_), stmt_(std::exchange(other.stmt_, nullptr)), step_(std::move(other.step_)) {}

void Stmt::check_bind(int rc) {
  if (rc != SQLITE_OK) db_->fail(rc, step_ + ": bind");
}

Stmt& Stmt::bind(int position, std::int64_t value) {
  check_bind(sqlite3_bind_int64(stmt_, position, value));
  return *this;
}

Stmt& Stmt::bind(int position, std::string_view text) {
  check_bind(sqlite3_bind_text64(stmt_, position, text.data(), text.size(), SQLITE_TRANSIENT,
                                 SQLITE_UTF8));
  return *this;
}

Stmt& Stmt::bind(int position, const std::optional<std::int64_t>& value) {
  return value ? bind(position, *value) : bind_null(position);
}

Stmt& Stmt::bind_null(int position) {
  check_bind(sqlite3_bind_null(stmt_, position));
  return *this;
}

bool Stmt::step() {
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  // sqlite3_reset returns the step's error again; the message must be read before it.
  if (rc != SQLITE_DONE) {
    const std::string message = step_ + ": " + sqlite3_errmsg(db_->handle());
    sqlite3_reset(stmt_);
    throw_for(rc, message);
  }
  sqlite3_reset(stmt_);
  return false;
}

std::int64_t Stmt::run() {
  while (step()) {
  }
  return db_->changes();
}

void Stmt::reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

bool Stmt::is_null(int column) const { return sqlite3_column_type(stmt_, column) == SQLITE_NULL; }

std::int64_t Stmt::int64(int column) const { return sqlite3_column_int64(stmt_, column); }

double Stmt::real(int column) const { return sqlite3_column_double(stmt_, column); }

std::string Stmt::text(int column) const {
  const auto* text = sqlite3_column_text(stmt_, column);
  if (!text) return {};
  return {reinterpret_cast<const char*>(text),
          static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column))};
}

std::optional<std::int64_t> Stmt::optional_int64(int column) const {
  if (is_null(column)) return std::nullopt;
  return int64(column);
}

std::optional<std::string> Stmt::optional_text(int column) const {
  if (is_null(column)) return std::nullopt;
  return text(column);
}

Transaction::Transaction(Db& db, Kind kind, std::string step)
    : db_(db), kind_(kind), step_(std::move(step)) {
  if (kind == Kind::Deferred) {
    db.exec_script("BEGIN DEFERRED", step_ + ": begin");
    return;
  }
  std::this_thread::sleep_until(db.last_write_ended() + kWriteGap);
  // Each attempt fails at once instead of waiting in SQLite's busy handler, which would hold
  // the PENDING lock across the wait (see Kind::Write); between attempts no lock is held.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kBusyTimeoutMs);
  const bool ask_first = !db.wal();
  sqlite3_busy_timeout(db.handle(), 0);
  for (;;) {
    if (!ask_first || !db.another_process_holds_a_lock()) {
      ++attempts_;
      const int rc = sqlite3_exec(db.handle(), "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr);
      if (rc == SQLITE_OK) break;
      if ((rc & 0xff) != SQLITE_BUSY || std::chrono::steady_clock::now() >= deadline) {
        sqlite3_busy_timeout(db.handle(), kBusyTimeoutMs);
        db.fail(rc, step_ + ": begin");
      }
    } else if (std::chrono::steady_clock::now() >= deadline) {
      sqlite3_busy_timeout(db.handle(), kBusyTimeoutMs);
      throw_for(SQLITE_BUSY, step_ + ": begin: another process holds the database locked");
    }
    std::this_thread::sleep_for(kWriteRetryInterval);
  }
  sqlite3_busy_timeout(db.handle(), kBusyTimeoutMs);
}

Transaction::~Transaction() {
  // Still open unless committed; a failed COMMIT (e.g. SQLITE_BUSY) leaves it open too.
  if (sqlite3_get_autocommit(db_.handle()) == 0) {
    sqlite3_exec(db_.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
    if (kind_ == Kind::Write) db_.write_ended();
  }
}

void Transaction::commit() {
  db_.exec_script("COMMIT", step_ + ": commit");
  if (kind_ == Kind::Write) db_.write_ended();
}

}  // namespace lsp_sweeper::store::sqlite
