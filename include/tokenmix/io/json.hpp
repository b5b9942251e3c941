#pragma once
// A minimal, strict JSON parser (RFC 8259) and a small read-only DOM, enough for safetensors headers
// and Hugging Face config.json files. No dependency beyond the standard library.
//
//   const io::JsonValue cfg = io::parse_json_file("config.json");
//   const std::int64_t d_model = cfg.at("hidden_size").as_int();
//   const bool bias = cfg.get_or("use_bias", false);
//   if (cfg.contains("rope_scaling")) ...
//
// Strictness: UTF-8 input only (invalid / overlong sequences, surrogates and lone-surrogate \u escapes
// are rejected), no comments, no trailing commas, no NaN / Infinity, no leading zeros, no control
// characters inside strings, no duplicate keys in one object, nothing but whitespace after the value.
// Nesting deeper than JsonParseOptions::max_depth is rejected (the parser recurses, so this bounds
// its stack use). Every parse error is a tokenmix::Error naming the problem and the byte offset:
//   "config.json: invalid \u escape: unpaired high surrogate \uD800 at byte 17".
// Accessors throw tokenmix::Error naming the value's path and both kinds on a mismatch:
//   "JSON: 'layers[2].hidden_size' is a string, expected an integer".
//
// Numbers: an integer literal that fits in int64 is Kind::Int; any other number is Kind::Double
// (integers beyond int64 are kept as doubles, and as_int() reports them as out of range). Numbers
// whose magnitude overflows double are rejected; underflow gives (signed) zero.
// Memory: about 200 bytes per JSON value; JsonParseOptions::max_values bounds the total.

#include <algorithm>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <ios>
#include <iterator>
#include <limits>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include "tokenmix/config.hpp"

namespace tokenmix::io {

struct JsonParseOptions {
  // Arrays / objects nested deeper than this are rejected (the root value is depth 1).
  int max_depth = 128;
  // At most this many values (scalars, arrays and objects) in the document.
  std::size_t max_values = std::size_t{1} << 26;
  // Prefix of every parse error message, e.g. the file name.
  std::string context = "JSON";
};

class JsonValue;

namespace detail {
class JsonParser;
}

class JsonValue {
 public:
  enum class Kind { Null, Bool, Int, Double, String, Array, Object };
  using Member = std::pair<std::string, JsonValue>;

  JsonValue() = default;  // null

  Kind kind() const noexcept { return kind_; }
  bool is_null() const noexcept { return kind_ == Kind::Null; }
  bool is_bool() const noexcept { return kind_ == Kind::Bool; }
  bool is_int() const noexcept { return kind_ == Kind::Int; }
  bool is_double() const noexcept { return kind_ == Kind::Double; }
  bool is_number() const noexcept { return kind_ == Kind::Int || kind_ == Kind::Double; }
  bool is_string() const noexcept { return kind_ == Kind::String; }
  bool is_array() const noexcept { return kind_ == Kind::Array; }
  bool is_object() const noexcept { return kind_ == Kind::Object; }

  // Where this value sits in its document: "" for the root, "hidden_size", "layers[2].name".
  const std::string& path() const noexcept { return path_; }

  bool as_bool() const {
    expect(Kind::Bool);
    return bool_;
  }
  std::int64_t as_int() const {
    TOKENMIX_CHECK(!(kind_ == Kind::Double && big_int_), "JSON: ", describe_path(), " is the integer ",
                   dump(), ", which does not fit in int64");
    expect(Kind::Int);
    return int_;
  }
  // Int or Double, as double.
  double as_double() const {
    if (kind_ == Kind::Int) return static_cast<double>(int_);
    expect(Kind::Double);
    return double_;
  }
  const std::string& as_string() const {
    expect(Kind::String);
    return string_;
  }
  const std::vector<JsonValue>& as_array() const {
    expect(Kind::Array);
    return array_;
  }
  // Members in document order.
  const std::vector<Member>& as_object() const {
    expect(Kind::Object);
    return members_;
  }

  // Converts to bool, an integral type (range-checked), a floating type or std::string.
  template <class T>
  T as() const {
    if constexpr (std::is_same_v<T, bool>) {
      return as_bool();
    } else if constexpr (std::is_integral_v<T>) {
      const std::int64_t v = as_int();
      bool fits;
      if constexpr (std::is_signed_v<T>) {
        fits = v >= static_cast<std::int64_t>(std::numeric_limits<T>::min()) &&
               v <= static_cast<std::int64_t>(std::numeric_limits<T>::max());
      } else {
        fits = v >= 0 && static_cast<std::uint64_t>(v) <= static_cast<std::uint64_t>(std::numeric_limits<T>::max());
      }
      TOKENMIX_CHECK(fits, "JSON: ", describe_path(), " = ", v, " does not fit in the requested ",
                     std::is_signed_v<T> ? "signed" : "unsigned", " ", sizeof(T) * 8, "-bit integer");
      return static_cast<T>(v);
    } else if constexpr (std::is_floating_point_v<T>) {
      return static_cast<T>(as_double());
    } else {
      static_assert(std::is_same_v<T, std::string>, "JsonValue::as<T>: T must be bool, integral, floating or std::string");
      return as_string();
    }
  }

  // Number of elements of an array or members of an object.
  std::size_t size() const {
    if (kind_ == Kind::Array) return array_.size();
    expect(Kind::Object);
    return members_.size();
  }

  // Object lookup. find() returns nullptr when the key is missing; all throw if this is no object.
  const JsonValue* find(std::string_view key) const {
    expect(Kind::Object);
    auto it = std::lower_bound(sorted_.begin(), sorted_.end(), key,
                               [this](std::uint32_t i, std::string_view k) { return members_[i].first < k; });
    if (it == sorted_.end() || members_[*it].first != key) return nullptr;
    return &members_[*it].second;
  }
  bool contains(std::string_view key) const { return find(key) != nullptr; }
  const JsonValue& at(std::string_view key) const {
    const JsonValue* v = find(key);
    TOKENMIX_CHECK(v != nullptr, "JSON: missing key '", child_path(key), "'");
    return *v;
  }
  const JsonValue& at(std::size_t index) const {
    expect(Kind::Array);
    TOKENMIX_CHECK(index < array_.size(), "JSON: index ", index, " out of range for ", describe_path(),
                   " of size ", array_.size());
    return array_[index];
  }

  // The member `key` converted with as<T>(), or `fallback` when it is missing or null.
  template <class T>
  T get_or(std::string_view key, T fallback) const {
    const JsonValue* v = find(key);
    return (v == nullptr || v->is_null()) ? fallback : v->as<T>();
  }
  std::string get_or(std::string_view key, const char* fallback) const {
    return get_or<std::string>(key, std::string(fallback));
  }

  // Compact serialisation (strings escaped like serde_json; doubles in shortest round-trip form).
  std::string dump() const {
    std::string out;
    dump_to(out);
    return out;
  }

  static const char* kind_name(Kind k) noexcept {
    switch (k) {
      case Kind::Null: return "null";
      case Kind::Bool: return "a boolean";
      case Kind::Int: return "an integer";
      case Kind::Double: return "a number";
      case Kind::String: return "a string";
      case Kind::Array: return "an array";
      case Kind::Object: return "an object";
    }
    return "?";
  }

 private:
  friend class detail::JsonParser;

  std::string describe_path() const { return path_.empty() ? std::string("the root value") : "'" + path_ + "'"; }
  std::string child_path(std::string_view key) const {
    return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
  }
  void expect(Kind k) const {
    TOKENMIX_CHECK(kind_ == k, "JSON: ", describe_path(), " is ", kind_name(kind_), ", expected ", kind_name(k));
  }
  void dump_to(std::string& out) const;

  Kind kind_ = Kind::Null;
  bool bool_ = false;
  bool big_int_ = false;  // Kind::Double written as an integer literal outside int64
  std::int64_t int_ = 0;
  double double_ = 0;
  std::string string_;
  std::vector<JsonValue> array_;
  std::vector<Member> members_;
  std::vector<std::uint32_t> sorted_;  // indices of members_ sorted by key
  std::string path_;
};

// `s` as a JSON string literal, escaped like serde_json (", \, \b \f \n \r \t, other controls as \u00xx).
inline void append_json_string(std::string& out, std::string_view s) {
  static const char* const hex = "0123456789abcdef";
  out += '"';
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += hex[c >> 4];
          out += hex[c & 15];
        } else {
          out += ch;
        }
    }
  }
  out += '"';
}

inline std::string json_quote(std::string_view s) {
  std::string out;
  append_json_string(out, s);
  return out;
}

inline void JsonValue::dump_to(std::string& out) const {
  switch (kind_) {
    case Kind::Null: out += "null"; break;
    case Kind::Bool: out += bool_ ? "true" : "false"; break;
    case Kind::Int: out += std::to_string(int_); break;
    case Kind::Double: {
      if (!(double_ - double_ == 0)) {  // not finite: cannot come from parsing
        out += "null";
        break;
      }
      char buf[64];
      const auto res = std::to_chars(buf, buf + sizeof(buf), double_);
      const std::string_view text(buf, static_cast<std::size_t>(res.ptr - buf));
      out += text;
      if (!big_int_ && text.find_first_of(".eE") == std::string_view::npos) out += ".0";
      break;
    }
    case Kind::String: append_json_string(out, string_); break;
    case Kind::Array:
      out += '[';
      for (std::size_t i = 0; i < array_.size(); ++i) {
        if (i) out += ',';
        array_[i].dump_to(out);
      }
      out += ']';
      break;
    case Kind::Object:
      out += '{';
      for (std::size_t i = 0; i < members_.size(); ++i) {
        if (i) out += ',';
        append_json_string(out, members_[i].first);
        out += ':';
        members_[i].second.dump_to(out);
      }
      out += '}';
      break;
  }
}

namespace detail {

class JsonParser {
 public:
  JsonParser(std::string_view text, const JsonParseOptions& options) : text_(text), options_(options) {}

  JsonValue parse_document() {
    JsonValue root;
    skip_whitespace();
    parse_value(root, 1, std::string());
    skip_whitespace();
    if (pos_ != text_.size()) fail(pos_, "unexpected " + describe_char(pos_) + " after the JSON value");
    return root;
  }

 private:
  [[noreturn]] void fail(std::size_t at, const std::string& what) const {
    ::tokenmix::detail::raise(options_.context + ": " + what + " at byte " + std::to_string(at));
  }

  std::string describe_char(std::size_t at) const {
    if (at >= text_.size()) return "end of input";
    const auto c = static_cast<unsigned char>(text_[at]);
    if (c >= 0x21 && c < 0x7f) return std::string("character '") + static_cast<char>(c) + "'";
    static const char* const hex = "0123456789ABCDEF";
    return std::string("byte 0x") + hex[c >> 4] + hex[c & 15];
  }

  bool at_end() const { return pos_ >= text_.size(); }
  unsigned char peek() const { return static_cast<unsigned char>(text_[pos_]); }

  void skip_whitespace() {
    while (pos_ < text_.size()) {
      const char c = text_[pos_];
      if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
      ++pos_;
    }
  }

  void count_value() {
    if (++values_ > options_.max_values)
      fail(pos_, "more than " + std::to_string(options_.max_values) + " JSON values");
  }

  void parse_value(JsonValue& out, int depth, std::string path) {
    count_value();
    out.path_ = std::move(path);
    if (at_end()) fail(pos_, "unexpected end of input, expected a value");
    const unsigned char c = peek();
    switch (c) {
      case '{': parse_object(out, depth); return;
      case '[': parse_array(out, depth); return;
      case '"':
        out.kind_ = JsonValue::Kind::String;
        parse_string(out.string_);
        return;
      case 't': parse_literal("true", out, JsonValue::Kind::Bool, true); return;
      case 'f': parse_literal("false", out, JsonValue::Kind::Bool, false); return;
      case 'n': parse_literal("null", out, JsonValue::Kind::Null, false); return;
      default:
        if (c == '-' || (c >= '0' && c <= '9')) {
          parse_number(out);
          return;
        }
        fail(pos_, "unexpected " + describe_char(pos_) + ", expected a value");
    }
  }

  void parse_literal(std::string_view word, JsonValue& out, JsonValue::Kind kind, bool value) {
    if (text_.substr(pos_, word.size()) != word) fail(pos_, "invalid literal, expected '" + std::string(word) + "'");
    pos_ += word.size();
    out.kind_ = kind;
    out.bool_ = value;
  }

  void enter(int depth) const {
    if (depth > options_.max_depth)
      fail(pos_, "nesting deeper than " + std::to_string(options_.max_depth) + " levels (depth limit)");
  }

  static std::string join(const std::string& parent, std::string_view key) {
    return parent.empty() ? std::string(key) : parent + "." + std::string(key);
  }

  void parse_array(JsonValue& out, int depth) {
    enter(depth);
    out.kind_ = JsonValue::Kind::Array;
    ++pos_;  // '['
    skip_whitespace();
    if (!at_end() && peek() == ']') {
      ++pos_;
      return;
    }
    for (;;) {
      out.array_.emplace_back();
      parse_value(out.array_.back(), depth + 1, out.path_ + "[" + std::to_string(out.array_.size() - 1) + "]");
      skip_whitespace();
      if (at_end()) fail(pos_, "unexpected end of input in an array, expected ',' or ']'");
      const unsigned char c = peek();
      ++pos_;
      if (c == ']') return;
      if (c != ',') fail(pos_ - 1, "unexpected " + describe_char(pos_ - 1) + " in an array, expected ',' or ']'");
      skip_whitespace();
    }
  }

  void parse_object(JsonValue& out, int depth) {
    enter(depth);
    out.kind_ = JsonValue::Kind::Object;
    ++pos_;  // '{'
    skip_whitespace();
    std::vector<std::size_t> key_offsets;
    if (!at_end() && peek() == '}') {
      ++pos_;
      return;
    }
    for (;;) {
      if (at_end() || peek() != '"')
        fail(pos_, "unexpected " + describe_char(pos_) + " in an object, expected a string key");
      key_offsets.push_back(pos_);
      std::string key;
      parse_string(key);
      skip_whitespace();
      if (at_end() || peek() != ':')
        fail(pos_, "unexpected " + describe_char(pos_) + " after an object key, expected ':'");
      ++pos_;
      skip_whitespace();
      std::string child = join(out.path_, key);
      out.members_.emplace_back(std::move(key), JsonValue());
      parse_value(out.members_.back().second, depth + 1, std::move(child));
      skip_whitespace();
      if (at_end()) fail(pos_, "unexpected end of input in an object, expected ',' or '}'");
      const unsigned char c = peek();
      ++pos_;
      if (c == '}') break;
      if (c != ',') fail(pos_ - 1, "unexpected " + describe_char(pos_ - 1) + " in an object, expected ',' or '}'");
      skip_whitespace();
    }
    // Sorted index for lookups; equal neighbours are duplicate keys (reported at the later one).
    const auto& m = out.members_;
    if (m.size() > std::numeric_limits<std::uint32_t>::max()) fail(pos_, "too many object members");
    out.sorted_.resize(m.size());
    for (std::size_t i = 0; i < m.size(); ++i) out.sorted_[i] = static_cast<std::uint32_t>(i);
    std::stable_sort(out.sorted_.begin(), out.sorted_.end(),
                     [&m](std::uint32_t a, std::uint32_t b) { return m[a].first < m[b].first; });
    for (std::size_t i = 1; i < out.sorted_.size(); ++i) {
      if (m[out.sorted_[i]].first == m[out.sorted_[i - 1]].first)
        fail(key_offsets[out.sorted_[i]], "duplicate key " + json_quote(m[out.sorted_[i]].first));
    }
  }

  int hex_digit(std::size_t at) const {
    if (at >= text_.size()) return -1;
    const char c = text_[at];
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }

  // The 4 hex digits of a \u escape whose backslash is at `at`.
  unsigned read_u_escape(std::size_t at) const {
    unsigned v = 0;
    for (std::size_t i = 0; i < 4; ++i) {
      const int d = hex_digit(at + 2 + i);
      if (d < 0) fail(at, "invalid \\u escape: expected 4 hex digits");
      v = v * 16 + static_cast<unsigned>(d);
    }
    return v;
  }

  static void append_utf8(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  static std::string hex4(unsigned v) {
    static const char* const hex = "0123456789ABCDEF";
    return std::string{hex[(v >> 12) & 15], hex[(v >> 8) & 15], hex[(v >> 4) & 15], hex[v & 15]};
  }

  // Length of the valid UTF-8 sequence starting at pos_ (lead byte >= 0x80), or fails.
  std::size_t utf8_sequence_length() const {
    const auto byte = [this](std::size_t i) -> unsigned {
      return pos_ + i < text_.size() ? static_cast<unsigned char>(text_[pos_ + i]) : 0u;
    };
    const unsigned b0 = byte(0);
    std::size_t n;
    unsigned lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (b0 >= 0xC2 && b0 <= 0xDF) {
      n = 2;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
      n = 3;
      if (b0 == 0xE0) lo = 0xA0;       // overlong
      if (b0 == 0xED) hi = 0x9F;       // UTF-16 surrogates
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
      n = 4;
      if (b0 == 0xF0) lo = 0x90;       // overlong
      if (b0 == 0xF4) hi = 0x8F;       // beyond U+10FFFF
    } else {
      fail(pos_, "invalid UTF-8 lead " + describe_char(pos_) + " in a string");
    }
    for (std::size_t i = 1; i < n; ++i) {
      const unsigned b = byte(i);
      const unsigned l = i == 1 ? lo : 0x80, h = i == 1 ? hi : 0xBF;
      if (pos_ + i >= text_.size() || b < l || b > h)
        fail(pos_ + i, "invalid UTF-8 sequence in a string");
    }
    return n;
  }

  void parse_string(std::string& out) {
    const std::size_t start = pos_;
    ++pos_;  // opening quote
    for (;;) {
      if (at_end()) fail(start, "unterminated string");
      const unsigned char c = peek();
      if (c == '"') {
        ++pos_;
        return;
      }
      if (c < 0x20) fail(pos_, "unescaped control " + describe_char(pos_) + " in a string");
      if (c >= 0x80) {
        const std::size_t n = utf8_sequence_length();
        out.append(text_.data() + pos_, n);
        pos_ += n;
        continue;
      }
      if (c != '\\') {
        out += static_cast<char>(c);
        ++pos_;
        continue;
      }
      if (pos_ + 1 >= text_.size()) fail(start, "unterminated string");
      const char e = text_[pos_ + 1];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          const unsigned u = read_u_escape(pos_);
          if (u >= 0xDC00 && u <= 0xDFFF) fail(pos_, "invalid \\u escape: unpaired low surrogate \\u" + hex4(u));
          if (u >= 0xD800 && u <= 0xDBFF) {
            const std::size_t second = pos_ + 6;
            if (second + 1 >= text_.size() || text_[second] != '\\' || text_[second + 1] != 'u')
              fail(pos_, "invalid \\u escape: unpaired high surrogate \\u" + hex4(u));
            const unsigned lo = read_u_escape(second);
            if (lo < 0xDC00 || lo > 0xDFFF)
              fail(second, "invalid \\u escape: high surrogate \\u" + hex4(u) + " followed by \\u" + hex4(lo) +
                               ", expected a low surrogate");
            append_utf8(out, 0x10000u + ((u - 0xD800u) << 10) + (lo - 0xDC00u));
            pos_ += 12;
          } else {
            append_utf8(out, u);
            pos_ += 6;
          }
          continue;
        }
        default: fail(pos_, "invalid escape " + describe_char(pos_ + 1) + " after '\\' in a string");
      }
      pos_ += 2;
    }
  }

  bool digit_at(std::size_t at) const { return at < text_.size() && text_[at] >= '0' && text_[at] <= '9'; }

  void parse_number(JsonValue& out) {
    const std::size_t start = pos_;
    if (text_[pos_] == '-') ++pos_;
    if (!digit_at(pos_)) fail(pos_, "invalid number: expected a digit, got " + describe_char(pos_));
    const std::size_t int_begin = pos_;
    if (text_[pos_] == '0') {
      ++pos_;
      if (digit_at(pos_)) fail(start, "invalid number: leading zero");
    } else {
      while (digit_at(pos_)) ++pos_;
    }
    const std::size_t int_end = pos_;
    bool integral = true;
    std::size_t frac_begin = pos_, frac_end = pos_;
    if (pos_ < text_.size() && text_[pos_] == '.') {
      integral = false;
      ++pos_;
      if (!digit_at(pos_)) fail(pos_, "invalid number: expected a digit after '.', got " + describe_char(pos_));
      frac_begin = pos_;
      while (digit_at(pos_)) ++pos_;
      frac_end = pos_;
    }
    long long exponent = 0;  // saturated
    if (pos_ < text_.size() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
      integral = false;
      ++pos_;
      bool negative = false;
      if (pos_ < text_.size() && (text_[pos_] == '+' || text_[pos_] == '-')) negative = text_[pos_++] == '-';
      if (!digit_at(pos_)) fail(pos_, "invalid number: expected a digit in the exponent, got " + describe_char(pos_));
      while (digit_at(pos_)) {
        if (exponent < 1000000000) exponent = exponent * 10 + (text_[pos_] - '0');
        ++pos_;
      }
      if (negative) exponent = -exponent;
    }
    const char* first = text_.data() + start;
    const char* last = text_.data() + pos_;
    if (integral) {
      std::int64_t v = 0;
      const auto res = std::from_chars(first, last, v);
      if (res.ec == std::errc() && res.ptr == last) {
        out.kind_ = JsonValue::Kind::Int;
        out.int_ = v;
        return;
      }
      out.big_int_ = true;  // beyond int64: keep as a double
    }
    out.kind_ = JsonValue::Kind::Double;
    double d = 0;
    const auto res = std::from_chars(first, last, d);
    if (res.ec == std::errc::result_out_of_range) {
      // Decimal magnitude decides overflow (rejected) versus underflow (signed zero).
      long long magnitude = exponent;
      const bool int_is_zero = int_end - int_begin == 1 && text_[int_begin] == '0';
      if (!int_is_zero) {
        magnitude += static_cast<long long>(int_end - int_begin);
      } else {
        std::size_t zeros = 0;
        while (frac_begin + zeros < frac_end && text_[frac_begin + zeros] == '0') ++zeros;
        magnitude -= static_cast<long long>(zeros);
      }
      if (magnitude > 0) fail(start, "number out of range of double");
      d = text_[start] == '-' ? -0.0 : 0.0;
    } else if (res.ec != std::errc() || res.ptr != last) {
      fail(start, "invalid number");
    }
    out.double_ = d;
  }

  std::string_view text_;
  const JsonParseOptions& options_;
  std::size_t pos_ = 0;
  std::size_t values_ = 0;
};

}  // namespace detail

// Parses one JSON document; throws tokenmix::Error "<context>: <problem> at byte <offset>".
inline JsonValue parse_json(std::string_view text, const JsonParseOptions& options = {}) {
  return detail::JsonParser(text, options).parse_document();
}

// Reads and parses a file; error messages are prefixed with its path unless options.context is set.
inline JsonValue parse_json_file(const std::string& path, JsonParseOptions options = {}) {
  std::ifstream in(path, std::ios::binary);
  TOKENMIX_CHECK(in.good(), "parse_json_file: cannot open '", path, "'");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  TOKENMIX_CHECK(!in.bad(), "parse_json_file: error while reading '", path, "'");
  if (options.context == "JSON") options.context = path;
  return parse_json(text, options);
}

}  // namespace tokenmix::io
