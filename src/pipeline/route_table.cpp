// Route table: per host group, exact paths in a hash map, prefixes by distinct length, templates in a
// segment trie. Every index yields candidates with their config position; the lowest position whose
// method matches wins, so the result is exactly "first match in config order" at hash-lookup cost.
#include <virex/pipeline/route_table.hpp>

#include <algorithm>
#include <charconv>
#include <map>
#include <set>
#include <unordered_map>

namespace virex::pipeline {

namespace {

// Heterogeneous lookup: find(string_view) without building a std::string on the hot path.
struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
template <class V>
using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;

constexpr std::uint32_t bit(http::Method m) { return 1u << static_cast<unsigned>(m); }

struct Segment {
  bool param = false;
  std::string text;          // literal text, or the parameter name
  ParamType type = ParamType::str;
};

std::vector<Segment> parse_template(std::string_view path) {
  std::vector<Segment> segs;
  std::size_t i = 1;  // skip the leading '/'
  while (i <= path.size()) {
    const auto slash = path.find('/', i);
    std::string_view s = path.substr(i, slash == std::string_view::npos ? std::string_view::npos : slash - i);
    Segment seg;
    if (s.size() >= 2 && s.front() == '{' && s.back() == '}') {
      seg.param = true;
      std::string_view inner = s.substr(1, s.size() - 2);
      const auto colon = inner.find(':');
      seg.text = std::string(inner.substr(0, colon));
      if (colon != std::string_view::npos) {
        const auto t = inner.substr(colon + 1);
        seg.type = t == "int64" ? ParamType::int64 : t == "uint64" ? ParamType::uint64 : ParamType::str;
      }
    } else {
      seg.text = std::string(s);
    }
    segs.push_back(std::move(seg));
    if (slash == std::string_view::npos) break;
    i = slash + 1;
  }
  return segs;
}

bool param_accepts(ParamType t, std::string_view v, std::int64_t& out) {
  if (v.empty()) return false;
  if (t == ParamType::str) return true;
  if (t == ParamType::int64) {
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
    return ec == std::errc{} && p == v.data() + v.size();
  }
  std::uint64_t u = 0;
  if (v.front() == '-' || v.front() == '+') return false;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), u);
  out = static_cast<std::int64_t>(u);
  return ec == std::errc{} && p == v.data() + v.size();
}

struct TrieNode {
  StringMap<std::unique_ptr<TrieNode>> literal;
  std::vector<std::pair<ParamType, std::unique_ptr<TrieNode>>> params;  // one child per type
  std::uint32_t terminal = UINT32_MAX;  // lowest route index ending here
};

struct Group {
  StringMap<std::vector<std::uint32_t>> exact;
  StringMap<std::vector<std::uint32_t>> prefix;
  std::vector<std::size_t> prefix_lengths;  // distinct, ascending
  TrieNode templates;
  bool has_templates = false;
};

// What match() accumulates while visiting candidates.
struct Visit {
  http::Method method;
  std::string_view method_text;
  const std::vector<CompiledRoute>* routes;
  std::uint32_t best = UINT32_MAX;
  // Routes that matched host and path but not the method: their methods make the 405's Allow.
  std::size_t nrefused = 0;
  std::uint32_t refused_mask = 0;
  std::array<std::uint32_t, 16> refused_extra{};  // routes with non-standard methods (rare; capped)
  std::size_t nextra = 0;

  void offer(std::uint32_t idx) {
    if (idx >= best) return;
    const CompiledRoute& r = (*routes)[idx];
    if (r.allows(method, method_text)) {
      best = idx;
      return;
    }
    ++nrefused;
    refused_mask |= r.method_mask;
    if (!r.extra_methods.empty() && nextra < refused_extra.size()) refused_extra[nextra++] = idx;
  }
};

void walk(const TrieNode& n, std::string_view rest, Visit& v, const std::vector<std::vector<std::uint32_t>>& ends) {
  if (rest.empty()) {
    if (n.terminal != UINT32_MAX)
      for (std::uint32_t idx : ends[n.terminal]) v.offer(idx);
    return;
  }
  // rest starts with '/'
  const auto slash = rest.find('/', 1);
  const std::string_view seg = rest.substr(1, slash == std::string_view::npos ? std::string_view::npos : slash - 1);
  const std::string_view tail = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash);
  if (!n.literal.empty()) {
    if (auto it = n.literal.find(seg); it != n.literal.end()) walk(*it->second, tail, v, ends);
  }
  for (const auto& [type, child] : n.params) {
    std::int64_t ignored = 0;
    if (param_accepts(type, seg, ignored)) walk(*child, tail, v, ends);
  }
}

}  // namespace

bool CompiledRoute::allows(http::Method m, std::string_view text) const noexcept {
  if (method_mask == 0 && extra_methods.empty()) return true;
  if (m != http::Method::other) return (method_mask & bit(m)) != 0;
  return std::find(extra_methods.begin(), extra_methods.end(), text) != extra_methods.end();
}

struct RouteTable::Impl {
  std::vector<CompiledRoute> routes;
  std::vector<std::vector<Segment>> templates;   // per route; empty unless a template route
  std::vector<std::vector<std::uint32_t>> trie_ends;  // terminal id → route indices (ascending)
  StringMap<Group> hosts;  // exact host (lower-case)
  std::vector<std::pair<std::string, Group>> suffixes;  // "*.example.com" → ".example.com"
  Group any;

  Group& group_for(const std::string& host) {
    if (host == "*") return any;
    if (host.size() > 1 && host[0] == '*') {
      const std::string suffix = host.substr(1);
      for (auto& [s, g] : suffixes)
        if (s == suffix) return g;
      suffixes.emplace_back(suffix, Group{});
      return suffixes.back().second;
    }
    return hosts[host];
  }

  void add(Group& g, const config::Route& r, std::uint32_t idx) {
    const auto& m = r.match;
    switch (m.kind) {
      case config::PathKind::exact:
        g.exact[m.path].push_back(idx);
        break;
      case config::PathKind::prefix:
        g.prefix[m.path].push_back(idx);
        if (std::find(g.prefix_lengths.begin(), g.prefix_lengths.end(), m.path.size()) == g.prefix_lengths.end())
          g.prefix_lengths.push_back(m.path.size());
        std::sort(g.prefix_lengths.begin(), g.prefix_lengths.end());
        break;
      case config::PathKind::template_: {
        g.has_templates = true;
        TrieNode* n = &g.templates;
        for (const Segment& s : templates[idx]) {
          if (!s.param) {
            auto& child = n->literal[s.text];
            if (!child) child = std::make_unique<TrieNode>();
            n = child.get();
            continue;
          }
          TrieNode* next = nullptr;
          for (auto& [t, c] : n->params)
            if (t == s.type) next = c.get();
          if (!next) {
            n->params.emplace_back(s.type, std::make_unique<TrieNode>());
            next = n->params.back().second.get();
          }
          n = next;
        }
        if (n->terminal == UINT32_MAX) {
          n->terminal = static_cast<std::uint32_t>(trie_ends.size());
          trie_ends.emplace_back();
        }
        trie_ends[n->terminal].push_back(idx);
        break;
      }
    }
  }

  void visit(const Group& g, std::string_view path, Visit& v) const {
    if (!g.exact.empty()) {
      if (auto it = g.exact.find(path); it != g.exact.end())
        for (std::uint32_t idx : it->second) v.offer(idx);
    }
    for (std::size_t len : g.prefix_lengths) {
      if (len > path.size()) break;
      if (auto it = g.prefix.find(path.substr(0, len)); it != g.prefix.end())
        for (std::uint32_t idx : it->second) v.offer(idx);
    }
    if (g.has_templates) walk(g.templates, path, v, trie_ends);
  }
};

RouteTable::RouteTable() : impl_(std::make_unique<Impl>()) {}
RouteTable::~RouteTable() = default;
RouteTable::RouteTable(RouteTable&&) noexcept = default;
RouteTable& RouteTable::operator=(RouteTable&&) noexcept = default;

const std::vector<CompiledRoute>& RouteTable::routes() const noexcept { return impl_->routes; }

RouteTable RouteTable::build(const std::vector<config::Route>& routes, const FileReader& read_file,
                             std::vector<BuildError>& errors) {
  RouteTable t;
  Impl& m = *t.impl_;
  m.routes.reserve(routes.size());
  m.templates.resize(routes.size());
  for (std::uint32_t i = 0; i < routes.size(); ++i) {
    const config::Route& r = routes[i];
    CompiledRoute c;
    c.name = r.name;
    c.index = i;
    for (const std::string& name : r.match.methods) {
      const http::Method meth = http::method_from_string(name);
      if (meth == http::Method::other) c.extra_methods.push_back(name);
      else c.method_mask |= bit(meth);
      if (meth == http::Method::get) c.method_mask |= bit(http::Method::head);  // RFC 9110 §9.3.2
    }
    if (r.upstream) c.upstream = &*r.upstream;
    if (r.query) c.query = &*r.query;
    c.config = &r;
    if ((r.upstream || r.query) && r.cache) {
      const config::RouteCache& rc = *r.cache;
      using std::chrono::duration_cast;
      using std::chrono::seconds;
      c.cache = &rc;
      if (rc.edge_ttl) c.cache_policy.edge_ttl = duration_cast<seconds>(*rc.edge_ttl);
      c.cache_policy.private_scope = rc.scope == config::CacheScope::private_;
      c.cache_policy.store_set_cookie = rc.store_set_cookie;
      c.cache_policy.negative_ttl = duration_cast<seconds>(rc.negative_ttl);
      c.cache_policy.default_swr = duration_cast<seconds>(rc.stale_while_revalidate);
      c.cache_policy.default_sie = duration_cast<seconds>(rc.stale_if_error);
      c.cache_key.headers = rc.key.headers;
      c.cache_key.query = rc.key.query;
      c.cache_key.ignore_query = rc.key.ignore_query;
      c.cache_key.cookies = rc.key.cookies;
    }
    std::string body = r.respond.body;
    if (!r.upstream && r.respond.file) {
      std::string why;
      if (auto content = read_file(*r.respond.file, why)) body = std::move(*content);
      else errors.push_back({r.respond.file_location, "routes[" + std::to_string(i) + "].respond.file", why});
    }
    c.response = http::PreparedResponse::make(r.respond.status, r.respond.headers, std::move(body));
    if (r.match.kind == config::PathKind::template_) m.templates[i] = parse_template(r.match.path);
    m.routes.push_back(std::move(c));
    m.add(m.group_for(r.match.host), r, i);
  }
  return t;
}

void RouteTable::bind_clusters(const std::function<std::uint32_t(const std::string&)>& index_of) {
  for (CompiledRoute& c : impl_->routes)
    if (c.upstream) c.cluster = index_of(c.upstream->cluster);
}

Match RouteTable::match(std::string_view host, std::string_view path, http::Method method,
                        std::string_view method_text) const {
  const Impl& m = *impl_;
  Visit v{method, method_text, &m.routes};
  // Host names are case-insensitive (RFC 9110 §4.2.3); configured hosts are stored lower-case.
  char lower[256];
  const std::size_t n = std::min(host.size(), sizeof lower);
  for (std::size_t i = 0; i < n; ++i) {
    const char c = host[i];
    lower[i] = (c >= 'A' && c <= 'Z') ? static_cast<char>(c | 0x20) : c;
  }
  const std::string_view h(lower, n);
  if (!m.hosts.empty() && !h.empty()) {
    if (auto it = m.hosts.find(h); it != m.hosts.end()) m.visit(it->second, path, v);
  }
  for (const auto& [suffix, g] : m.suffixes)
    if (h.size() > suffix.size() && h.substr(h.size() - suffix.size()) == suffix) m.visit(g, path, v);
  m.visit(m.any, path, v);

  Match out;
  if (v.best != UINT32_MAX) {
    out.route = &m.routes[v.best];
    // Captures of a template route: walk its segments against the path.
    const auto& segs = m.templates[v.best];
    std::size_t pos = 1;
    for (const Segment& s : segs) {
      const auto slash = path.find('/', pos);
      const std::string_view seg = path.substr(pos, slash == std::string_view::npos ? std::string_view::npos : slash - pos);
      if (s.param && out.ncaptures < kMaxCaptures) {
        Capture& c = out.captures[out.ncaptures++];
        c.name = s.text;
        c.value = seg;
        param_accepts(s.type, seg, c.int_value);
      }
      pos = slash == std::string_view::npos ? path.size() : slash + 1;
    }
    return out;
  }
  if (v.nrefused > 0) {
    out.method_not_allowed = true;
    const std::uint32_t mask = v.refused_mask;
    std::set<std::string> extra;
    for (std::size_t i = 0; i < v.nextra; ++i) {
      const CompiledRoute& r = m.routes[v.refused_extra[i]];
      extra.insert(r.extra_methods.begin(), r.extra_methods.end());
    }
    static constexpr std::pair<http::Method, std::string_view> kNames[] = {
        {http::Method::get, "GET"},         {http::Method::head, "HEAD"},     {http::Method::post, "POST"},
        {http::Method::put, "PUT"},         {http::Method::delete_, "DELETE"}, {http::Method::connect, "CONNECT"},
        {http::Method::options, "OPTIONS"}, {http::Method::trace, "TRACE"},   {http::Method::patch, "PATCH"}};
    for (const auto& [meth, name] : kNames) {
      if (!(mask & bit(meth))) continue;
      if (!out.allow.empty()) out.allow += ", ";
      out.allow += name;
    }
    for (const auto& e : extra) {
      if (!out.allow.empty()) out.allow += ", ";
      out.allow += e;
    }
  }
  return out;
}

}  // namespace virex::pipeline
