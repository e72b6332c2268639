// The YAML walking machinery shared by the config section readers (loader.cpp, upstreams.cpp): Field (a node,
// its dotted key path and position), Walker (type checks, unknown and repeated keys, every error kept), Unique
// (repeated values with the line of the first), and the character classes names and paths are checked with.
// Private to src/config; main thread only; nothing here throws on bad input.
#pragma once

#include <virex/config/loader.hpp>

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

namespace virex::config::detail {

inline constexpr std::size_t kNoLimit = std::numeric_limits<std::size_t>::max();
inline constexpr Duration kMaxTimeout = std::chrono::hours(24);

// ---- character classes -------------------------------------------------------------------------------------

inline bool is_lower_alpha(char c) { return c >= 'a' && c <= 'z'; }
inline bool is_alpha(char c) { return is_lower_alpha(c) || (c >= 'A' && c <= 'Z'); }
inline bool is_digit(char c) { return c >= '0' && c <= '9'; }

template <typename Pred>
bool all_of(std::string_view text, Pred pred) {
  return !text.empty() && std::all_of(text.begin(), text.end(), pred);
}

// RFC 9110 §5.6.2: token = 1*tchar.
inline bool is_token(std::string_view text) {
  return all_of(text, [](char c) {
    return is_alpha(c) || is_digit(c) || std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
  });
}

// Names of listeners and routes end up as metric labels and in logs: keep them to [A-Za-z0-9_.-]+.
inline bool is_label(std::string_view text) {
  return all_of(text, [](char c) { return is_alpha(c) || is_digit(c) || c == '_' || c == '.' || c == '-'; });
}

// Path template parameter names: [a-z_][a-z0-9_]*.
inline bool is_param_name(std::string_view text) {
  return !text.empty() && !is_digit(text.front()) &&
         all_of(text, [](char c) { return is_lower_alpha(c) || is_digit(c) || c == '_'; });
}

// A lower-cased DNS name or IPv4 literal: dot-separated labels of [a-z0-9_-], 1..63 bytes each (RFC 1035 §2.3.4).
inline bool is_host_name(std::string_view text) {
  if (text.empty() || text.size() > 253) return false;
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = text.find('.', start);
    const std::string_view label = text.substr(start, dot == std::string_view::npos ? dot : dot - start);
    if (label.size() > 63 || !all_of(label, [](char c) {
          return is_lower_alpha(c) || is_digit(c) || c == '-' || c == '_';
        })) {
      return false;
    }
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

// RFC 9110 §5.5: a field value is visible characters, spaces and tabs; CR, LF and NUL would split or cut a header.
inline bool has_control_char(std::string_view text) {
  return std::any_of(text.begin(), text.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return (u < 0x20 && c != '\t') || u == 0x7f;
  });
}

inline std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

inline std::string upper(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (is_lower_alpha(c)) c = static_cast<char>(c - 'a' + 'A');
  }
  return out;
}

inline std::string quoted(std::string_view text) { return "\"" + std::string(text) + "\""; }

inline std::string join(const std::string& path, std::string_view key) {
  return path.empty() ? std::string(key) : path + "." + std::string(key);
}

// ---- walking the YAML tree ---------------------------------------------------------------------------------

// A YAML node, the dotted key path that reached it and where it stood.
struct Field {
  Field(YAML::Node node_, std::string path_, Location at_)
      : node(std::move(node_)), path(std::move(path_)), at(std::move(at_)) {}
  Field(const Field&) = default;
  // YAML::Node::operator= writes through into the document it refers to; reset() only rebinds the handle.
  Field& operator=(const Field& other) {
    node.reset(other.node);
    path = other.path;
    at = other.at;
    return *this;
  }

  YAML::Node node;
  std::string path;
  Location at;
};

using Reader = std::function<void(const Field&)>;
using KeyReader = std::pair<std::string_view, Reader>;

// Walks YAML nodes for the section readers below: reports type errors, unknown and repeated keys, and keeps
// every error (it never stops at the first).
class Walker {
 public:
  Walker(std::string source, std::vector<Error>& errors) : source_(std::move(source)), errors_(errors) {}

  Location start() const { return {source_, 1, 1}; }

  // Where `node` stood; `fallback` when yaml-cpp has no mark or the node is null (a null value is marked at the
  // next token, often on the next line, so its key is the better place to point at).
  Location locate(const YAML::Node& node, const Location& fallback) const {
    return node.IsNull() ? fallback : locate(node.Mark(), fallback);
  }
  Location locate(const YAML::Mark& mark, const Location& fallback) const {
    if (mark.is_null()) return fallback;
    return {source_, mark.line + 1, mark.column + 1};  // yaml-cpp marks are 0-based
  }

  void fail(Location at, std::string key, std::string reason) {
    errors_.push_back({std::move(at), std::move(key), std::move(reason)});
  }
  void fail(const Field& field, std::string reason) { fail(field.at, field.path, std::move(reason)); }

  // How many errors have been reported so far (a reader compares counts to tell whether a part it depends on
  // was valid, and skips checks that would only repeat that error).
  std::size_t error_count() const { return errors_.size(); }

  // Calls `each(key, value)` for every entry of the mapping `field`; keys that are not strings or repeat are
  // errors. A null value is an empty mapping. Returns false (after an error) when `field` is no mapping.
  template <typename Fn>
  bool entries(const Field& field, Fn each) {
    if (!has_shape(field, field.node.IsMap(), "expected a mapping")) return false;
    std::unordered_set<std::string> seen;  // a set: a hostile file with 100k keys must not cost O(n²)
    for (auto it = field.node.begin(); it != field.node.end(); ++it) {
      Field key{it->first, field.path, locate(it->first, field.at)};
      if (!key.node.IsScalar()) {
        fail(key, "expected a string key");
        continue;
      }
      key.path = join(field.path, key.node.Scalar());
      if (!seen.insert(key.node.Scalar()).second) {
        fail(key, "duplicate key");
        continue;
      }
      const Field value{it->second, key.path, locate(it->second, key.at)};
      each(key, value);
    }
    return true;
  }

  // Reads the mapping `field` with one reader per known key; any other key is an error.
  bool map(const Field& field, std::initializer_list<KeyReader> readers) {
    return entries(field, [&](const Field& key, const Field& value) {
      const auto reader = std::find_if(readers.begin(), readers.end(),
                                       [&](const KeyReader& r) { return r.first == key.node.Scalar(); });
      if (reader == readers.end()) return fail(key, "unknown key");
      reader->second(value);
    });
  }

  // Calls `each(item)` for every item of the sequence `field`, named `path[i]`. A null value is empty.
  template <typename Fn>
  bool items(const Field& field, Fn each) {
    if (!has_shape(field, field.node.IsSequence(), "expected a sequence")) return false;
    std::size_t index = 0;
    for (auto it = field.node.begin(); it != field.node.end(); ++it, ++index) {
      const std::string path = field.path + "[" + std::to_string(index) + "]";
      each(Field{*it, path, locate(*it, field.at)});
    }
    return true;
  }

  std::optional<std::string> string(const Field& field) {
    if (!field.node.IsScalar()) {
      fail(field, "expected a string");
      return std::nullopt;
    }
    return field.node.Scalar();
  }

  // A name used as a label: [A-Za-z0-9_.-]+.
  std::optional<std::string> label(const Field& field) {
    auto text = string(field);
    if (text && !is_label(*text)) {
      fail(field, "must match [A-Za-z0-9_.-]+");
      return std::nullopt;
    }
    return text;
  }

  std::optional<std::int64_t> integer(const Field& field, std::int64_t min, std::int64_t max) {
    std::int64_t value = 0;
    if (!field.node.IsScalar() || !parse_whole(field.node.Scalar(), value)) {
      fail(field, "expected an integer");
      return std::nullopt;
    }
    if (value < min || value > max) {
      fail(field, "must be between " + std::to_string(min) + " and " + std::to_string(max));
      return std::nullopt;
    }
    return value;
  }

  std::optional<bool> boolean(const Field& field) {
    const std::string text = field.node.IsScalar() ? lower(field.node.Scalar()) : "";
    if (text == "true") return true;
    if (text == "false") return false;
    fail(field, "expected a boolean (true or false)");
    return std::nullopt;
  }

  // One of `choices`; returns its index.
  template <std::size_t N>
  std::optional<std::size_t> choice(const Field& field, const std::array<std::string_view, N>& choices) {
    if (field.node.IsScalar()) {
      const auto it = std::find(choices.begin(), choices.end(), field.node.Scalar());
      if (it != choices.end()) return static_cast<std::size_t>(it - choices.begin());
    }
    std::string reason = "expected one of";
    for (std::string_view c : choices) reason += (c == choices.front() ? ": " : ", ") + std::string(c);
    fail(field, std::move(reason));
    return std::nullopt;
  }

  // A duration greater than zero.
  std::optional<Duration> timeout(const Field& field) {
    const auto value = field.node.IsScalar() ? parse_duration(field.node.Scalar()) : std::nullopt;
    if (!value) {
      fail(field, "expected a duration such as 250ms, 5s, 10m, 1h or 1d");
      return std::nullopt;
    }
    if (*value <= Duration::zero()) {
      fail(field, "must be greater than 0");
      return std::nullopt;
    }
    if (*value > kMaxTimeout) {  // deadlines are steady_clock time points: keep far from overflow
      fail(field, "must be at most 1d");
      return std::nullopt;
    }
    return value;
  }

  // A size in bytes within [min, max]; plain integers are bytes.
  std::optional<std::size_t> size(const Field& field, std::size_t min, std::size_t max) {
    const auto value = field.node.IsScalar() ? parse_size(field.node.Scalar()) : std::nullopt;
    if (!value) {
      fail(field, "expected a size such as 512, 16KiB, 1MiB or 1MB");
      return std::nullopt;
    }
    if (*value < min || *value > max) {
      fail(field, max == kNoLimit ? "must be greater than 0"
                                  : "must be between " + std::to_string(min) + " and " + std::to_string(max) +
                                        " bytes");
      return std::nullopt;
    }
    return value;
  }

  // Readers that store a valid value in `out` and leave the default otherwise.
  Reader into(std::string& out) {
    return [this, &out](const Field& f) { assign(out, string(f)); };
  }
  Reader into(bool& out) {
    return [this, &out](const Field& f) { assign(out, boolean(f)); };
  }
  Reader into(Duration& out) {
    return [this, &out](const Field& f) { assign(out, timeout(f)); };
  }

 private:
  // True when `field` is the collection a reader wants or null (iterating a null node visits nothing);
  // otherwise reports `expected`.
  bool has_shape(const Field& field, bool wanted, const char* expected) {
    if (wanted || field.node.IsNull()) return true;
    fail(field, expected);
    return false;
  }

  template <typename T, typename U>
  static void assign(T& out, const std::optional<U>& value) {
    if (value) out = *value;
  }

  static bool parse_whole(std::string_view text, std::int64_t& value) {
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    return ec == std::errc{} && end == text.data() + text.size() && !text.empty();
  }

  std::string source_;
  std::vector<Error>& errors_;
};

// Remembers the values already taken in one list (listener names, addresses, route names) and reports a repeat
// together with the line of the first one.
class Unique {
 public:
  explicit Unique(std::string what) : what_(std::move(what)) {}

  void check(Walker& w, const Field& field, const std::string& value) {
    const auto [first, inserted] = seen_.emplace(value, field.at.line);
    if (!inserted) {
      w.fail(field, "duplicate " + what_ + " " + quoted(value) + " (first at line " +
                        std::to_string(first->second) + ")");
    }
  }

 private:
  std::string what_;
  std::map<std::string, int> seen_;
};

}  // namespace virex::config::detail
