// The durable queue's on-disk format: segment header, record encoding and a pure scanner.
//
// A segment file `seg-<first id, 20 digits>.log` is a 16-byte header followed by records and
// then, optionally, zeros up to the end of the file (space written ahead of use; a record never
// starts with a zero length, so the first zero record header ends the log):
//
//   header: magic "KGQUEUE\n" (8) | format version u32 | reserved u32 (0)
//   record: len u32 | crc32c u32 | payload (len bytes)
//           crc32c covers the 4 length bytes and the payload, so a damaged length is caught.
//   payload: type u8 | entry id u64 | type-specific fields (below)
//
// All integers little-endian. Types (format version 1):
//   append  data…                                   a new entry (attempts 0)
//   ack     —                                       consumed; the entry is gone
//   retry   failures u32 | error…                   a failed delivery; failures so far
//   dead    failures u32 | error…                   dead letter after max attempts
//   replay  —                                       dead letter back to the queue, failures 0
//   carry   failures u32 | dead u8 | errlen u32 | error | data…
//           a full copy of a live entry moved forward so an old segment can be deleted
//
// Nothing here does I/O: bytes in, records out. The scanner tells a torn tail (normal after a
// crash) from a damaged record in the middle (the operator must hear about it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace kghost::queue_format {

inline constexpr char kMagic[8] = {'K', 'G', 'Q', 'U', 'E', 'U', 'E', '\n'};
inline constexpr uint32_t kVersion = 1;
inline constexpr std::size_t kHeaderSize = 16;
inline constexpr std::size_t kRecordHeaderSize = 8;  // len + crc
// A record longer than this is treated as damage, never allocated.
inline constexpr uint32_t kMaxRecordPayload = 1u << 30;

enum class RecordType : uint8_t { append = 1, ack = 2, retry = 3, dead = 4, replay = 5, carry = 6 };

// CRC-32C (Castagnoli). Uses SSE4.2 when the CPU has it.
uint32_t crc32c(const void* data, std::size_t size, uint32_t crc = 0);

std::string segment_header(uint32_t version = kVersion);

enum class HeaderStatus { ok, too_short, bad_magic, unsupported_version };
struct HeaderCheck {
  HeaderStatus status;
  uint32_t version;  // valid unless too_short / bad_magic
};
HeaderCheck check_header(std::string_view file_bytes);

// Encoders append one complete record to `out`.
void encode_append(std::string& out, uint64_t id, std::string_view data);
void encode_ack(std::string& out, uint64_t id);
void encode_retry(std::string& out, uint64_t id, uint32_t failures, std::string_view error);
void encode_dead(std::string& out, uint64_t id, uint32_t failures, std::string_view error);
void encode_replay(std::string& out, uint64_t id);
void encode_carry(std::string& out, uint64_t id, uint32_t failures, bool dead,
                  std::string_view error, std::string_view data);

// A decoded record; views point into the scanned bytes.
struct Record {
  RecordType type;
  uint64_t id = 0;
  uint32_t failures = 0;
  bool dead = false;
  std::string_view error;
  std::string_view data;
};

enum class ScanEnd {
  clean,    // every byte belongs to a valid record, or to the zeros after the last one
  torn,     // the last record is incomplete or its CRC fails and nothing follows: crash residue
  corrupt,  // a bad record with more bytes after it (damage, not a crash)
};
struct ScanResult {
  ScanEnd end = ScanEnd::clean;
  uint64_t valid_end = 0;  // file offset just past the last good record
  std::string reason;      // for torn/corrupt: what was wrong
};

// Scans the records of a whole segment file (header included, already checked) and calls
// `on_record` for each valid one in order. Stops at the first bad record.
ScanResult scan_records(std::string_view file_bytes,
                        const std::function<void(const Record&)>& on_record);

}  // namespace kghost::queue_format
