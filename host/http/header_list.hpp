// A response's headers in one buffer. Each entry is its name's and value's lengths followed by
// their bytes, so the few headers of a response (a rate-limit filter adds five) cost one
// allocation, and handing them from filter to response is a move or one append. (A vector of
// string pairs made two allocations for every name or value longer than the short-string
// buffer: "X-RateLimit-Remaining" is one.)
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <string>
#include <string_view>
#include <utility>

namespace kghost {

class HeaderList {
 public:
  using value_type = std::pair<std::string_view, std::string_view>;  // name, value

  class const_iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = HeaderList::value_type;
    using difference_type = std::ptrdiff_t;
    using pointer = void;
    using reference = value_type;

    const_iterator() = default;
    value_type operator*() const {
      const char* name = at_ + 2 * sizeof(uint32_t);
      return {{name, length(0)}, {name + length(0), length(1)}};
    }
    const_iterator& operator++() {
      at_ += 2 * sizeof(uint32_t) + length(0) + length(1);
      return *this;
    }
    bool operator==(const const_iterator&) const = default;

   private:
    friend class HeaderList;
    explicit const_iterator(const char* at) : at_(at) {}
    std::size_t length(int which) const {
      uint32_t n;
      std::memcpy(&n, at_ + which * sizeof n, sizeof n);
      return n;
    }
    const char* at_ = nullptr;
  };

  HeaderList() = default;
  HeaderList(std::initializer_list<value_type> entries) {
    for (auto [name, value] : entries) emplace_back(name, value);
  }

  void emplace_back(std::string_view name, std::string_view value) {
    if (bytes_.empty()) bytes_.reserve(kFirstReserve);
    const uint32_t lengths[2] = {static_cast<uint32_t>(name.size()),
                                 static_cast<uint32_t>(value.size())};
    bytes_.append(reinterpret_cast<const char*>(lengths), sizeof lengths);
    bytes_.append(name).append(value);
  }
  // Adds `other`'s entries after these.
  void append(const HeaderList& other) { bytes_ += other.bytes_; }
  void append(HeaderList&& other) {
    if (empty()) {
      std::swap(*this, other);  // the usual case: take the list whole
      return;
    }
    append(static_cast<const HeaderList&>(other));
  }
  void clear() { bytes_.clear(); }

  bool empty() const { return bytes_.empty(); }
  const_iterator begin() const { return const_iterator(bytes_.data()); }
  const_iterator end() const { return const_iterator(bytes_.data() + bytes_.size()); }

 private:
  // The first entry makes room for a typical response's headers (five rate-limit headers are
  // about 150 bytes), so they take one allocation, not one per doubling.
  static constexpr std::size_t kFirstReserve = 256;

  std::string bytes_;
};

}  // namespace kghost
