// Typed rows of a query result, decoded from PostgreSQL's text format by column type (OID), and their JSON
// encoding (numbers stay numbers, timestamps ISO-8601, json/jsonb inline). Sans-IO; any thread; the merge
// (merge.hpp) compares these values the way PostgreSQL orders them (NULL above everything, text bytewise).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace virex::shard {

struct Value {
  enum class Kind : std::uint8_t { null, boolean, integer, real, numeric, text, timestamp, json };
  Kind kind = Kind::null;
  bool b = false;
  std::int64_t i = 0;   // integer; timestamp: microseconds since the Unix epoch (UTC)
  double d = 0;         // real; numeric: approximate value (for ordering)
  std::string s;        // numeric: its exact text; text; timestamp: ISO-8601; json: the document

  static Value null() { return {}; }
  static Value integer(std::int64_t v) {
    Value x;
    x.kind = Kind::integer;
    x.i = v;
    return x;
  }
  static Value real(double v) {
    Value x;
    x.kind = Kind::real;
    x.d = v;
    return x;
  }
  static Value text(std::string v) {
    Value x;
    x.kind = Kind::text;
    x.s = std::move(v);
    return x;
  }
  static Value numeric(std::string v);   // exact decimal text ("12.50", "-3", "NaN")
};

using Row = std::vector<Value>;

struct ResultSet {
  std::vector<std::string> columns;
  std::vector<Row> rows;
  std::size_t affected = 0;   // rows a command without RETURNING changed (INSERT/UPDATE/DELETE)

  // Index of `name` in columns, or -1.
  int column(std::string_view name) const noexcept;
};

// Decodes one field in PostgreSQL's text output format (DateStyle ISO, TimeZone UTC) of the type `oid`.
Value decode(std::uint32_t oid, std::string_view text);

// PostgreSQL's ordering of two values of one column: <0, 0, >0. NULL sorts above every value (NULLS LAST when
// ascending); numbers compare numerically across integer/real/numeric — bigint and numeric exactly (on the
// decimal text, -Infinity < finite < Infinity < NaN), float8 as doubles (NaN last); text and json bytewise (C
// collation).
int compare(const Value& a, const Value& b) noexcept;

// Appends `v` as a JSON value; `{"rows":[{col: value, …}, …]}` for a result set.
void append_json(std::string& out, const Value& v);
void append_json(std::string& out, const ResultSet& rs);
void append_json_string(std::string& out, std::string_view s);

// Appends `rs` as a virex.query.v1.Result message (proto/virex/query/v1/result.proto), encoded by hand.
void append_protobuf(std::string& out, const ResultSet& rs);

// Exact decimal sum of two numeric texts (up to 38 significant digits); false when either is no plain decimal
// (NaN, too long), and the caller falls back to floating point.
bool add_decimal(std::string_view a, std::string_view b, std::string& out);

// "YYYY-MM-DD HH:MM:SS[.ffffff][±HH[:MM]]" (PostgreSQL ISO output) → ISO-8601 text and Unix microseconds.
bool parse_timestamp(std::string_view text, std::string& iso, std::int64_t& micros);

}  // namespace virex::shard
