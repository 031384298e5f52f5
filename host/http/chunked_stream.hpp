// A chunked response: writes from any thread are buffered (bounded) and flushed on the
// connection's thread; a read on the socket notices the client leaving.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "http/exchange.hpp"

namespace kghost {

class Connection;

// Writes `head` on `conn` and hands back the stream for the body. At most `bound` bytes wait
// to be written. on_closed runs once when the client goes, the stream is aborted, or the plugin
// closes it. For HEAD (head_only) only the head goes out; the stream then ends as if the client
// had gone.
std::shared_ptr<StreamState> start_chunked_stream(std::shared_ptr<Connection> conn,
                                                  std::size_t bound,
                                                  std::function<void()> on_closed, std::string head,
                                                  bool head_only);

}  // namespace kghost
