#include "http/chunked_stream.hpp"

#include <cstdio>
#include <mutex>

#include "http/connection.hpp"

namespace kghost {
namespace {

class ChunkedStream final : public StreamState, public std::enable_shared_from_this<ChunkedStream> {
 public:
  ChunkedStream(std::shared_ptr<Connection> conn, std::size_t bound,
                std::function<void()> on_closed)
      : conn_(std::move(conn)), bound_(bound), on_closed_(std::move(on_closed)) {}

  // For HEAD only the head goes out; the stream then ends as if the client had gone.
  void start(std::string head, bool head_only) {
    out_ = std::move(head);
    flushing_ = true;
    head_only_ = head_only;
    write_out();
    watch_client();
  }

  StreamWrite write(std::string_view data) override {
    if (data.empty()) return StreamWrite::accepted;
    std::lock_guard lock(mutex_);
    if (gone_ || closing_) return StreamWrite::closed;
    if (pending_.size() + data.size() > bound_) return StreamWrite::full;
    char size_line[24];
    int n = std::snprintf(size_line, sizeof size_line, "%zx\r\n", data.size());
    pending_.append(size_line, static_cast<std::size_t>(n));
    pending_.append(data);
    pending_.append("\r\n");
    schedule_flush_locked();
    return StreamWrite::accepted;
  }

  void close() override {
    notify_closed();  // the plugin is letting go: tell it now if nobody has yet
    std::lock_guard lock(mutex_);
    if (closing_) return;
    closing_ = true;
    schedule_flush_locked();
  }

  void abort() override {
    net::post(conn_->socket().get_executor(), [self = shared_from_this()] { self->client_gone(); });
  }

 private:
  void schedule_flush_locked() {
    if (flushing_) return;
    flushing_ = true;
    net::post(conn_->socket().get_executor(), [self = shared_from_this()] { self->flush(); });
  }

  void flush() {
    {
      std::lock_guard lock(mutex_);
      out_.swap(pending_);
      pending_.clear();
      if (closing_ && !final_sent_ && !gone_) {
        out_.append("0\r\n\r\n");
        final_sent_ = true;
      }
      if (out_.empty() || gone_) {
        flushing_ = false;
        return;
      }
    }
    write_out();
  }

  void write_out() {
    conn_->expire_never();
    net::async_write(conn_->socket(), net::buffer(out_),
                     [self = shared_from_this()](beast::error_code ec, std::size_t) {
                       if (ec || self->head_only_) return self->client_gone();
                       bool done, more;
                       {
                         std::lock_guard lock(self->mutex_);
                         done = self->final_sent_;
                         more = !self->pending_.empty() || (self->closing_ && !self->final_sent_);
                         if (!more) self->flushing_ = false;
                       }
                       if (done && !more) return self->conn_->close();
                       if (more) self->flush();
                     });
  }

  void watch_client() {
    conn_->socket().async_read_some(net::buffer(scratch_),
                                    [self = shared_from_this()](beast::error_code ec, std::size_t) {
                                      if (ec) return self->client_gone();
                                      self->watch_client();  // ignore anything the client sends
                                    });
  }

  void client_gone() {
    {
      std::lock_guard lock(mutex_);
      if (gone_) return;
      gone_ = true;
      pending_.clear();
    }
    conn_->close();
    notify_closed();
  }

  // Runs on_closed at most once. Under callback_mutex_, so that a close() on another thread
  // waits for a callback in progress: once stream_close returns, the plugin may free what the
  // callback touches. Recursive, because the callback may itself close the stream.
  void notify_closed() {
    std::lock_guard lock(callback_mutex_);
    auto fn = std::move(on_closed_);
    on_closed_ = nullptr;
    if (fn) fn();
  }

  std::shared_ptr<Connection> conn_;
  std::size_t bound_;
  std::mutex mutex_;  // guards pending_ and the flags
  std::string pending_;
  std::string out_;                      // being written; only touched on the connection's thread
  std::recursive_mutex callback_mutex_;  // guards on_closed_ and its call
  std::function<void()> on_closed_;
  bool flushing_ = false, closing_ = false, final_sent_ = false, gone_ = false;
  bool head_only_ = false;  // set before the first write; read on the connection's thread
  char scratch_[512];
};

}  // namespace

std::shared_ptr<StreamState> start_chunked_stream(std::shared_ptr<Connection> conn,
                                                  std::size_t bound,
                                                  std::function<void()> on_closed, std::string head,
                                                  bool head_only) {
  auto s = std::make_shared<ChunkedStream>(std::move(conn), bound, std::move(on_closed));
  s->start(std::move(head), head_only);
  return s;
}

}  // namespace kghost
