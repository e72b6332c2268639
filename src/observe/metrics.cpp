// Metrics registry: cells per shard in fixed-size chunks that never move, families rendered at scrape time.
// Registration and expose() take the registry mutex (control plane, any thread); workers only touch their
// own shard's cells through CounterRef/HistogramRef and never lock. Readers find a cell with two loads
// (chunk pointer, then cell) because chunks are allocated once and only freed by ~Registry.
#include <virex/observe/metrics.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <unordered_map>

namespace virex::observe {
namespace {

constexpr std::uint32_t kChunkCells = 4096;  // 32 KiB of cells per chunk
constexpr std::uint32_t kMaxChunks = 4096;   // ≤ 16M cells per shard

using Cell = std::atomic<std::uint64_t>;

enum class Type { counter, gauge, histogram };

const char* type_name(Type t) {
  switch (t) {
    case Type::counter: return "counter";
    case Type::gauge: return "gauge";
    case Type::histogram: return "histogram";
  }
  return "untyped";
}

// One shard's cells: a fixed array of chunk pointers, each chunk allocated on demand under the registry mutex.
struct ShardCells {
  std::array<std::atomic<Cell*>, kMaxChunks> chunks{};
  ~ShardCells() {
    for (auto& c : chunks) delete[] c.load(std::memory_order_relaxed);
  }
};

struct Series {
  std::string labels;   // rendered `k="v",k2="v2"` (escaped), first registration's order
  Labels raw;           // the same, unescaped (Registry::visit)
  std::uint32_t cell = 0;
  // Histograms only: integer bounds (stable address handed out in HistogramId) and their `le` text.
  std::unique_ptr<std::uint64_t[]> bounds;
  std::uint32_t nbounds = 0;
  std::vector<std::string> le;
  std::vector<double> base_bounds;  // the bounds as registered, in base units
  double scale = 1.0;
};

struct Family {
  std::string name;
  std::string help;
  Type type;
  std::vector<Series> series;
  std::unordered_map<std::string, std::size_t> by_labels;  // canonical (sorted) label key → series index
};

bool valid_name(std::string_view s, bool allow_colon) {
  if (s.empty()) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (allow_colon && c == ':') ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

// Text format 0.0.4: HELP escapes `\` and newline; label values also escape `"`.
void append_escaped(std::string& out, std::string_view s, bool quote) {
  for (char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (quote && c == '"') {
      out += "\\\"";
    } else {
      out += c;
    }
  }
}

std::string render_labels(const Labels& labels) {
  std::string out;
  for (const auto& [k, v] : labels) {
    if (!out.empty()) out += ',';
    out += k;
    out += "=\"";
    append_escaped(out, v, true);
    out += '"';
  }
  return out;
}

// Key independent of label order; `\0` cannot appear in a valid label name and separates the parts.
std::string label_key(const Labels& labels) {
  Labels sorted = labels;
  std::sort(sorted.begin(), sorted.end());
  std::string key;
  for (const auto& [k, v] : sorted) {
    key += k;
    key += '\0';
    key += v;
    key += '\0';
  }
  return key;
}

// Shortest round-trip representation, formatted as Go's strconv.FormatFloat(v, 'g', -1, 64) does (what the
// Prometheus Go client prints): scientific only when the decimal exponent is < -4 or >= 21 — "5e-05",
// "0.0001", "0.005", "10" — so `le` values match other exporters' exactly.
void append_double(std::string& out, double v) {
  if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
    return;
  }
  if (std::isnan(v)) {
    out += "NaN";
    return;
  }
  char buf[64];
  const double a = std::fabs(v);
  const bool scientific = a != 0 && (a < 1e-4 || a >= 1e21);
  auto r = std::to_chars(buf, buf + sizeof buf, v, scientific ? std::chars_format::scientific : std::chars_format::fixed);
  out.append(buf, r.ptr);
}

void append_uint(std::string& out, std::uint64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

void append_int(std::string& out, std::int64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

// `units` (an integer count of `scale`) in base units. Dividing by an exact integer (1e9 for 1e-9) gives the
// correctly rounded decimal, so 1500000 ns prints as 0.0015 rather than 0.0015000000000000002.
double to_base_units(std::uint64_t units, double scale) {
  if (scale > 0 && scale < 1) {
    double inv = std::round(1.0 / scale);
    if (std::abs(1.0 / inv - scale) <= scale * 1e-12) return static_cast<double>(units) / inv;
  }
  return static_cast<double>(units) * scale;
}

std::uint64_t to_units(double base, double scale) {
  double u = std::round(base / scale);
  if (!(u >= 0)) return 0;
  if (u >= 18446744073709551615.0) return UINT64_MAX;
  return static_cast<std::uint64_t>(u);
}

}  // namespace

struct Registry::Impl {
  unsigned nshards;
  std::vector<std::unique_ptr<ShardCells>> shards;
  mutable std::mutex mu;  // registration and expose()
  std::uint32_t next_cell = 0;
  std::vector<std::unique_ptr<Family>> families;  // registration order
  std::unordered_map<std::string, Family*> by_name;

  // Reserves `n` consecutive cells in every shard; a run never straddles a chunk (histograms index by pointer).
  std::uint32_t allocate(std::uint32_t n) {
    if (n == 0 || n > kChunkCells) throw std::logic_error("metrics: series needs too many cells");
    std::uint32_t first = next_cell;
    if (first % kChunkCells + n > kChunkCells) first = (first / kChunkCells + 1) * kChunkCells;
    std::uint32_t last_chunk = (first + n - 1) / kChunkCells;
    if (last_chunk >= kMaxChunks) throw std::length_error("metrics: registry is full");
    for (auto& s : shards) {
      for (std::uint32_t c = first / kChunkCells; c <= last_chunk; ++c) {
        if (s->chunks[c].load(std::memory_order_relaxed) == nullptr) {
          s->chunks[c].store(new Cell[kChunkCells](), std::memory_order_release);
        }
      }
    }
    next_cell = first + n;
    return first;
  }

  // Finds or creates the family; a name seen with another type is a programming error.
  Family& family(std::string_view name, std::string_view help, Type type) {
    if (!valid_name(name, true)) throw std::logic_error("metrics: invalid metric name '" + std::string(name) + "'");
    auto it = by_name.find(std::string(name));
    if (it != by_name.end()) {
      if (it->second->type != type) {
        throw std::logic_error("metrics: '" + std::string(name) + "' already registered as " +
                               type_name(it->second->type) + ", not " + type_name(type));
      }
      return *it->second;
    }
    auto f = std::make_unique<Family>();
    f->name = std::string(name);
    f->help = std::string(help);
    f->type = type;
    Family& ref = *f;
    by_name.emplace(f->name, f.get());
    families.push_back(std::move(f));
    return ref;
  }

  static void check_labels(const Family& f, const Labels& labels) {
    for (const auto& [k, v] : labels) {
      if (!valid_name(k, false) || k.starts_with("__") || (f.type == Type::histogram && k == "le")) {
        throw std::logic_error("metrics: invalid label name '" + k + "' on " + f.name);
      }
    }
  }

  // The series registered under `key`, or nullptr when it must be created.
  Series* find(Family& f, const std::string& key) {
    auto it = f.by_labels.find(key);
    return it == f.by_labels.end() ? nullptr : &f.series[it->second];
  }

  Series& add(Family& f, std::string key, const Labels& labels, std::uint32_t cells) {
    Series s;
    s.labels = render_labels(labels);
    s.raw = labels;
    s.cell = allocate(cells);
    f.by_labels.emplace(std::move(key), f.series.size());
    f.series.push_back(std::move(s));
    return f.series.back();
  }

  std::uint64_t sum(std::uint32_t cell) const {
    std::uint64_t total = 0;
    const std::uint32_t chunk = cell / kChunkCells, off = cell % kChunkCells;
    for (const auto& s : shards) {
      total += s->chunks[chunk].load(std::memory_order_acquire)[off].load(std::memory_order_relaxed);
    }
    return total;
  }

  SeriesId scalar(std::string_view name, std::string_view help, const Labels& labels, Type type) {
    std::lock_guard lock(mu);
    Family& f = family(name, help, type);
    check_labels(f, labels);
    std::string key = label_key(labels);
    if (Series* s = find(f, key)) return SeriesId{s->cell};
    return SeriesId{add(f, std::move(key), labels, 1).cell};
  }
};

CounterRef Shard::counter(SeriesId id) const { return CounterRef(registry_->cell(index_, id.cell)); }

HistogramRef Shard::histogram(const HistogramId& id) const {
  return HistogramRef(id.bounds, id.nbounds, registry_->cell(index_, id.first.cell));
}

std::span<const double> default_latency_buckets() {
  static constexpr double kBuckets[] = {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                        0.05,    0.1,    0.25,    0.5,    1,     2.5,    5,     10};
  return kBuckets;
}

Registry::Registry(unsigned shards) : impl_(std::make_unique<Impl>()) {
  impl_->nshards = std::max(1u, shards);
  for (unsigned i = 0; i < impl_->nshards; ++i) impl_->shards.push_back(std::make_unique<ShardCells>());
}

Registry::~Registry() = default;

unsigned Registry::shard_count() const noexcept { return impl_->nshards; }

std::atomic<std::uint64_t>* Registry::cell(unsigned shard, std::uint32_t cell) const noexcept {
  Cell* chunk = impl_->shards[shard]->chunks[cell / kChunkCells].load(std::memory_order_acquire);
  return chunk + cell % kChunkCells;
}

SeriesId Registry::counter(std::string_view name, std::string_view help, const Labels& labels) {
  return impl_->scalar(name, help, labels, Type::counter);
}

SeriesId Registry::gauge(std::string_view name, std::string_view help, const Labels& labels) {
  return impl_->scalar(name, help, labels, Type::gauge);
}

HistogramId Registry::histogram(std::string_view name, std::string_view help, const Labels& labels,
                                std::span<const double> bounds, double scale) {
  if (!(scale > 0)) throw std::logic_error("metrics: histogram scale must be positive");
  for (std::size_t i = 1; i < bounds.size(); ++i) {
    if (!(bounds[i] > bounds[i - 1])) throw std::logic_error("metrics: histogram bounds must ascend");
  }
  std::lock_guard lock(impl_->mu);
  Family& f = impl_->family(name, help, Type::histogram);
  Impl::check_labels(f, labels);
  std::string key = label_key(labels);
  Series* s = impl_->find(f, key);
  if (s == nullptr) {
    const auto nbounds = static_cast<std::uint32_t>(bounds.size());
    s = &impl_->add(f, std::move(key), labels, nbounds + 3);
    s->bounds = std::make_unique<std::uint64_t[]>(nbounds);
    s->base_bounds.assign(bounds.begin(), bounds.end());
    s->nbounds = nbounds;
    s->scale = scale;
    for (std::uint32_t i = 0; i < nbounds; ++i) {
      s->bounds[i] = to_units(bounds[i], scale);
      std::string le;
      append_double(le, bounds[i]);
      s->le.push_back(std::move(le));
    }
    s->le.emplace_back("+Inf");
  }
  return HistogramId{SeriesId{s->cell}, s->bounds.get(), s->nbounds};
}

void Registry::visit(const std::function<void(const SeriesSample&)>& fn) const {
  std::lock_guard lock(impl_->mu);
  std::vector<std::uint64_t> cumulative;
  for (const auto& fp : impl_->families) {
    const Family& f = *fp;
    for (const Series& s : f.series) {
      SeriesSample sample;
      sample.family = f.name;
      sample.labels = &s.raw;
      if (f.type != Type::histogram) {
        const std::uint64_t v = impl_->sum(s.cell);
        sample.value = f.type == Type::gauge ? static_cast<double>(static_cast<std::int64_t>(v))
                                             : static_cast<double>(v);
      } else {
        sample.histogram = true;
        cumulative.assign(s.nbounds + 1, 0);
        std::uint64_t running = 0;
        for (std::uint32_t i = 0; i <= s.nbounds; ++i) cumulative[i] = running += impl_->sum(s.cell + i);
        sample.value = static_cast<double>(running);
        sample.bounds = s.base_bounds;
        sample.cumulative = cumulative;
        sample.sum = to_base_units(impl_->sum(s.cell + s.nbounds + 2), s.scale);
      }
      fn(sample);
    }
  }
}

std::string Registry::expose() const {
  std::lock_guard lock(impl_->mu);
  std::string out;
  out.reserve(impl_->next_cell * 48 + impl_->families.size() * 96);
  for (const auto& fp : impl_->families) {
    const Family& f = *fp;
    out += "# HELP ";
    out += f.name;
    out += ' ';
    append_escaped(out, f.help, false);
    out += "\n# TYPE ";
    out += f.name;
    out += ' ';
    out += type_name(f.type);
    out += '\n';
    for (const Series& s : f.series) {
      if (f.type != Type::histogram) {
        out += f.name;
        if (!s.labels.empty()) {
          out += '{';
          out += s.labels;
          out += '}';
        }
        out += ' ';
        std::uint64_t v = impl_->sum(s.cell);
        if (f.type == Type::gauge) {
          append_int(out, static_cast<std::int64_t>(v));
        } else {
          append_uint(out, v);
        }
        out += '\n';
        continue;
      }
      // Cumulative buckets; _count is the +Inf bucket so a scrape racing the writers stays self-consistent.
      std::uint64_t cumulative = 0;
      for (std::uint32_t i = 0; i <= s.nbounds; ++i) {
        cumulative += impl_->sum(s.cell + i);
        out += f.name;
        out += "_bucket{";
        if (!s.labels.empty()) {
          out += s.labels;
          out += ',';
        }
        out += "le=\"";
        out += s.le[i];
        out += "\"} ";
        append_uint(out, cumulative);
        out += '\n';
      }
      const std::string braces = s.labels.empty() ? std::string() : "{" + s.labels + "}";
      out += f.name;
      out += "_sum";
      out += braces;
      out += ' ';
      append_double(out, to_base_units(impl_->sum(s.cell + s.nbounds + 2), s.scale));
      out += '\n';
      out += f.name;
      out += "_count";
      out += braces;
      out += ' ';
      append_uint(out, cumulative);
      out += '\n';
    }
  }
  return out;
}

}  // namespace virex::observe
