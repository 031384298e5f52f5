// observability: the standard Prometheus process metrics (as the Go and Python clients name
// them), read from /proc because prometheus-cpp does not provide them.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace kghost::observability {

struct ProcessSample {
  double cpu_seconds = 0;         // user + system
  double resident_bytes = 0;      // RSS
  double virtual_bytes = 0;       // VSZ
  double start_time_seconds = 0;  // Unix time the process started
  double open_fds = 0;
  double max_fds = 0;  // soft RLIMIT_NOFILE
};

// Parses /proc/<pid>/stat text (fields after the parenthesised command name). Pure.
// `ticks_per_s` is sysconf(_SC_CLK_TCK), `page_bytes` the page size, `boot_time_s` /proc/stat's
// btime. nullopt when the text is malformed.
std::optional<ProcessSample> parse_proc_stat(std::string_view stat, double ticks_per_s,
                                             double page_bytes, double boot_time_s);

// The calling process, now. nullopt when /proc is unreadable.
std::optional<ProcessSample> sample_self();

// Appends the process_* families.
void render_process_metrics(const ProcessSample& s, std::string& out);

}  // namespace kghost::observability
