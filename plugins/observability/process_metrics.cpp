#include "process_metrics.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "text_format.hpp"

namespace kghost::observability {
namespace {

std::string read_all(const char* path) {
  std::ifstream in(path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

double boot_time() {
  std::istringstream in(read_all("/proc/stat"));
  std::string key;
  double value = 0;
  while (in >> key) {
    if (key == "btime" && in >> value) return value;
    in.ignore(1 << 20, '\n');
  }
  return 0;
}

double count_fds() {
  std::error_code ec;
  double n = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
    ++n;
  return n > 0 ? n - 1 : 0;  // the directory iterator's own descriptor is listed too
}

}  // namespace

std::optional<ProcessSample> parse_proc_stat(std::string_view stat, double ticks_per_s,
                                             double page_bytes, double boot_time_s) {
  // The command name may hold spaces and ')': the fields start after the last ')'.
  auto close = stat.rfind(')');
  if (close == std::string_view::npos || ticks_per_s <= 0) return std::nullopt;
  std::istringstream in(std::string(stat.substr(close + 1)));
  std::vector<std::string> f;  // f[0] is field 3 (state)
  for (std::string tok; in >> tok;) f.push_back(tok);
  if (f.size() < 22) return std::nullopt;
  auto num = [&](std::size_t field) { return std::strtod(f[field - 3].c_str(), nullptr); };
  ProcessSample s;
  s.cpu_seconds = (num(14) + num(15)) / ticks_per_s;  // utime + stime
  s.start_time_seconds = boot_time_s + num(22) / ticks_per_s;
  s.virtual_bytes = num(23);
  s.resident_bytes = num(24) * page_bytes;
  return s;
}

std::optional<ProcessSample> sample_self() {
  auto s = parse_proc_stat(read_all("/proc/self/stat"), static_cast<double>(sysconf(_SC_CLK_TCK)),
                           static_cast<double>(sysconf(_SC_PAGESIZE)), boot_time());
  if (!s) return std::nullopt;
  s->open_fds = count_fds();
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
    s->max_fds = static_cast<double>(rl.rlim_cur);
  return s;
}

void render_process_metrics(const ProcessSample& s, std::string& out) {
  auto one = [&out](std::string_view name, std::string_view type, std::string_view help, double v) {
    family_header(out, name, type, help);
    out.append(name).append(" ").append(format_number(v)).append("\n");
  };
  one("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.",
      s.cpu_seconds);
  one("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", s.resident_bytes);
  one("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", s.virtual_bytes);
  one("process_start_time_seconds", "gauge",
      "Start time of the process since unix epoch in seconds.", s.start_time_seconds);
  one("process_open_fds", "gauge", "Number of open file descriptors.", s.open_fds);
  if (s.max_fds > 0)
    one("process_max_fds", "gauge", "Maximum number of open file descriptors.", s.max_fds);
}

}  // namespace kghost::observability
