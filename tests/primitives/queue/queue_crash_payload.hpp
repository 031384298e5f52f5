// Payloads of the kill -9 test: unique per (round, thread, index) and self-checking, so the
// checker can tell an invented or corrupted entry from one whose append was still in flight.
#pragma once

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>

namespace kghost::test {

inline std::string crash_payload(int round, int thread, int index) {
  std::string p = "r" + std::to_string(round) + "-t" + std::to_string(thread) + "-i" +
                  std::to_string(index) + "-";
  uint32_t h = static_cast<uint32_t>(round * 7919 + thread * 104729 + index * 31);
  std::size_t filler = 8 + h % 120;
  for (std::size_t k = 0; k < filler; ++k) {
    h = h * 1103515245u + 12345u;
    p.push_back(static_cast<char>('a' + (h >> 16) % 26));
  }
  return p;
}

// The driver's consumer fails the first attempt of every 53rd entry and acks everything else.
inline bool crash_consumer_retries(uint64_t id, uint32_t attempt) {
  return id % 53 == 0 && attempt == 1;
}

struct PayloadOrigin {
  int round, thread, index;
};

// The origin of a payload if it is exactly one crash_payload() would make; nullopt otherwise.
inline std::optional<PayloadOrigin> parse_crash_payload(const std::string& p) {
  int round = 0, thread = 0, index = 0, used = 0;
  if (std::sscanf(p.c_str(), "r%d-t%d-i%d-%n", &round, &thread, &index, &used) != 3 || used == 0) {
    return std::nullopt;
  }
  if (crash_payload(round, thread, index) != p) return std::nullopt;
  return PayloadOrigin{round, thread, index};
}

}  // namespace kghost::test
