// Decoding PostgreSQL text-format fields into typed values, ordering them, and writing them as JSON (value.hpp).
#include <virex/shard/value.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace virex::shard {
namespace {

// PostgreSQL type OIDs (src/include/catalog/pg_type.dat).
constexpr std::uint32_t kBool = 16, kInt8 = 20, kInt2 = 21, kInt4 = 23, kOid = 26, kJson = 114, kFloat4 = 700,
                        kFloat8 = 701, kTimestamp = 1114, kTimestampTz = 1184, kNumeric = 1700, kJsonb = 3802;

bool digits(std::string_view s, std::size_t pos, std::size_t n, int& out) {
  if (pos + n > s.size()) return false;
  out = 0;
  for (std::size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    out = out * 10 + (s[i] - '0');
  }
  return true;
}

// Howard Hinnant's days_from_civil: days since 1970-01-01 of a proleptic Gregorian date.
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

// Parses "-123.45" into mantissa and scale; false for anything else.
bool parse_decimal(std::string_view s, __int128& mant, int& scale) {
  bool neg = false;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    neg = s[0] == '-';
    s.remove_prefix(1);
  }
  if (s.empty() || s.size() > 38) return false;
  mant = 0;
  scale = 0;
  bool dot = false, any = false;
  for (char c : s) {
    if (c == '.' && !dot) {
      dot = true;
      continue;
    }
    if (c < '0' || c > '9') return false;
    mant = mant * 10 + (c - '0');
    any = true;
    if (dot) ++scale;
  }
  if (neg) mant = -mant;
  return any;
}

void format_decimal(__int128 mant, int scale, std::string& out) {
  const bool neg = mant < 0;
  unsigned __int128 u = neg ? static_cast<unsigned __int128>(-mant) : static_cast<unsigned __int128>(mant);
  std::string digits_;
  do {
    digits_.push_back(static_cast<char>('0' + static_cast<int>(u % 10)));
    u /= 10;
  } while (u);
  while (static_cast<int>(digits_.size()) <= scale) digits_.push_back('0');
  out.clear();
  if (neg) out.push_back('-');
  for (std::size_t i = digits_.size(); i-- > 0;) {
    out.push_back(digits_[i]);
    if (scale > 0 && i == static_cast<std::size_t>(scale)) out.push_back('.');
  }
}

int sign(double d) noexcept { return d < 0 ? -1 : d > 0 ? 1 : 0; }

}  // namespace

Value Value::numeric(std::string v) {
  Value x;
  x.kind = Kind::numeric;
  x.d = std::strtod(v.c_str(), nullptr);
  x.s = std::move(v);
  return x;
}

int ResultSet::column(std::string_view name) const noexcept {
  for (std::size_t i = 0; i < columns.size(); ++i)
    if (columns[i] == name) return static_cast<int>(i);
  return -1;
}

bool parse_timestamp(std::string_view t, std::string& iso, std::int64_t& micros) {
  int y, mo, d, h, mi, s;
  if (!digits(t, 0, 4, y) || t.size() < 19 || t[4] != '-' || !digits(t, 5, 2, mo) || t[7] != '-' ||
      !digits(t, 8, 2, d) || (t[10] != ' ' && t[10] != 'T') || !digits(t, 11, 2, h) || t[13] != ':' ||
      !digits(t, 14, 2, mi) || t[16] != ':' || !digits(t, 17, 2, s))
    return false;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60) return false;
  std::size_t pos = 19;
  std::int64_t frac = 0;
  std::string_view frac_text;
  if (pos < t.size() && t[pos] == '.') {
    const std::size_t start = ++pos;
    while (pos < t.size() && t[pos] >= '0' && t[pos] <= '9') ++pos;
    frac_text = t.substr(start, pos - start);
    if (frac_text.empty() || frac_text.size() > 6) return false;
    for (std::size_t i = 0; i < 6; ++i) frac = frac * 10 + (i < frac_text.size() ? frac_text[i] - '0' : 0);
  }
  int off_minutes = 0;
  bool has_offset = false;
  std::string offset;
  if (pos < t.size()) {
    if (t[pos] == 'Z' && pos + 1 == t.size()) {
      has_offset = true;
    } else if (t[pos] == '+' || t[pos] == '-') {
      int oh = 0, om = 0;
      if (!digits(t, pos + 1, 2, oh)) return false;
      std::size_t end = pos + 3;
      if (end < t.size()) {
        if (t[end] == ':') ++end;
        if (!digits(t, end, 2, om)) return false;
        end += 2;
        if (end < t.size() && t[end] == ':') {  // seconds in an offset (historic zones): not ISO-8601
          return false;
        }
      }
      if (end != t.size()) return false;
      has_offset = true;
      off_minutes = (oh * 60 + om) * (t[pos] == '-' ? -1 : 1);
    } else {
      return false;
    }
  }
  const std::int64_t days = days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
  micros = ((days * 86400 + h * 3600 + mi * 60 + s) - off_minutes * 60) * 1000000 + frac;
  iso.assign(t.substr(0, 10)).append("T").append(t.substr(11, 8));
  if (!frac_text.empty()) iso.append(".").append(frac_text);
  if (has_offset) {
    if (off_minutes == 0) {
      iso.push_back('Z');
    } else {
      char buf[8];
      const int a = std::abs(off_minutes);
      std::snprintf(buf, sizeof buf, "%c%02d:%02d", off_minutes < 0 ? '-' : '+', a / 60, a % 60);
      iso.append(buf);
    }
  }
  return true;
}

Value decode(std::uint32_t oid, std::string_view text) {
  Value v;
  switch (oid) {
    case kBool:
      v.kind = Value::Kind::boolean;
      v.b = text == "t";
      return v;
    case kInt2:
    case kInt4:
    case kInt8:
    case kOid: {
      std::int64_t n = 0;
      const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
      if (ec == std::errc{} && end == text.data() + text.size()) return Value::integer(n);
      return Value::text(std::string(text));
    }
    case kFloat4:
    case kFloat8: {
      const std::string t(text);
      char* end = nullptr;
      const double d = std::strtod(t.c_str(), &end);
      if (end == t.c_str() + t.size() && std::isfinite(d)) return Value::real(d);
      return Value::text(t);  // NaN, Infinity: JSON has no number for them
    }
    case kNumeric: {
      if (text == "NaN" || text.find("Infinity") != std::string_view::npos) return Value::text(std::string(text));
      return Value::numeric(std::string(text));
    }
    case kTimestamp:
    case kTimestampTz: {
      if (parse_timestamp(text, v.s, v.i)) {
        v.kind = Value::Kind::timestamp;
        return v;
      }
      return Value::text(std::string(text));  // infinity, BC dates
    }
    case kJson:
    case kJsonb:
      v.kind = Value::Kind::json;
      v.s.assign(text);
      return v;
    default:
      return Value::text(std::string(text));
  }
}

namespace {
// PostgreSQL's order of numeric specials: -Infinity < every finite value < Infinity < NaN.
int numeric_rank(std::string_view t) noexcept {
  if (t == "NaN") return 3;
  if (t == "Infinity") return 2;
  if (t == "-Infinity") return 0;
  return 1;
}

// The exact order of two numeric texts as PostgreSQL prints them ("-12.50", "0.000", "NaN"): sign, then the
// integer digits (length, then digits), then the fraction digits — no rounding, whatever the length.
int compare_decimal(std::string_view a, std::string_view b) noexcept {
  const int ra = numeric_rank(a), rb = numeric_rank(b);
  if (ra != rb || ra != 1) return (ra > rb) - (ra < rb);
  struct Parts {
    bool neg = false;
    std::string_view whole, frac;
  };
  const auto split = [](std::string_view t) {
    Parts p;
    if (!t.empty() && (t.front() == '-' || t.front() == '+')) p.neg = t.front() == '-', t.remove_prefix(1);
    const auto dot = t.find('.');
    p.whole = t.substr(0, dot);
    p.frac = dot == std::string_view::npos ? std::string_view() : t.substr(dot + 1);
    while (!p.whole.empty() && p.whole.front() == '0') p.whole.remove_prefix(1);
    while (!p.frac.empty() && p.frac.back() == '0') p.frac.remove_suffix(1);
    if (p.whole.empty() && p.frac.empty()) p.neg = false;  // -0.00 is 0
    return p;
  };
  const Parts x = split(a), y = split(b);
  if (x.neg != y.neg) return x.neg ? -1 : 1;
  int mag = 0;
  if (x.whole.size() != y.whole.size()) {
    mag = x.whole.size() < y.whole.size() ? -1 : 1;
  } else if (const int c = x.whole.compare(y.whole); c != 0) {
    mag = c < 0 ? -1 : 1;
  } else if (const int f = x.frac.compare(y.frac); f != 0) {
    mag = f < 0 ? -1 : 1;  // (no trailing zeros: a longer fraction with an equal prefix is the larger)
  }
  return x.neg ? -mag : mag;
}
}  // namespace

int compare(const Value& a, const Value& b) noexcept {
  using K = Value::Kind;
  if (a.kind == K::null || b.kind == K::null) return (a.kind == K::null) - (b.kind == K::null);
  const auto numeric = [](K k) { return k == K::integer || k == K::real || k == K::numeric; };
  if (numeric(a.kind) && numeric(b.kind)) {
    if (a.kind == K::integer && b.kind == K::integer) return (a.i > b.i) - (a.i < b.i);
    // numeric against numeric or bigint: exact, on the decimal texts (doubles lose digits past 2^53).
    if (a.kind != K::real && b.kind != K::real)
      return compare_decimal(a.kind == K::integer ? std::to_string(a.i) : a.s,
                             b.kind == K::integer ? std::to_string(b.i) : b.s);
    const double x = a.kind == K::integer ? static_cast<double>(a.i) : a.d;
    const double y = b.kind == K::integer ? static_cast<double>(b.i) : b.d;
    // float8 and numeric order NaN above every other value (and equal to itself).
    if (std::isnan(x) || std::isnan(y)) return std::isnan(x) - std::isnan(y);
    return sign(x - y);
  }
  if (a.kind == K::boolean && b.kind == K::boolean) return (a.b > b.b) - (a.b < b.b);
  if (a.kind == K::timestamp && b.kind == K::timestamp) return (a.i > b.i) - (a.i < b.i);
  const int c = a.s.compare(b.s);
  return (c > 0) - (c < 0);
}

void append_json_string(std::string& out, std::string_view s) {
  out.push_back('"');
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    switch (c) {
      case '"': out.append("\\\""); break;
      case '\\': out.append("\\\\"); break;
      case '\n': out.append("\\n"); break;
      case '\r': out.append("\\r"); break;
      case '\t': out.append("\\t"); break;
      default:
        if (u < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", u);
          out.append(buf);
        } else {
          out.push_back(c);
        }
    }
  }
  out.push_back('"');
}

void append_json(std::string& out, const Value& v) {
  using K = Value::Kind;
  switch (v.kind) {
    case K::null: out.append("null"); return;
    case K::boolean: out.append(v.b ? "true" : "false"); return;
    case K::integer: {
      char buf[24];
      const auto r = std::to_chars(buf, buf + sizeof buf, v.i);
      out.append(buf, r.ptr);
      return;
    }
    case K::real: {
      char buf[32];
      const auto r = std::to_chars(buf, buf + sizeof buf, v.d);  // shortest round-trip form
      out.append(buf, r.ptr);
      return;
    }
    case K::numeric: out.append(v.s); return;  // PostgreSQL's numeric text is a valid JSON number
    case K::json: out.append(v.s); return;
    case K::text:
    case K::timestamp: append_json_string(out, v.s); return;
  }
}

void append_json(std::string& out, const ResultSet& rs) {
  out.append("{\"rows\":[");
  for (std::size_t r = 0; r < rs.rows.size(); ++r) {
    if (r) out.push_back(',');
    out.push_back('{');
    const Row& row = rs.rows[r];
    for (std::size_t c = 0; c < row.size() && c < rs.columns.size(); ++c) {
      if (c) out.push_back(',');
      append_json_string(out, rs.columns[c]);
      out.push_back(':');
      append_json(out, row[c]);
    }
    out.push_back('}');
  }
  out.append("]}");
}

namespace {
// Protocol Buffers wire format (protobuf.dev/programming-guides/encoding): varints, length-delimited fields.
void put_varint(std::string& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
std::size_t varint_size(std::uint64_t v) {
  std::size_t n = 1;
  while (v >= 0x80) v >>= 7, ++n;
  return n;
}
constexpr std::uint64_t zigzag(std::int64_t v) {
  return (static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63);
}
std::size_t string_field_size(std::size_t len) { return 1 + varint_size(len) + len; }

// The encoded size of a Value message (not counting its own tag and length).
std::size_t value_size(const Value& v) {
  using K = Value::Kind;
  switch (v.kind) {
    case K::null:
    case K::boolean: return 2;
    case K::integer: return 1 + varint_size(zigzag(v.i));
    case K::real: return 9;
    case K::timestamp: return 1 + varint_size(static_cast<std::uint64_t>(v.i));
    case K::numeric:
    case K::text:
    case K::json: return string_field_size(v.s.size());
  }
  return 0;
}

void put_string(std::string& out, unsigned field, std::string_view s) {
  out.push_back(static_cast<char>(field << 3 | 2));
  put_varint(out, s.size());
  out.append(s);
}

void put_value(std::string& out, const Value& v) {
  using K = Value::Kind;
  switch (v.kind) {
    case K::null: out.append("\x08\x01", 2); return;
    case K::boolean: out.push_back(0x10), out.push_back(v.b ? 1 : 0); return;
    case K::integer: out.push_back(0x18), put_varint(out, zigzag(v.i)); return;
    case K::real: {
      out.push_back(0x21);
      std::uint64_t bits;
      std::memcpy(&bits, &v.d, 8);
      for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(bits >> (8 * i)));  // little-endian fixed64
      return;
    }
    case K::numeric: return put_string(out, 5, v.s);
    case K::text: return put_string(out, 6, v.s);
    case K::timestamp: out.push_back(0x38), put_varint(out, static_cast<std::uint64_t>(v.i)); return;
    case K::json: return put_string(out, 8, v.s);
  }
}
}  // namespace

void append_protobuf(std::string& out, const ResultSet& rs) {
  for (const std::string& c : rs.columns) put_string(out, 1, c);
  for (const Row& row : rs.rows) {
    std::size_t row_size = 0;
    for (const Value& v : row) {
      const std::size_t n = value_size(v);
      row_size += 1 + varint_size(n) + n;
    }
    out.push_back(0x12);  // Result.rows = 2, length-delimited
    put_varint(out, row_size);
    for (const Value& v : row) {
      out.push_back(0x0a);  // Row.values = 1
      put_varint(out, value_size(v));
      put_value(out, v);
    }
  }
}

bool add_decimal(std::string_view a, std::string_view b, std::string& out) {
  __int128 ma, mb;
  int sa, sb;
  if (!parse_decimal(a, ma, sa) || !parse_decimal(b, mb, sb)) return false;
  while (sa < sb) ma *= 10, ++sa;
  while (sb < sa) mb *= 10, ++sb;
  const __int128 limit = static_cast<__int128>(1) << 120;
  if (ma > limit || ma < -limit || mb > limit || mb < -limit) return false;
  format_decimal(ma + mb, sa, out);
  return true;
}

}  // namespace virex::shard
