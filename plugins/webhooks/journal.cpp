#include "journal.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <stdexcept>

namespace kghost::webhooks {

Journal::Journal(std::filesystem::path dir, uint64_t rotate, Fingerprint fingerprint)
    : dir_(std::move(dir)), rotate_(rotate), fingerprint_(std::move(fingerprint)) {
  if (!fingerprint_)
    fingerprint_ = [](std::string_view s) { return std::hash<std::string_view>{}(s); };
  std::filesystem::create_directories(dir_);
  previous_.file = dir_ / "processed.1.log";
  current_.file = dir_ / "processed.log";
  load(previous_);
  load(current_);
  open_current();
}

Journal::~Journal() {
  if (fd_ >= 0) ::close(fd_);
}

void Journal::load(Generation& g) const {
  std::ifstream in(g.file);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty())
      g.prints.push_back(fingerprint_(line));  // a torn last line has no '\n' but is still an id
                                               // prefix at worst: harmless (never a real id)
  std::sort(g.prints.begin(), g.prints.end());
}

bool Journal::holds(const Generation& g, std::string_view id, uint64_t print) const {
  if (!std::binary_search(g.prints.begin(), g.prints.end(), print) &&
      !std::binary_search(g.recent.begin(), g.recent.end(), print))
    return false;
  // The fingerprint matches: the file says whether the id itself is there.
  std::ifstream in(g.file);
  std::string line;
  while (std::getline(in, line))
    if (line == id) return true;
  return false;
}

bool Journal::contains(std::string_view id) const {
  const uint64_t print = fingerprint_(id);
  std::lock_guard lock(mu_);
  return holds(current_, id, print) || holds(previous_, id, print);
}

void Journal::insert(Generation& g, uint64_t print) {
  constexpr std::size_t kRecent = 512;
  auto& r = g.recent;
  r.insert(std::upper_bound(r.begin(), r.end(), print), print);
  if (r.size() < kRecent) return;
  const auto middle = static_cast<std::ptrdiff_t>(g.prints.size());
  g.prints.insert(g.prints.end(), r.begin(), r.end());
  std::inplace_merge(g.prints.begin(), g.prints.begin() + middle, g.prints.end());
  r.clear();
}

void Journal::rotate() {
  ::close(fd_);
  std::filesystem::rename(current_.file, previous_.file);
  previous_.prints = std::move(current_.prints);
  previous_.recent = std::move(current_.recent);
  current_.prints = {};
  current_.recent = {};
  open_current();
}

void Journal::write_lines(const std::string& lines) {
  // One write(2) with O_APPEND: after a crash the lines are whole, but for the last one
  // (which open_current ends).
  if (lines.empty()) return;
  if (fd_ >= 0 && ::write(fd_, lines.data(), lines.size()) != static_cast<ssize_t>(lines.size()))
    failed_writes_++;
}

void Journal::add_all(const std::vector<std::string_view>& ids) {
  std::string lines;
  std::lock_guard lock(mu_);
  for (std::string_view id : ids) {
    if (current_.size() >= rotate_) {
      write_lines(lines);
      lines.clear();
      rotate();
    }
    insert(current_, fingerprint_(id));
    lines.append(id);
    lines += '\n';
  }
  write_lines(lines);
}

std::size_t Journal::memory_bytes() const {
  std::lock_guard lock(mu_);
  return (current_.prints.capacity() + current_.recent.capacity() + previous_.prints.capacity() +
          previous_.recent.capacity()) *
         sizeof(uint64_t);
}

void Journal::open_current() {
  fd_ = ::open(current_.file.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) throw std::runtime_error("webhooks: cannot open journal " + current_.file.string());
  // A crash mid-line leaves no '\n': end that line, or the next id would be glued to it.
  char last = '\n';
  off_t size = ::lseek(fd_, 0, SEEK_END);
  if (size > 0 && ::pread(fd_, &last, 1, size - 1) == 1 && last != '\n' &&
      ::write(fd_, "\n", 1) != 1)
    failed_writes_++;
}

}  // namespace kghost::webhooks
