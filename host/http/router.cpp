#include "http/router.hpp"

#include <algorithm>

namespace kghost {

struct Router::Node {
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, std::unique_ptr<Node>, Hash, std::equal_to<>> literal;
  std::unique_ptr<Node> param;
  std::string param_name;
  std::map<std::string, const RouteInfo*, std::less<>> methods;
};

Router::Router() : root_(std::make_unique<Node>()) {}
Router::~Router() = default;
Router::Router(Router&&) noexcept = default;
Router& Router::operator=(Router&&) noexcept = default;

namespace {

template <class F>
void for_each_segment(std::string_view path, F&& f) {
  std::size_t i = 1;  // after the leading '/'
  while (i <= path.size()) {
    std::size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    if (!f(path.substr(i, j - i))) return;
    i = j + 1;
  }
}

int hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

bool percent_decode(std::string_view in, std::string& out) {
  out.clear();
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out += in[i];
      continue;
    }
    if (i + 2 >= in.size()) return false;
    int h = hex(in[i + 1]), l = hex(in[i + 2]);
    if (h < 0 || l < 0) return false;
    out += static_cast<char>(h * 16 + l);
    i += 2;
  }
  return true;
}

std::string Router::add(RouteInfo route) {
  const std::string& path = route.path;
  if (path.empty() || path[0] != '/') return "path template must start with '/': \"" + path + "\"";
  if (route.method.empty()) return "route " + path + " has no method";
  Node* node = root_.get();
  std::string error;
  for_each_segment(path, [&](std::string_view seg) {
    if (seg.size() >= 2 && seg.front() == '{' && seg.back() == '}') {
      std::string name(seg.substr(1, seg.size() - 2));
      if (name.empty() || name.find_first_of("{}/") != std::string::npos) {
        error = "bad parameter segment \"" + std::string(seg) + "\" in \"" + path + "\"";
        return false;
      }
      if (!node->param) {
        node->param = std::make_unique<Node>();
        node->param->param_name = name;
      } else if (node->param->param_name != name) {
        error = "parameter {" + name + "} in \"" + path + "\" conflicts with {" +
                node->param->param_name + "} at the same position of another route";
        return false;
      }
      node = node->param.get();
    } else {
      if (seg.find_first_of("{}") != std::string_view::npos) {
        error = "braces must enclose a whole segment in \"" + path + "\"";
        return false;
      }
      auto& child = node->literal[std::string(seg)];
      if (!child) child = std::make_unique<Node>();
      node = child.get();
    }
    return true;
  });
  if (!error.empty()) return error;
  if (auto it = node->methods.find(route.method); it != node->methods.end()) {
    return route.method + " " + path + " is already registered by " + it->second->owner + " (as " +
           it->second->path + "); disable one of the two plugins or change a path";
  }
  routes_.push_back(std::make_unique<RouteInfo>(std::move(route)));
  node->methods.emplace(routes_.back()->method, routes_.back().get());
  return {};
}

RouteMatch Router::match(std::string_view method, std::string_view path) const {
  RouteMatch m;
  if (path.empty() || path[0] != '/') return m;
  // Collect segments first (templates are shallow; backtracking stays cheap).
  std::string_view segs[32];
  std::size_t n = 0;
  bool too_deep = false;
  for_each_segment(path, [&](std::string_view s) {
    if (n == 32) {
      too_deep = true;
      return false;
    }
    segs[n++] = s;
    return true;
  });
  if (too_deep) return m;

  const Node* found = nullptr;
  std::vector<std::pair<const Node*, std::string_view>> bound;  // param nodes taken
  auto walk = [&](auto&& self, const Node* node, std::size_t i) -> bool {
    if (i == n) {
      if (node->methods.empty()) return false;
      found = node;
      return true;
    }
    if (auto it = node->literal.find(segs[i]); it != node->literal.end()) {
      if (self(self, it->second.get(), i + 1)) return true;
    }
    if (node->param && !segs[i].empty()) {
      bound.emplace_back(node->param.get(), segs[i]);
      if (self(self, node->param.get(), i + 1)) return true;
      bound.pop_back();
    }
    return false;
  };
  if (!walk(walk, root_.get(), 0)) return m;

  auto it = found->methods.find(method);
  if (it == found->methods.end() && method == "HEAD") it = found->methods.find("GET");
  if (it == found->methods.end()) {
    m.kind = RouteMatch::method_not_allowed;
    bool has_head = found->methods.count("HEAD") > 0;
    for (auto& [meth, _] : found->methods) {
      m.allow += (m.allow.empty() ? "" : ", ") + meth;
      if (meth == "GET" && !has_head) m.allow += ", HEAD";  // the map is sorted: GET < HEAD
    }
    return m;
  }
  m.kind = RouteMatch::found;
  m.route = it->second;
  for (auto& [node, raw] : bound) {
    std::string value;
    if (!percent_decode(raw, value)) {
      m.kind = RouteMatch::not_found;
      return m;
    }
    m.params.emplace_back(node->param_name, std::move(value));
  }
  return m;
}

std::vector<const RouteInfo*> Router::routes() const {
  std::vector<const RouteInfo*> out;
  for (auto& r : routes_) out.push_back(r.get());
  return out;
}

}  // namespace kghost
