// Test fixture: observes the bus topics stripe.> that the webhooks plugin publishes, and
// appends "<event id> <topic>\n" per delivery to the file named by config `file` (one
// write(2) with O_APPEND, so several kghost processes can share one file and a line is never
// torn). Every delivery is recorded: de-duplication is what the tests check, not done here.
// GET /wh-test/metrics renders the host's metrics (the observability plugin owns /metrics).
// Optional config `delay_us` (a string, e.g. "2000"): each delivery takes that long, so the
// webhooks queue builds a backlog (processing waits for this subscriber's confirmation).
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <kghost/plugin.hpp>
#include <stdexcept>
#include <string>
#include <thread>

namespace {

class WhObserver final : public kghost::sdk::Plugin {
 public:
  explicit WhObserver(kghost::sdk::Host h) : Plugin(h) {
    auto file = host().config("file");
    if (!file) throw std::runtime_error("wh_observer: config 'file' is required");
    fd_ = ::open(std::string(*file).c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd_ < 0) throw std::runtime_error("wh_observer: cannot open " + std::string(*file));
    if (auto d = host().config("delay_us"))
      delay_ = std::chrono::microseconds(std::stoll(std::string(*d)));
    subscribe("stripe.>", [this](std::string_view topic, std::string_view, std::string_view id) {
      if (delay_.count() > 0) std::this_thread::sleep_for(delay_);
      std::string line = std::string(id) + " " + std::string(topic) + "\n";
      if (::write(fd_, line.data(), line.size()) != static_cast<ssize_t>(line.size()))
        throw std::runtime_error("wh_observer: short write");
    });
    route({.method = "GET", .path = "/wh-test/metrics", .is_public = true},
          [this](kghost::sdk::Request& req) {
            std::string text;
            host().api()->metrics_render(
                host().ctx(),
                [](void* ud, kg_str s) { static_cast<std::string*>(ud)->append(s.ptr, s.len); },
                &text);
            req.respond(200, text, "text/plain");
          });
  }
  ~WhObserver() override {
    if (fd_ >= 0) ::close(fd_);
  }

 private:
  int fd_ = -1;
  std::chrono::microseconds delay_{0};
};

}  // namespace

KGHOST_PLUGIN(WhObserver, "wh_observer", "1.0.0", "Test fixture: records stripe.> bus deliveries",
              0)
