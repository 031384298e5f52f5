#include "runtime/queue_format.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace kghost::queue_format {

static_assert(std::endian::native == std::endian::little, "the queue format is little-endian");

namespace {

constexpr std::array<uint32_t, 256> make_table() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    table[i] = c;
  }
  return table;
}
constexpr auto kTable = make_table();

uint32_t crc32c_soft(const uint8_t* p, std::size_t n, uint32_t crc) {
  crc = ~crc;
  while (n--) crc = kTable[(crc ^ *p++) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) uint32_t crc32c_hw(const uint8_t* p, std::size_t n,
                                                     uint32_t crc) {
  uint64_t c = ~crc;
  while (n >= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    c = _mm_crc32_u64(c, v);
    p += 8;
    n -= 8;
  }
  auto c32 = static_cast<uint32_t>(c);
  while (n--) c32 = _mm_crc32_u8(c32, *p++);
  return ~c32;
}
const bool kHaveSse42 = __builtin_cpu_supports("sse4.2");
#endif

template <typename T>
void put(std::string& out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out.append(b, sizeof(T));
}

template <typename T>
bool get(std::string_view& in, T& v) {
  if (in.size() < sizeof(T)) return false;
  std::memcpy(&v, in.data(), sizeof(T));
  in.remove_prefix(sizeof(T));
  return true;
}

// Reserves the record header, lets `body` write the payload, then fills len and crc in.
template <typename Body>
void encode(std::string& out, RecordType type, uint64_t id, Body&& body) {
  std::size_t start = out.size();
  out.append(kRecordHeaderSize, '\0');
  out.push_back(static_cast<char>(type));
  put(out, id);
  body();
  auto len = static_cast<uint32_t>(out.size() - start - kRecordHeaderSize);
  std::memcpy(out.data() + start, &len, 4);
  uint32_t crc = crc32c(out.data() + start, 4);
  crc = crc32c(out.data() + start + kRecordHeaderSize, len, crc);
  std::memcpy(out.data() + start + 4, &crc, 4);
}

bool decode_payload(std::string_view p, Record& r) {
  uint8_t type;
  if (!get(p, type) || !get(p, r.id)) return false;
  r.type = static_cast<RecordType>(type);
  switch (r.type) {
    case RecordType::append:
      r.data = p;
      return true;
    case RecordType::ack:
    case RecordType::replay:
      return p.empty();
    case RecordType::retry:
    case RecordType::dead:
      if (!get(p, r.failures)) return false;
      r.error = p;
      r.dead = r.type == RecordType::dead;
      return true;
    case RecordType::carry: {
      uint8_t dead;
      uint32_t errlen;
      if (!get(p, r.failures) || !get(p, dead) || !get(p, errlen) || p.size() < errlen) {
        return false;
      }
      r.dead = dead != 0;
      r.error = p.substr(0, errlen);
      r.data = p.substr(errlen);
      return true;
    }
  }
  return false;
}

bool all_zeros(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c == '\0'; });
}

}  // namespace

uint32_t crc32c(const void* data, std::size_t size, uint32_t crc) {
  auto p = static_cast<const uint8_t*>(data);
#if defined(__x86_64__)
  if (kHaveSse42) return crc32c_hw(p, size, crc);
#endif
  return crc32c_soft(p, size, crc);
}

std::string segment_header(uint32_t version) {
  std::string h(kMagic, sizeof(kMagic));
  put(h, version);
  put(h, uint32_t{0});
  return h;
}

HeaderCheck check_header(std::string_view file_bytes) {
  if (file_bytes.size() < kHeaderSize) return {HeaderStatus::too_short, 0};
  if (std::memcmp(file_bytes.data(), kMagic, sizeof(kMagic)) != 0) {
    return {HeaderStatus::bad_magic, 0};
  }
  uint32_t version;
  std::memcpy(&version, file_bytes.data() + sizeof(kMagic), 4);
  if (version != kVersion) return {HeaderStatus::unsupported_version, version};
  return {HeaderStatus::ok, version};
}

void encode_append(std::string& out, uint64_t id, std::string_view data) {
  encode(out, RecordType::append, id, [&] { out.append(data); });
}

void encode_ack(std::string& out, uint64_t id) {
  encode(out, RecordType::ack, id, [] {});
}

void encode_retry(std::string& out, uint64_t id, uint32_t failures, std::string_view error) {
  encode(out, RecordType::retry, id, [&] {
    put(out, failures);
    out.append(error);
  });
}

void encode_dead(std::string& out, uint64_t id, uint32_t failures, std::string_view error) {
  encode(out, RecordType::dead, id, [&] {
    put(out, failures);
    out.append(error);
  });
}

void encode_replay(std::string& out, uint64_t id) {
  encode(out, RecordType::replay, id, [] {});
}

void encode_carry(std::string& out, uint64_t id, uint32_t failures, bool dead,
                  std::string_view error, std::string_view data) {
  encode(out, RecordType::carry, id, [&] {
    put(out, failures);
    put(out, static_cast<uint8_t>(dead ? 1 : 0));
    put(out, static_cast<uint32_t>(error.size()));
    out.append(error);
    out.append(data);
  });
}

ScanResult scan_records(std::string_view file,
                        const std::function<void(const Record&)>& on_record) {
  ScanResult result;
  uint64_t pos = kHeaderSize;
  result.valid_end = pos;
  while (pos < file.size()) {
    uint64_t remaining = file.size() - pos;
    // A valid record is never all zeros (its length is at least 9): zeros from a record
    // boundary to the end are the segment's unused pre-allocated runway.
    if (file[pos] == '\0' && all_zeros(file.substr(pos))) return result;
    if (remaining < kRecordHeaderSize) {
      result.end = ScanEnd::torn;
      result.reason = "incomplete record header";
      return result;
    }
    uint32_t len, crc;
    std::memcpy(&len, file.data() + pos, 4);
    std::memcpy(&crc, file.data() + pos + 4, 4);
    uint64_t end = pos + kRecordHeaderSize + len;
    if (len > kMaxRecordPayload) {
      // A length this large was never written: damage, unless it is the tail of the file.
      result.end = ScanEnd::corrupt;
      result.reason = "impossible record length " + std::to_string(len);
      return result;
    }
    if (end > file.size()) {
      result.end = ScanEnd::torn;
      result.reason = "record extends past the end of the file";
      return result;
    }
    uint32_t actual = crc32c(file.data() + pos, 4);
    actual = crc32c(file.data() + pos + kRecordHeaderSize, len, actual);
    Record rec{};
    bool ok = actual == crc && decode_payload(file.substr(pos + kRecordHeaderSize, len), rec);
    if (!ok) {
      // A crash can only damage the tail: a bad record followed by nothing (or by the zeros of
      // a partially written page) is torn; anything else is corruption.
      bool only_zeros_after = true;
      for (uint64_t i = end; i < file.size() && only_zeros_after; ++i) {
        only_zeros_after = file[i] == '\0';
      }
      result.end = only_zeros_after ? ScanEnd::torn : ScanEnd::corrupt;
      result.reason = actual != crc ? "checksum mismatch" : "malformed record";
      return result;
    }
    on_record(rec);
    pos = end;
    result.valid_end = pos;
  }
  return result;
}

}  // namespace kghost::queue_format
