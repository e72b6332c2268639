// Metrics registry: counters, gauges and histograms with per-worker shards, summed at scrape time.
// Series are registered on the control plane (any thread; a mutex guards registration only). Each worker
// writes its own Shard with relaxed atomics — no lock, no contention on the hot path; `expose()` (any
// thread) reads every shard with relaxed loads and renders the Prometheus text format 0.0.4.
// Naming: virex_<component>_<what>_<unit>, `_total` on counters, base units; labels bounded.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace virex::observe {

using Labels = std::vector<std::pair<std::string, std::string>>;

// Identifies one series (or, for a histogram, its first cell) in every shard.
struct SeriesId {
  std::uint32_t cell = 0;
};

// A counter or gauge cell of one shard. Only the shard's owning thread may write.
class CounterRef {
 public:
  CounterRef() = default;
  explicit CounterRef(std::atomic<std::uint64_t>* cell) : cell_(cell) {}
  void inc(std::uint64_t n = 1) const noexcept {
    cell_->store(cell_->load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  // Gauges store two's complement; summed across shards at scrape time.
  void add(std::int64_t d) const noexcept { inc(static_cast<std::uint64_t>(d)); }
  bool valid() const noexcept { return cell_ != nullptr; }

 private:
  std::atomic<std::uint64_t>* cell_ = nullptr;
};

// A histogram of one shard: bucket cells, then count, then sum (in integer units of `scale`).
class HistogramRef {
 public:
  HistogramRef() = default;
  HistogramRef(const std::uint64_t* bounds, std::uint32_t nbounds, std::atomic<std::uint64_t>* cells)
      : bounds_(bounds), nbounds_(nbounds), cells_(cells) {}
  // `value` in the histogram's integer unit (e.g. nanoseconds when scale is 1e-9).
  void observe(std::uint64_t value) const noexcept {
    std::uint32_t i = 0;
    while (i < nbounds_ && value > bounds_[i]) ++i;
    bump(i, 1);
    bump(nbounds_ + 1, 1);      // count
    bump(nbounds_ + 2, value);  // sum
  }
  bool valid() const noexcept { return cells_ != nullptr; }

 private:
  void bump(std::uint32_t i, std::uint64_t n) const noexcept {
    cells_[i].store(cells_[i].load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  const std::uint64_t* bounds_ = nullptr;
  std::uint32_t nbounds_ = 0;  // bucket i counts values <= bounds_[i]; bucket nbounds_ is +Inf
  std::atomic<std::uint64_t>* cells_ = nullptr;
};

struct HistogramId {
  SeriesId first;
  const std::uint64_t* bounds = nullptr;  // owned by the registry, stable
  std::uint32_t nbounds = 0;
};

class Registry;

// One writer's cells (a worker's, or the control thread's). Cells never move once allocated.
class Shard {
 public:
  CounterRef counter(SeriesId id) const;
  CounterRef gauge(SeriesId id) const { return counter(id); }
  HistogramRef histogram(const HistogramId& id) const;

 private:
  friend class Registry;
  explicit Shard(const Registry* r, unsigned index) : registry_(r), index_(index) {}
  const Registry* registry_;
  unsigned index_;
};

// Default latency buckets in seconds: 50µs … 10s.
std::span<const double> default_latency_buckets();

// One series as Registry::visit shows it (views valid during the callback only).
struct SeriesSample {
  std::string_view family;
  const Labels* labels = nullptr;
  bool histogram = false;
  double value = 0;                             // counter/gauge value; for a histogram, its count
  std::span<const double> bounds;               // histogram: upper bounds in base units (+Inf implied)
  std::span<const std::uint64_t> cumulative;    // histogram: cumulative counts, bounds.size() + 1
  double sum = 0;                               // histogram: sum in base units
};

class Registry {
 public:
  // `shards`: how many independent writers (workers + 1 for the control thread).
  explicit Registry(unsigned shards);
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  unsigned shard_count() const noexcept;
  // Shard i's handle factory; i < shard_count(). The last shard is the control thread's by convention.
  Shard shard(unsigned i) const { return Shard(this, i); }

  // Get-or-create a series: the same name + labels return the same id (so a reload keeps its series).
  // Thread-safe; not for the hot path. Help text and type are taken from the first registration of a name.
  SeriesId counter(std::string_view name, std::string_view help, const Labels& labels = {});
  SeriesId gauge(std::string_view name, std::string_view help, const Labels& labels = {});
  // `bounds` in base units (ascending); observations are integers in units of `scale` (1e-9 → ns).
  HistogramId histogram(std::string_view name, std::string_view help, const Labels& labels,
                        std::span<const double> bounds, double scale);

  // Prometheus text exposition (format 0.0.4) of every series, families in registration order.
  std::string expose() const;
  // Calls `fn` for every series (summed over shards), families in registration order. Any thread; holds the
  // registration lock meanwhile, so `fn` must be quick and must not register.
  void visit(const std::function<void(const SeriesSample&)>& fn) const;

  // Internal: the cell `cell` of shard `shard`.
  std::atomic<std::uint64_t>* cell(unsigned shard, std::uint32_t cell) const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace virex::observe
