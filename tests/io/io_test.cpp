// Tests of io/: the strict JSON parser and DOM (io/json.hpp), the safetensors reader / writer
// (io/safetensors.hpp) and the .npy reader / writer (io/npy.hpp) — DESIGN §4 (corrupt files get a
// clear tokenmix::Error), §6 (fixtures written by Python: tests/data/make_io_fixture.py).
//
// Every broken-file case is written to a temporary directory and opened through the file path
// (mmap) as well as from memory; each must throw tokenmix::Error whose message names the problem.

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "tokenmix/config.hpp"
#include "tokenmix/core/tensor.hpp"
#include "tokenmix/io/json.hpp"
#include "tokenmix/io/npy.hpp"
#include "tokenmix/io/safetensors.hpp"

namespace tokenmix {
namespace {

namespace fs = std::filesystem;
using io::JsonValue;
using io::parse_json;
using io::SafetensorsFile;
using Bytes = std::vector<unsigned char>;

const std::string kDataDir = std::string(TOKENMIX_TEST_DATA_DIR) + "/io/";

// ---- helpers --------------------------------------------------------------------------------------

// The message of the tokenmix::Error thrown by f; fails the test if f throws nothing.
template <class F>
std::string error_message(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected tokenmix::Error";
  return {};
}

#define EXPECT_ERROR_CONTAINING(statement, substring)                                              \
  do {                                                                                             \
    const std::string tokenmix_msg_ = error_message([&] { (void)(statement); });                  \
    EXPECT_NE(tokenmix_msg_.find(substring), std::string::npos)                                    \
        << "message \"" << tokenmix_msg_ << "\" lacks \"" << (substring) << "\"";                  \
  } while (false)

// A fresh directory under the system temp dir, removed with its contents at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = fs::temp_directory_path() /
            ("tokenmix_io_test_" + std::to_string(rd()) + "_" + std::to_string(rd()));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

void write_bytes(const std::string& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

Bytes read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  return Bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

Bytes to_bytes(const std::string& s) { return Bytes(s.begin(), s.end()); }

void append_u64_le(Bytes& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<unsigned char>(v >> (8 * i)));
}

// A safetensors file: u64 length (the header's own unless overridden), header, data.
Bytes st_file(const std::string& header, const Bytes& data = {}, std::uint64_t length = ~std::uint64_t{0}) {
  Bytes out;
  append_u64_le(out, length == ~std::uint64_t{0} ? header.size() : length);
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

// One tensor entry of a header.
std::string st_entry(const std::string& name, const std::string& dtype, const std::string& shape,
                     const std::string& offsets) {
  return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":" + offsets + "}";
}

bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }

template <class TA, class TB>
::testing::AssertionResult bitwise_same(const TA& a, const TB& b) {
  if (a.size() != b.size()) return ::testing::AssertionFailure() << "sizes " << a.size() << " vs " << b.size();
  for (Index i = 0; i < a.size(); ++i)
    if (!same_bits(a.data()[i], b.data()[i]))
      return ::testing::AssertionFailure() << "element " << i << ": " << a.data()[i] << " vs " << b.data()[i];
  return ::testing::AssertionSuccess();
}

// Reads every float tensor of an opened file (exercises the whole read path).
void read_all(const SafetensorsFile& f) {
  for (const std::string& name : f.names()) {
    const io::TensorInfo& info = f.info(name);
    const io::ByteView raw = f.raw(name);
    EXPECT_EQ(raw.size, info.byte_size());
    if (!io::is_float_dtype(info.dtype)) continue;
    std::vector<float> buf(static_cast<std::size_t>(info.numel));
    f.read_float_into(name, buf.data(), info.numel);
  }
}

// ---- JSON -----------------------------------------------------------------------------------------

TEST(Json, ParsesScalarsArraysAndObjects) {
  const JsonValue v = parse_json(R"( {"i": -42, "d": 2.5e-1, "s": "x", "t": true, "f": false, "n": null,
                                      "a": [1, [2, {}], []], "o": {"k": "v"}} )");
  ASSERT_TRUE(v.is_object());
  EXPECT_EQ(v.size(), 8u);
  EXPECT_EQ(v.at("i").as_int(), -42);
  EXPECT_TRUE(v.at("i").is_int());
  EXPECT_EQ(v.at("d").as_double(), 0.25);
  EXPECT_TRUE(v.at("d").is_double());
  EXPECT_EQ(v.at("s").as_string(), "x");
  EXPECT_TRUE(v.at("t").as_bool());
  EXPECT_FALSE(v.at("f").as_bool());
  EXPECT_TRUE(v.at("n").is_null());
  EXPECT_EQ(v.at("a").size(), 3u);
  EXPECT_EQ(v.at("a").at(1).at(0).as_int(), 2);
  EXPECT_TRUE(v.at("a").at(1).at(1).is_object());
  EXPECT_EQ(v.at("a").at(2).size(), 0u);
  EXPECT_EQ(v.at("o").at("k").as_string(), "v");
  // Members keep document order.
  const std::vector<std::string> keys = {"i", "d", "s", "t", "f", "n", "a", "o"};
  for (std::size_t k = 0; k < keys.size(); ++k) EXPECT_EQ(v.as_object()[k].first, keys[k]);
  EXPECT_EQ(v.at("a").at(1).at(1).path(), "a[1][1]");
  EXPECT_EQ(v.at("o").at("k").path(), "o.k");
}

TEST(Json, Numbers) {
  EXPECT_EQ(parse_json("0").as_int(), 0);
  EXPECT_EQ(parse_json("-0").as_int(), 0);
  const JsonValue neg_zero = parse_json("-0.0");
  EXPECT_TRUE(neg_zero.is_double());
  EXPECT_TRUE(std::signbit(neg_zero.as_double()));
  EXPECT_EQ(parse_json("1E+2").as_double(), 100.0);
  EXPECT_TRUE(parse_json("1E+2").is_double());
  EXPECT_EQ(parse_json("0.1").as_double(), 0.1);
  EXPECT_EQ(parse_json("-12.5e-3").as_double(), -12.5e-3);
  EXPECT_EQ(parse_json("9223372036854775807").as_int(), std::numeric_limits<std::int64_t>::max());
  EXPECT_EQ(parse_json("-9223372036854775808").as_int(), std::numeric_limits<std::int64_t>::min());
  EXPECT_EQ(parse_json("1e-400").as_double(), 0.0);  // underflow: zero
  EXPECT_TRUE(std::signbit(parse_json("-1e-400").as_double()));
  EXPECT_EQ(parse_json("0.0000000000000000000000000000000000000000000000001e-300").as_double(), 0.0);
  const JsonValue big = parse_json("9223372036854775808");  // int64 max + 1: kept as a double
  EXPECT_TRUE(big.is_double());
  EXPECT_EQ(big.as_double(), 9223372036854775808.0);
  EXPECT_ERROR_CONTAINING(big.as_int(), "does not fit in int64");
  EXPECT_ERROR_CONTAINING(parse_json("1e400"), "number out of range of double at byte 0");
  EXPECT_ERROR_CONTAINING(parse_json("[0, -12345678901234567890e300]"), "out of range of double at byte 4");
}

TEST(Json, StringsAndEscapes) {
  EXPECT_EQ(parse_json(R"("\"\\\/\b\f\n\r\t")").as_string(), "\"\\/\b\f\n\r\t");
  EXPECT_EQ(parse_json(R"("\u0041\u00e9\u20AC")").as_string(), "A\xC3\xA9\xE2\x82\xAC");
  EXPECT_EQ(parse_json(R"("\ud83d\ude00")").as_string(), "\xF0\x9F\x98\x80");  // surrogate pair
  EXPECT_EQ(parse_json(R"("\u0000")").as_string(), std::string(1, '\0'));
  EXPECT_EQ(parse_json("\"h\xC3\xA9llo \xF0\x9F\x98\x80\"").as_string(), "h\xC3\xA9llo \xF0\x9F\x98\x80");
  // dump() escapes like serde_json and round-trips.
  const JsonValue v = parse_json(R"({"a\"b":["x\u0001\n", 1.5, -3, true, null, 1e300, 5.0]})");
  EXPECT_EQ(v.dump(), R"({"a\"b":["x\u0001\n",1.5,-3,true,null,1e+300,5.0]})");
  EXPECT_EQ(parse_json(v.dump()).dump(), v.dump());
  EXPECT_EQ(io::json_quote("tab\there/é"), "\"tab\\there/é\"");
}

TEST(Json, ErrorsNameTheProblemAndTheByteOffset) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "unexpected end of input, expected a value at byte 0"},
      {"   ", "unexpected end of input, expected a value at byte 3"},
      {"[1,]", "unexpected character ']', expected a value at byte 3"},
      {"[1 2]", "unexpected character '2' in an array, expected ',' or ']' at byte 3"},
      {"[1", "unexpected end of input in an array"},
      {"{\"a\":1,}", "expected a string key at byte 7"},
      {"{a:1}", "unexpected character 'a' in an object, expected a string key at byte 1"},
      {"{\"a\" 1}", "expected ':' at byte 5"},
      {"{\"a\":1", "unexpected end of input in an object"},
      {"01", "leading zero at byte 0"},
      {"1.", "expected a digit after '.'"},
      {".5", "unexpected character '.'"},
      {"-", "expected a digit"},
      {"+1", "unexpected character '+'"},
      {"1e", "expected a digit in the exponent"},
      {"tru", "invalid literal, expected 'true' at byte 0"},
      {"nul", "invalid literal"},
      {"NaN", "unexpected character 'N'"},
      {"[Infinity]", "unexpected character 'I', expected a value at byte 1"},
      {"[1] 2", "unexpected character '2' after the JSON value at byte 4"},
      {"\"abc", "unterminated string at byte 0"},
      {"\"a\\x\"", "invalid escape character 'x'"},
      {"\"\\ud800\"", "unpaired high surrogate \\uD800 at byte 1"},
      {"\"\\ud800x\"", "unpaired high surrogate"},
      {"\"\\udc00\"", "unpaired low surrogate \\uDC00"},
      {"\"\\ud800\\u0041\"", "followed by \\u0041, expected a low surrogate"},
      {"\"\\u12\"", "invalid \\u escape: expected 4 hex digits at byte 1"},
      {"\"\\u12G4\"", "expected 4 hex digits"},
      {"\"a\nb\"", "unescaped control byte 0x0A in a string at byte 2"},
      {"\"\xC0\xAF\"", "invalid UTF-8 lead byte 0xC0"},             // overlong '/'
      {"\"\xE0\x80\xAF\"", "invalid UTF-8 sequence"},               // overlong
      {"\"\xED\xA0\x80\"", "invalid UTF-8 sequence in a string at byte 2"},  // encoded surrogate
      {"\"\xF4\x90\x80\x80\"", "invalid UTF-8 sequence"},           // beyond U+10FFFF
      {"\"\xE2\x82\"", "invalid UTF-8 sequence"},                   // truncated sequence
      {"\"\xFF\"", "invalid UTF-8 lead byte 0xFF"},
      {"\xEF\xBB\xBF{}", "unexpected byte 0xEF"},                   // BOM
      {"{\"a\":1,\"b\":2,\"a\":3}", "duplicate key \"a\" at byte 13"},
      {"// c\n1", "unexpected character '/'"},
      {std::string(200, '['), "nesting deeper than 128 levels (depth limit) at byte 128"},
  };
  for (const auto& c : cases) {  // (no structured bindings: clang 14 cannot capture them in lambdas)
    SCOPED_TRACE("input: " + c.first);
    EXPECT_ERROR_CONTAINING(parse_json(c.first), c.second);
  }
}

TEST(Json, LimitsAndContext) {
  io::JsonParseOptions options;
  options.max_depth = 2;
  EXPECT_EQ(parse_json("[[1]]", options).at(0).at(0).as_int(), 1);
  EXPECT_ERROR_CONTAINING(parse_json("[[[1]]]", options), "nesting deeper than 2 levels");
  EXPECT_ERROR_CONTAINING(parse_json("{\"a\":{\"b\":{}}}", options), "depth limit");
  // A million-deep bomb is rejected at the limit, without recursing a million times.
  EXPECT_ERROR_CONTAINING(parse_json(std::string(1000000, '[')), "depth limit");
  EXPECT_ERROR_CONTAINING(parse_json(std::string(1000000, '{')), "expected a string key");
  options = {};
  options.max_values = 3;
  EXPECT_EQ(parse_json("[1,2]", options).size(), 2u);
  EXPECT_ERROR_CONTAINING(parse_json("[1,2,3]", options), "more than 3 JSON values");
  options = {};
  options.context = "config.json";
  EXPECT_ERROR_CONTAINING(parse_json("{", options), "config.json: unexpected end of input");
}

TEST(Json, TypedAccessorsNameTheKey) {
  const JsonValue cfg = parse_json(R"({"hidden_size": 768, "use_bias": false, "rms_norm_eps": 1e-5,
      "model_type": "mamba", "layers": [1, 2, 3], "rope_scaling": null, "nested": {"a": {"b": "x"}}})");
  EXPECT_EQ(cfg.at("hidden_size").as_int(), 768);
  EXPECT_EQ(cfg.at("hidden_size").as<int>(), 768);
  EXPECT_EQ(cfg.at("hidden_size").as_double(), 768.0);
  EXPECT_EQ(cfg.at("rms_norm_eps").as<float>(), 1e-5f);
  EXPECT_TRUE(cfg.contains("use_bias"));
  EXPECT_FALSE(cfg.contains("tie_embeddings"));
  EXPECT_EQ(cfg.find("tie_embeddings"), nullptr);
  EXPECT_FALSE(cfg.get_or("use_bias", true));
  EXPECT_TRUE(cfg.get_or("tie_embeddings", true));
  EXPECT_EQ(cfg.get_or("hidden_size", 1), 768);
  EXPECT_EQ(cfg.get_or("n_layer", 24), 24);
  EXPECT_EQ(cfg.get_or("rope_scaling", 1.5), 1.5);  // null counts as missing
  EXPECT_EQ(cfg.get_or("model_type", "none"), "mamba");
  EXPECT_EQ(cfg.get_or("vocab", "none"), "none");
  EXPECT_EQ(cfg.at("nested").at("a").at("b").as_string(), "x");

  EXPECT_ERROR_CONTAINING(cfg.at("d_model"), "JSON: missing key 'd_model'");
  EXPECT_ERROR_CONTAINING(cfg.at("nested").at("a").at("zz"), "missing key 'nested.a.zz'");
  EXPECT_ERROR_CONTAINING(cfg.at("model_type").as_int(), "'model_type' is a string, expected an integer");
  EXPECT_ERROR_CONTAINING(cfg.at("rms_norm_eps").as_int(), "'rms_norm_eps' is a number, expected an integer");
  EXPECT_ERROR_CONTAINING(cfg.at("use_bias").as_string(), "'use_bias' is a boolean, expected a string");
  EXPECT_ERROR_CONTAINING(cfg.at("hidden_size").as_bool(), "'hidden_size' is an integer, expected a boolean");
  EXPECT_ERROR_CONTAINING(cfg.at("layers").at(5), "index 5 out of range for 'layers' of size 3");
  EXPECT_ERROR_CONTAINING(cfg.at("layers").at("x"), "'layers' is an array, expected an object");
  EXPECT_ERROR_CONTAINING(cfg.at("layers").at(1).as_string(), "'layers[1]' is an integer, expected a string");
  EXPECT_ERROR_CONTAINING(cfg.at("hidden_size").as<std::int8_t>(), "'hidden_size' = 768 does not fit");
  EXPECT_ERROR_CONTAINING(cfg.get_or("model_type", 3), "'model_type' is a string, expected an integer");
  EXPECT_ERROR_CONTAINING(cfg.at(0), "the root value is an object, expected an array");
  EXPECT_ERROR_CONTAINING(parse_json("-1").as<unsigned>(), "does not fit");
}

// ---- F16 / BF16 decoding ----------------------------------------------------------------------------

// binary16 value from its fields, computed without bit tricks.
double expected_f16(std::uint16_t h) {
  const bool negative = (h >> 15) != 0;
  const int exponent = (h >> 10) & 0x1F;
  const int mantissa = h & 0x3FF;
  double v;
  if (exponent == 31) {
    v = mantissa ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
  } else if (exponent == 0) {
    v = std::ldexp(static_cast<double>(mantissa), -24);  // subnormal: m * 2^-14 / 1024
  } else {
    v = std::ldexp(1024.0 + mantissa, exponent - 25);  // (1 + m/1024) * 2^(e-15)
  }
  return negative ? -v : v;
}

// bfloat16 value from its fields (8-bit exponent with bias 127, 7-bit mantissa).
double expected_bf16(std::uint16_t b) {
  const bool negative = (b >> 15) != 0;
  const int exponent = (b >> 7) & 0xFF;
  const int mantissa = b & 0x7F;
  double v;
  if (exponent == 255) {
    v = mantissa ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
  } else if (exponent == 0) {
    v = std::ldexp(static_cast<double>(mantissa), -133);  // m * 2^-126 / 128
  } else {
    v = std::ldexp(128.0 + mantissa, exponent - 134);  // (1 + m/128) * 2^(e-127)
  }
  return negative ? -v : v;
}

TEST(Safetensors, DecodesEveryF16AndBf16BitPattern) {
  const std::string header = "{" + st_entry("h", "F16", "[65536]", "[0,131072]") + "," +
                             st_entry("b", "BF16", "[256,256]", "[131072,262144]") + "}";
  Bytes data;
  for (int pass = 0; pass < 2; ++pass)
    for (unsigned v = 0; v < 65536; ++v) {
      data.push_back(static_cast<unsigned char>(v & 0xFF));
      data.push_back(static_cast<unsigned char>(v >> 8));
    }
  const SafetensorsFile f = SafetensorsFile::from_bytes(st_file(header, data));
  const Tensor<float, 1> h = f.read_float<1>("h");
  const Tensor<float, 2> b = f.read_float<2>("b");
  int bad_h = 0, bad_b = 0;
  for (unsigned v = 0; v < 65536; ++v) {
    const double eh = expected_f16(static_cast<std::uint16_t>(v));
    const double eb = expected_bf16(static_cast<std::uint16_t>(v));
    const float ah = h(static_cast<Index>(v));
    const float ab = b.data()[v];
    const bool sign = (v >> 15) != 0;
    const bool ok_h = std::isnan(eh) ? (std::isnan(ah) && std::signbit(ah) == sign)
                                     : (ah == static_cast<float>(eh) && std::signbit(ah) == sign);
    const bool ok_b = std::isnan(eb) ? (std::isnan(ab) && std::signbit(ab) == sign)
                                     : (ab == static_cast<float>(eb) && std::signbit(ab) == sign);
    if (!ok_h && bad_h++ < 5) ADD_FAILURE() << "F16 0x" << std::hex << v << ": got " << ah << ", expected " << eh;
    if (!ok_b && bad_b++ < 5) ADD_FAILURE() << "BF16 0x" << std::hex << v << ": got " << ab << ", expected " << eb;
  }
  EXPECT_EQ(bad_h, 0);
  EXPECT_EQ(bad_b, 0);
  // A few well-known patterns.
  EXPECT_EQ(h(0x3C00), 1.0f);
  EXPECT_EQ(h(0xC000), -2.0f);
  EXPECT_EQ(h(0x7BFF), 65504.0f);
  EXPECT_EQ(h(0x0001), 5.9604644775390625e-08f);  // smallest subnormal 2^-24
  EXPECT_EQ(h(0x03FF), 6.0975551605224609375e-05f);  // largest subnormal
  EXPECT_EQ(h(0x0400), 6.103515625e-05f);         // smallest normal 2^-14
  EXPECT_EQ(h(0x3555), 0.333251953125f);
  EXPECT_EQ(h(0x7C00), std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(h(0x7E00)));
  EXPECT_EQ(b.data()[0x3F80], 1.0f);
  EXPECT_EQ(b.data()[0x4049], 3.140625f);
  EXPECT_EQ(b.data()[0xFF80], -std::numeric_limits<float>::infinity());
}

// ---- safetensors: round trips and API ---------------------------------------------------------------

Tensor<float, 2> sample_matrix() {
  Tensor<float, 2> m(3, 5);
  std::mt19937 rng(7);
  std::normal_distribution<float> dist;
  for (Index i = 0; i < m.size(); ++i) m.data()[i] = dist(rng);
  m(0, 0) = -0.0f;
  m(0, 1) = std::numeric_limits<float>::infinity();
  m(0, 2) = std::numeric_limits<float>::quiet_NaN();
  m(0, 3) = std::numeric_limits<float>::denorm_min();
  m(0, 4) = std::numeric_limits<float>::max();
  return m;
}

TEST(Safetensors, WriteThenReadIsExact) {
  TempDir dir;
  const Tensor<float, 2> m = sample_matrix();
  Tensor<float, 4> t4(2, 1, 3, 2);
  for (Index i = 0; i < t4.size(); ++i) t4.data()[i] = 0.5f * static_cast<float>(i) - 3.0f;
  Tensor<float, 0> s;
  s() = 42.5f;
  Tensor<float, 3> empty(2, 0, 7);
  const std::vector<float> raw = {1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f};
  const std::string path = dir.file("round.safetensors");
  io::write_safetensors(path,
                        {{"m", m}, {"t4", t4}, {"s", s}, {"empty", empty}, {"raw", raw.data(), {3, 2}}},
                        {{"format", "pt"}, {"note", "quote \" and \xC3\xA9"}});

  const SafetensorsFile f(path);
  // Written in name order, packed from offset 0.
  EXPECT_EQ(f.names(), (std::vector<std::string>{"empty", "m", "raw", "s", "t4"}));
  EXPECT_EQ(f.size(), 5u);
  EXPECT_TRUE(f.contains("m"));
  EXPECT_FALSE(f.contains("M"));
  EXPECT_EQ(f.metadata(), (std::map<std::string, std::string>{{"format", "pt"}, {"note", "quote \" and \xC3\xA9"}}));
  EXPECT_TRUE(bitwise_same(f.read_float<2>("m"), m));
  EXPECT_TRUE(bitwise_same(f.read_float<4>("t4"), t4));
  const Tensor<float, 0> s2 = f.read_float<0>("s");
  EXPECT_EQ(s2(), 42.5f);
  const Tensor<float, 3> e2 = f.read_float<3>("empty");
  EXPECT_EQ(e2.dimension(0), 2);
  EXPECT_EQ(e2.dimension(1), 0);
  EXPECT_EQ(e2.dimension(2), 7);
  const Tensor<float, 2> r2 = f.read_float<2>("raw");
  EXPECT_EQ(r2(2, 1), 6.0f);
  EXPECT_EQ(r2(1, 0), 3.0f);

  const io::TensorInfo& info = f.info("m");
  EXPECT_EQ(info.dtype, io::Dtype::F32);
  EXPECT_EQ(info.shape, (std::vector<Index>{3, 5}));
  EXPECT_EQ(info.numel, 15);
  EXPECT_EQ(info.byte_size(), 60u);
  EXPECT_EQ(f.info("s").shape.size(), 0u);
  EXPECT_EQ(f.info("s").numel, 1);
  EXPECT_EQ(f.info("empty").byte_size(), 0u);
  EXPECT_EQ(f.raw("m").size, 60u);

  std::vector<float> buf(15);
  f.read_float_into("m", buf.data(), 15);
  EXPECT_TRUE(same_bits(buf[14], m(2, 4)));

  // The same bytes through from_bytes, and after moving the file object.
  SafetensorsFile g = SafetensorsFile::from_bytes(read_bytes(path), "copy");
  SafetensorsFile moved = std::move(g);
  EXPECT_TRUE(bitwise_same(moved.read_float<2>("m"), m));
}

TEST(Safetensors, WriterLayoutMatchesTheReferenceImplementation) {
  const std::vector<float> a = {1, 2, 3, 4};
  const std::vector<float> b = {5, 6, 7, 8, 9, 10};
  const Bytes bytes = io::serialize_safetensors({{"b", b.data(), {2, 3}}, {"a", a.data(), {4}}}, {{"format", "pt"}});
  std::string expected_header =
      R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
      R"("b":{"dtype":"F32","shape":[2,3],"data_offsets":[16,40]}})";
  expected_header.append((8 - expected_header.size() % 8) % 8, ' ');  // padded with spaces to 8
  ASSERT_EQ(bytes.size(), 8 + expected_header.size() + 40);
  std::uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<std::uint64_t>(bytes[static_cast<std::size_t>(i)]) << (8 * i);
  EXPECT_EQ(n, expected_header.size());
  EXPECT_EQ(n % 8, 0u);
  EXPECT_EQ(std::string(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(n)), expected_header);
  float first_b;
  std::memcpy(&first_b, bytes.data() + 8 + n + 16, 4);
  EXPECT_EQ(first_b, 5.0f);
  // No metadata: no __metadata__ key.
  const Bytes plain = io::serialize_safetensors({{"a", a.data(), {4}}});
  const std::string plain_header = R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})";  // 55 bytes
  EXPECT_EQ(std::string(plain.begin() + 8, plain.begin() + 8 + 56), plain_header + " ");
}

TEST(Safetensors, ApiErrors) {
  const std::vector<float> a = {1, 2, 3, 4, 5, 6};
  const SafetensorsFile f = SafetensorsFile::from_bytes(io::serialize_safetensors({{"w", a.data(), {2, 3}}}), "w.st");
  EXPECT_ERROR_CONTAINING(f.info("v"), "safetensors: 'w.st': no tensor named 'v'");
  EXPECT_ERROR_CONTAINING(f.read_float<3>("w"), "tensor 'w' has shape [2, 3] (rank 2), expected rank 3");
  EXPECT_ERROR_CONTAINING(f.read_float<1>("w"), "expected rank 1");
  std::vector<float> buf(5);
  EXPECT_ERROR_CONTAINING(f.read_float_into("w", buf.data(), 5), "has 6 elements, but the destination holds 5");

  const std::string header = "{" + st_entry("i", "I32", "[2]", "[0,8]") + "," + st_entry("m", "BOOL", "[1]", "[8,9]") + "}";
  const Bytes data = {1, 0, 0, 0, 0xFE, 0xFF, 0xFF, 0xFF, 1};
  const SafetensorsFile ints = SafetensorsFile::from_bytes(st_file(header, data));
  EXPECT_ERROR_CONTAINING(ints.read_float<1>("i"), "tensor 'i' has dtype I32, read_float supports F32, F16, BF16 and F64");
  EXPECT_ERROR_CONTAINING(ints.read_float<1>("m"), "has dtype BOOL");
  const io::ByteView raw = ints.raw("i");
  ASSERT_EQ(raw.size, 8u);
  std::int32_t second;
  std::memcpy(&second, raw.data + 4, 4);
  EXPECT_EQ(second, -2);
  EXPECT_EQ(ints.info("m").dtype, io::Dtype::BOOL);

  // Writer argument errors.
  EXPECT_ERROR_CONTAINING(io::serialize_safetensors({{"x", a.data(), {6}}, {"x", a.data(), {6}}}),
                          "duplicate tensor name 'x'");
  EXPECT_ERROR_CONTAINING(io::serialize_safetensors({{"__metadata__", a.data(), {6}}}), "reserved");
  EXPECT_ERROR_CONTAINING(io::serialize_safetensors({{"x", a.data(), {-1}}}), "negative extent");
  EXPECT_ERROR_CONTAINING(io::serialize_safetensors({{"x", nullptr, {2}}}), "null data");
  TempDir dir;
  EXPECT_ERROR_CONTAINING(io::write_safetensors(dir.file("no/such/dir/x.safetensors"), {{"x", a.data(), {6}}}),
                          "cannot open");
  EXPECT_ERROR_CONTAINING(SafetensorsFile(dir.file("missing.safetensors")), "cannot open");
  EXPECT_ERROR_CONTAINING(SafetensorsFile("/dev/null"), "file is 0 bytes");  // not mmap-able: read() fallback
}

TEST(Safetensors, F64IsRoundedToFloat) {
  const double values[3] = {0.1, -1e300, 1.0 / 3.0};
  Bytes data(24);
  std::memcpy(data.data(), values, 24);
  const SafetensorsFile f = SafetensorsFile::from_bytes(st_file("{" + st_entry("d", "F64", "[3]", "[0,24]") + "}", data));
  const Tensor<float, 1> d = f.read_float<1>("d");
  EXPECT_EQ(d(0), 0.1f);
  EXPECT_EQ(d(1), -std::numeric_limits<float>::infinity());
  EXPECT_EQ(d(2), 1.0f / 3.0f);
}

TEST(Safetensors, ReadsTheFileWrittenByPython) {
  const SafetensorsFile f(kDataDir + "tiny.safetensors");
  // names() is in data order; the header lists them in another order.
  EXPECT_EQ(f.names(), (std::vector<std::string>{"f16", "bf16", "f32", "scalar", "i64", "empty"}));
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_EQ(f.metadata().at("note"), "h\xC3\xA9llo from make_io_fixture.py");  // "\u00e9" in the file

  const Tensor<float, 2> f32 = f.read_float<2>("f32");
  const float f32_expected[6] = {-1.5f, 0.0f, 0.25f, 1.0f, 2.5f, 1e-3f};
  ASSERT_EQ(f32.dimension(0), 2);
  ASSERT_EQ(f32.dimension(1), 3);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(f32.data()[i], f32_expected[i]) << i;

  const Tensor<float, 1> f16 = f.read_float<1>("f16");
  ASSERT_EQ(f16.size(), 11);
  const float inf = std::numeric_limits<float>::infinity();
  const float f16_expected[10] = {0.0f, -0.0f, 1.0f, -2.5f, 65504.0f, 5.9604644775390625e-08f, 6.103515625e-05f,
                                  inf, -inf, 0.0999755859375f};  // 0.1 rounded to binary16
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(f16(i), f16_expected[i]) << i;
    EXPECT_EQ(std::signbit(f16(i)), std::signbit(f16_expected[i])) << i;
  }
  EXPECT_TRUE(std::isnan(f16(10)));

  const Tensor<float, 2> bf16 = f.read_float<2>("bf16");
  EXPECT_EQ(bf16(0, 0), 1.0f);
  EXPECT_EQ(bf16(0, 1), 3.140625f);               // pi rounded to 8 significant bits
  EXPECT_EQ(bf16(1, 0), std::ldexp(1.0f, -133));  // smallest bf16 subnormal
  EXPECT_EQ(bf16(1, 1), std::ldexp(-255.0f, 120));  // -(largest finite bf16)

  EXPECT_EQ(f.read_float<0>("scalar")(), 42.0f);
  EXPECT_EQ(f.read_float<2>("empty").size(), 0);
  EXPECT_EQ(f.info("empty").shape, (std::vector<Index>{0, 3}));
  const io::ByteView i64 = f.raw("i64");
  ASSERT_EQ(i64.size, 24u);
  std::int64_t ints[3];
  std::memcpy(ints, i64.data, 24);
  EXPECT_EQ(ints[0], 1);
  EXPECT_EQ(ints[1], -2);
  EXPECT_EQ(ints[2], 3);
  EXPECT_EQ(f.info("i64").dtype, io::Dtype::I64);
}

// ---- safetensors: corpus of broken files ------------------------------------------------------------

struct BrokenCase {
  std::string name;
  Bytes bytes;
  std::string expected;  // substring of the error message
};

std::vector<BrokenCase> broken_safetensors() {
  const std::string w24 = st_entry("w", "F32", "[2,3]", "[0,24]");
  const Bytes d24(24, 0);
  std::vector<BrokenCase> c;
  c.push_back({"empty_file", {}, "file is 0 bytes, too small for the 8-byte header length"});
  c.push_back({"seven_bytes", Bytes(7, 0), "file is 7 bytes, too small"});
  c.push_back({"header_length_beyond_file", st_file("{}", {}, 100), "header length 100 exceeds the file size 10 - 8"});
  c.push_back({"header_length_2_pow_63", st_file("{}", {}, std::uint64_t{1} << 63),
               "header length 9223372036854775808 exceeds the limit of 100000000 bytes"});
  c.push_back({"header_length_just_over_limit", st_file("{}", {}, 100000001), "exceeds the limit of 100000000"});
  c.push_back({"header_length_zero", st_file("", d24), "unexpected end of input, expected a value at byte 0"});
  c.push_back({"header_not_json", st_file("hello world!"), "invalid JSON header: unexpected character 'h'"});
  c.push_back({"header_is_array", st_file("[1,2]"), "header is an array, expected a JSON object"});
  c.push_back({"header_is_string", st_file("\"x\""), "header is a string, expected a JSON object"});
  c.push_back({"truncated_json", st_file("{\"w\":{\"dtype\":\"F32\","), "unexpected end of input in an object"});
  c.push_back({"truncated_json_in_string", st_file("{\"w\":{\"dty"), "unterminated string"});
  c.push_back({"trailing_garbage", st_file("{} x"), "after the JSON value"});
  c.push_back({"nan_literal", st_file("{\"w\":NaN}"), "unexpected character 'N'"});
  c.push_back({"unknown_dtype", st_file("{" + st_entry("w", "F8_E4M3", "[2]", "[0,2]") + "}", Bytes(2)),
               "tensor \"w\" has unsupported dtype \"F8_E4M3\""});
  c.push_back({"lowercase_dtype", st_file("{" + st_entry("w", "f32", "[1]", "[0,4]") + "}", Bytes(4)),
               "unsupported dtype \"f32\""});
  c.push_back({"dtype_not_string", st_file("{\"w\":{\"dtype\":4,\"shape\":[],\"data_offsets\":[0,4]}}", Bytes(4)),
               "dtype is an integer, expected a string"});
  c.push_back({"negative_shape", st_file("{" + st_entry("w", "F32", "[-1,2]", "[0,8]") + "}", Bytes(8)),
               "invalid shape [-1,2]: extents must be non-negative integers"});
  c.push_back({"float_shape", st_file("{" + st_entry("w", "F32", "[2.5]", "[0,8]") + "}", Bytes(8)),
               "invalid shape [2.5]"});
  c.push_back({"string_shape", st_file("{" + st_entry("w", "F32", "[\"2\"]", "[0,8]") + "}", Bytes(8)),
               "invalid shape"});
  c.push_back({"shape_not_array", st_file("{" + st_entry("w", "F32", "6", "[0,24]") + "}", d24),
               "shape is an integer, expected an array"});
  c.push_back({"offsets_out_of_range", st_file("{" + st_entry("w", "F32", "[2,3]", "[0,24]") + "}", Bytes(20)),
               "data_offsets [0, 24] out of range: the data buffer has 20 bytes"});
  c.push_back({"offsets_far_out_of_range",
               st_file("{" + st_entry("w", "F32", "[1]", "[9223372036854775800,9223372036854775804]") + "}", d24),
               "out of range"});
  c.push_back({"end_before_begin", st_file("{" + st_entry("w", "F32", "[0]", "[8,0]") + "}", d24),
               "data_offsets [8, 0] with end < begin"});
  c.push_back({"size_mismatch", st_file("{" + st_entry("w", "F32", "[2,3]", "[0,20]") + "}", d24),
               "spanning 20 bytes, but shape [2, 3] of F32 needs 24 bytes (size mismatch)"});
  c.push_back({"size_mismatch_dtype", st_file("{" + st_entry("w", "F16", "[2,3]", "[0,24]") + "}", d24),
               "of F16 needs 12 bytes"});
  c.push_back({"overlapping_tensors",
               st_file("{" + st_entry("a", "F32", "[4]", "[0,16]") + "," + st_entry("b", "F32", "[4]", "[8,24]") + "}", d24),
               "tensors \"a\" (data_offsets [0, 16]) and \"b\" (data_offsets [8, 24]) overlap"});
  c.push_back({"identical_offsets",
               st_file("{" + st_entry("a", "F32", "[2]", "[0,8]") + "," + st_entry("b", "F32", "[2]", "[0,8]") + "}", d24),
               "overlap"});
  c.push_back({"empty_inside_other",
               st_file("{" + st_entry("a", "F32", "[4]", "[0,16]") + "," + st_entry("e", "F32", "[0]", "[8,8]") + "}", d24),
               "overlap"});
  c.push_back({"duplicate_keys", st_file("{" + w24 + "," + w24 + "}", d24), "duplicate key \"w\""});
  c.push_back({"duplicate_metadata", st_file("{\"__metadata__\":{},\"__metadata__\":{}}"), "duplicate key"});
  c.push_back({"numel_overflow",
               st_file("{" + st_entry("w", "F32", "[1099511627776,1099511627776]", "[0,24]") + "}", d24),
               "has too many elements (overflow)"});
  c.push_back({"byte_overflow", st_file("{" + st_entry("w", "F64", "[4611686018427387904]", "[0,24]") + "}", d24),
               "has too many bytes (overflow)"});
  c.push_back({"shape_beyond_int64", st_file("{" + st_entry("w", "F32", "[18446744073709551616]", "[0,4]") + "}", d24),
               "invalid shape"});
  c.push_back({"offsets_wrong_arity", st_file("{" + st_entry("w", "F32", "[1]", "[0]") + "}", d24),
               "invalid data_offsets [0], expected [begin, end]"});
  c.push_back({"offsets_negative", st_file("{" + st_entry("w", "F32", "[1]", "[-4,0]") + "}", d24),
               "invalid data_offsets"});
  c.push_back({"offsets_float", st_file("{" + st_entry("w", "F32", "[1]", "[0,4.0]") + "}", d24),
               "invalid data_offsets"});
  c.push_back({"missing_dtype", st_file("{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", d24), "has no dtype"});
  c.push_back({"missing_shape", st_file("{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", d24), "has no shape"});
  c.push_back({"missing_offsets", st_file("{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", d24), "has no data_offsets"});
  c.push_back({"entry_not_object", st_file("{\"w\":3}", d24), "tensor \"w\" is an integer, expected an object"});
  c.push_back({"metadata_not_object", st_file("{\"__metadata__\":[1]}"), "__metadata__ is an array"});
  c.push_back({"metadata_value_not_string", st_file("{\"__metadata__\":{\"epoch\":3}}"),
               "__metadata__ entry \"epoch\" is an integer, expected a string"});
  c.push_back({"depth_bomb", st_file("{\"__metadata__\":" + std::string(100000, '[') + "}"),
               "nesting deeper than 64 levels (depth limit)"});
  c.push_back({"lone_surrogate_escape", st_file("{\"\\ud800\":{}}"), "invalid \\u escape: unpaired high surrogate"});
  c.push_back({"bad_hex_escape", st_file("{\"\\u12G4\":{}}"), "invalid \\u escape: expected 4 hex digits"});
  c.push_back({"invalid_utf8_in_key", st_file("{\"w\xFF\":{}}"), "invalid UTF-8 lead byte 0xFF"});
  c.push_back({"invalid_utf8_outside_string", st_file("{\xC3\xA9}"), "unexpected byte 0xC3"});
  c.push_back({"control_char_in_key", st_file("{\"a\tb\":{}}"), "unescaped control byte 0x09"});
  Bytes truncated = st_file("{" + w24 + "}", d24);
  truncated.resize(truncated.size() - 10);
  c.push_back({"truncated_data_section", truncated, "data_offsets [0, 24] out of range: the data buffer has 14 bytes"});
  return c;
}

TEST(Safetensors, BrokenFilesThrowErrorsNamingTheProblem) {
  TempDir dir;
  for (const BrokenCase& c : broken_safetensors()) {
    SCOPED_TRACE(c.name);
    const std::string path = dir.file(c.name + ".safetensors");
    write_bytes(path, c.bytes);
    EXPECT_ERROR_CONTAINING(SafetensorsFile(path), c.expected);
    EXPECT_ERROR_CONTAINING(SafetensorsFile(path), "safetensors: '" + path + "': ");
    EXPECT_ERROR_CONTAINING(SafetensorsFile::from_bytes(c.bytes, c.name), c.expected);
  }
}

// Valid edge cases that must open: empty header object, gaps and trailing bytes, unknown fields.
TEST(Safetensors, AcceptsValidEdgeCases) {
  EXPECT_EQ(SafetensorsFile::from_bytes(st_file("{}")).size(), 0u);
  EXPECT_EQ(SafetensorsFile::from_bytes(st_file("  {}  \n ")).size(), 0u);
  const SafetensorsFile meta_only = SafetensorsFile::from_bytes(st_file("{\"__metadata__\":{\"a\":\"b\"}}"));
  EXPECT_EQ(meta_only.metadata().at("a"), "b");
  const std::string header = "{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[12,16],\"extra\":[1]}," +
                             st_entry("a", "U8", "[2]", "[0,2]") + "," + st_entry("z", "F32", "[0,5]", "[16,16]") + "}";
  Bytes data(20, 0);
  const float one = 1.0f;
  std::memcpy(data.data() + 12, &one, 4);
  const SafetensorsFile f = SafetensorsFile::from_bytes(st_file(header, data));
  EXPECT_EQ(f.names(), (std::vector<std::string>{"a", "b", "z"}));
  EXPECT_EQ(f.read_float<1>("b")(0), 1.0f);
  EXPECT_EQ(f.data_size(), 20u);
}

// Every truncation of a valid file is an error; every single-byte corruption either opens (and then
// reads without fault) or is an error — never a crash (run under ASan/UBSan in CI).
TEST(Safetensors, TruncationsAndByteFlipsNeverCrash) {
  Tensor<float, 2> m(2, 3);
  for (Index i = 0; i < m.size(); ++i) m.data()[i] = static_cast<float>(i);
  const std::vector<float> h = {1, 2};
  const Bytes valid = io::serialize_safetensors({{"m", m}, {"v", h.data(), {2}}}, {{"k", "v"}});
  ASSERT_NO_THROW(read_all(SafetensorsFile::from_bytes(valid)));
  for (std::size_t len = 0; len < valid.size(); ++len) {
    SCOPED_TRACE("truncated to " + std::to_string(len));
    EXPECT_THROW(SafetensorsFile::from_bytes(Bytes(valid.begin(), valid.begin() + static_cast<std::ptrdiff_t>(len))),
                 Error);
  }
  int opened = 0, rejected = 0;
  for (std::size_t i = 0; i < valid.size(); ++i) {
    for (const unsigned mask : {0x01u, 0x08u, 0x20u, 0x80u, 0xFFu}) {
      Bytes bad = valid;
      bad[i] = static_cast<unsigned char>(bad[i] ^ mask);
      try {
        read_all(SafetensorsFile::from_bytes(std::move(bad)));
        ++opened;
      } catch (const Error&) {
        ++rejected;
      }
    }
  }
  EXPECT_GT(rejected, 0);
  EXPECT_GT(opened, 0);  // flips inside the data section keep the file valid
}

// ---- npy --------------------------------------------------------------------------------------------

// A .npy file with a hand-written header dict, padded like numpy to a 64-byte boundary.
Bytes npy_file(const std::string& dict, const Bytes& data, int major = 1) {
  Bytes out = {0x93, 'N', 'U', 'M', 'P', 'Y', static_cast<unsigned char>(major), 0};
  const std::size_t len_bytes = major == 1 ? 2 : 4;
  std::string header = dict;
  while ((8 + len_bytes + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  for (std::size_t i = 0; i < len_bytes; ++i) out.push_back(static_cast<unsigned char>(header.size() >> (8 * i)));
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

std::string npy_dict(const std::string& descr, const std::string& fortran, const std::string& shape) {
  return "{'descr': '" + descr + "', 'fortran_order': " + fortran + ", 'shape': " + shape + ", }";
}

TEST(Npy, WriteThenReadIsExact) {
  TempDir dir;
  const Tensor<float, 2> m = sample_matrix();
  io::write_npy(dir.file("m.npy"), m);
  EXPECT_TRUE(bitwise_same(io::read_npy_float<2>(dir.file("m.npy")), m));
  Tensor<float, 4> t(2, 3, 1, 4);
  for (Index i = 0; i < t.size(); ++i) t.data()[i] = -0.25f * static_cast<float>(i);
  io::write_npy(dir.file("t.npy"), t);
  EXPECT_TRUE(bitwise_same(io::read_npy_float<4>(dir.file("t.npy")), t));
  Tensor<float, 1> v(1);
  v(0) = 3.0f;
  io::write_npy(dir.file("v.npy"), v);
  EXPECT_EQ(io::read_npy_float<1>(dir.file("v.npy"))(0), 3.0f);
  Tensor<float, 2> empty(0, 3);
  io::write_npy(dir.file("e.npy"), empty);
  const io::NpyArray e = io::read_npy_raw(dir.file("e.npy"));
  EXPECT_EQ(e.shape, (std::vector<Index>{0, 3}));
  EXPECT_EQ(e.numel, 0);
  EXPECT_TRUE(e.data.empty());
  for (const auto& shape : {std::vector<Index>{}, std::vector<Index>{5}, std::vector<Index>{123456, 0}}) {
    const std::vector<float> data(shape.empty() ? 1 : (shape.size() == 1 ? 5 : 0), 1.0f);
    const Bytes bytes = io::serialize_npy(data.data(), shape);
    EXPECT_EQ((bytes.size() - data.size() * 4) % 64, 0u);  // data starts on a 64-byte boundary
    EXPECT_EQ(io::parse_npy(bytes.data(), bytes.size()).shape, shape);
  }
  EXPECT_ERROR_CONTAINING(io::write_npy(dir.file("x/y.npy"), m), "cannot open");
  EXPECT_ERROR_CONTAINING(io::serialize_npy(nullptr, {3}), "null data");
}

TEST(Npy, ReadsFilesWrittenByNumpyAndWritesTheSameBytes) {
  const io::NpyArray raw = io::read_npy_raw(kDataDir + "tiny.npy");
  EXPECT_EQ(raw.descr, "<f4");
  EXPECT_EQ(raw.major_version, 1);
  const Tensor<float, 3> x = io::read_npy_float<3>(kDataDir + "tiny.npy");
  ASSERT_EQ(x.dimension(0), 2);
  ASSERT_EQ(x.dimension(1), 3);
  ASSERT_EQ(x.dimension(2), 4);
  for (Index i = 0; i < 24; ++i) EXPECT_EQ(x.data()[i], 0.5f * static_cast<float>(i) - 3.0f);
  EXPECT_EQ(x(1, 2, 3), 8.5f);
  // Byte-identical to np.save (numpy 1.24) for the same array: header, padding, data.
  EXPECT_EQ(io::serialize_npy(x.data(), {2, 3, 4}), read_bytes(kDataDir + "tiny.npy"));
  const float seven = 7.25f;
  EXPECT_EQ(io::serialize_npy(&seven, {}), read_bytes(kDataDir + "tiny_0d.npy"));
  EXPECT_EQ(io::read_npy_float<0>(kDataDir + "tiny_0d.npy")(), 7.25f);

  const Tensor<float, 1> f2 = io::read_npy_float<1>(kDataDir + "tiny_f2.npy");
  ASSERT_EQ(f2.size(), 4);
  EXPECT_EQ(f2(0), 1.0f);
  EXPECT_EQ(f2(1), -0.5f);
  EXPECT_EQ(f2(2), 65504.0f);
  EXPECT_EQ(f2(3), std::ldexp(1.0f, -24));
  const Tensor<float, 2> i8 = io::read_npy_float<2>(kDataDir + "tiny_i8.npy");
  EXPECT_EQ(i8(0, 0), 7.0f);
  EXPECT_EQ(i8(0, 1), -8.0f);
  EXPECT_EQ(i8(1, 0), 1099511627776.0f);
  const io::NpyArray v2 = io::read_npy_raw(kDataDir + "tiny_v2.npy");
  EXPECT_EQ(v2.major_version, 2);
  EXPECT_EQ(v2.descr, "<f8");
  const Tensor<float, 1> f8 = io::npy_to_float_tensor<1>(v2);
  EXPECT_EQ(f8(0), 0.1f);
  EXPECT_EQ(f8(1), -2.0f);
  EXPECT_EQ(f8(2), std::numeric_limits<float>::infinity());  // 1e300 overflows float
  EXPECT_ERROR_CONTAINING(io::read_npy_raw(kDataDir + "tiny_fortran.npy"), "fortran_order True is not supported");
  EXPECT_ERROR_CONTAINING(io::read_npy_float<2>(kDataDir + "tiny.npy"), "has shape [2, 3, 4] (rank 3), expected rank 2");
  EXPECT_ERROR_CONTAINING(io::read_npy_raw(kDataDir + "missing.npy"), "cannot open");
}

TEST(Npy, AcceptsHeaderVariants) {
  const Bytes four(16, 0);
  for (const std::string& dict :
       {std::string("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }"),
        std::string("{'shape': (2, 2), 'fortran_order': False, 'descr': '<f4'}"),  // any key order, no trailing comma
        std::string("{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (2,2)}"),
        std::string("{'descr':'<f4','fortran_order':False,'shape':(2L, 2L),}")}) {  // Python 2 longs
    SCOPED_TRACE(dict);
    const Bytes bytes = npy_file(dict, four);
    io::NpyArray a;
    ASSERT_NO_THROW(a = io::parse_npy(bytes.data(), bytes.size()));
    EXPECT_EQ(a.shape, (std::vector<Index>{2, 2}));
  }
  const Bytes v3 = npy_file(npy_dict("<i4", "False", "(1,)"), {5, 0, 0, 0}, 3);
  EXPECT_EQ(io::npy_to_float_tensor<1>(io::parse_npy(v3.data(), v3.size()))(0), 5.0f);
  const Bytes u1 = npy_file(npy_dict("|u1", "False", "(2,)"), {0, 255});
  EXPECT_EQ(io::npy_to_float_tensor<1>(io::parse_npy(u1.data(), u1.size()))(1), 255.0f);
  const Bytes u2 = npy_file(npy_dict("<u2", "False", "(1,)"), {0x80, 0x3F});  // bf16 bits of 1.0
  const io::NpyArray bits = io::parse_npy(u2.data(), u2.size());
  EXPECT_EQ(bits.descr, "<u2");
  EXPECT_EQ(bits.data, (Bytes{0x80, 0x3F}));
  EXPECT_ERROR_CONTAINING(io::npy_to_float_tensor<1>(bits), "'<u2' may hold bf16 bits");
}

TEST(Npy, BrokenFilesThrowErrorsNamingTheProblem) {
  const Bytes d24(24, 0);
  const Bytes valid = npy_file(npy_dict("<f4", "False", "(2, 3)"), d24);
  std::vector<BrokenCase> c;
  c.push_back({"empty_file", {}, "bad magic"});
  c.push_back({"bad_magic", to_bytes("\x93NUMPX\x01\x00"), "bad magic: not a .npy file"});
  c.push_back({"safetensors_not_npy", st_file("{}"), "bad magic"});
  c.push_back({"only_magic", Bytes(valid.begin(), valid.begin() + 7), "truncated header: the file ends inside the version"});
  c.push_back({"no_header_length", Bytes(valid.begin(), valid.begin() + 9), "truncated header: the file ends inside the header length"});
  c.push_back({"truncated_header", Bytes(valid.begin(), valid.begin() + 40), "truncated header: header length 118 exceeds the 30 bytes"});
  c.push_back({"version_4", npy_file(npy_dict("<f4", "False", "(6,)"), d24, 4), "unsupported format version 4.0"});
  Bytes minor = valid;
  minor[7] = 1;
  c.push_back({"version_1_1", minor, "unsupported format version 1.1"});
  Bytes huge = {0x93, 'N', 'U', 'M', 'P', 'Y', 2, 0, 0xFF, 0xFF, 0xFF, 0xFF};
  c.push_back({"header_length_4GiB", huge, "header length 4294967295 exceeds the limit"});
  c.push_back({"fortran_order", npy_file(npy_dict("<f4", "True", "(2, 3)"), d24), "fortran_order True is not supported"});
  c.push_back({"fortran_order_not_bool", npy_file(npy_dict("<f4", "0", "(2, 3)"), d24), "fortran_order must be True or False"});
  c.push_back({"unsupported_dtype", npy_file(npy_dict("<c8", "False", "(3,)"), d24), "unsupported dtype '<c8'"});
  c.push_back({"object_dtype", npy_file(npy_dict("|O", "False", "(3,)"), d24), "unsupported dtype '|O'"});
  c.push_back({"big_endian", npy_file(npy_dict(">f4", "False", "(2, 3)"), d24), "big-endian dtype '>f4' is not supported"});
  c.push_back({"structured_dtype", npy_file("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (6,), }", d24),
               "structured dtype"});
  c.push_back({"truncated_data", npy_file(npy_dict("<f4", "False", "(2, 3)"), Bytes(20)),
               "truncated data: shape [2, 3] of <f4 needs 24 bytes, the file has 20"});
  c.push_back({"size_mismatch", npy_file(npy_dict("<f4", "False", "(2, 2)"), d24),
               "size mismatch: shape [2, 2] of <f4 needs 16 bytes, but 8 trailing bytes follow"});
  c.push_back({"negative_shape", npy_file(npy_dict("<f4", "False", "(2, -3)"), d24), "shape entries must be non-negative integers"});
  c.push_back({"float_shape", npy_file(npy_dict("<f4", "False", "(2.5,)"), d24), "expected ',' or ')' in shape"});
  c.push_back({"shape_not_tuple", npy_file(npy_dict("<f4", "False", "(6)"), d24), "shape (6) is not a tuple, expected (6,)"});
  c.push_back({"shape_list", npy_file(npy_dict("<f4", "False", "[6]"), d24), "shape must be a tuple"});
  c.push_back({"shape_leading_zero", npy_file(npy_dict("<f4", "False", "(06,)"), d24), "leading zero"});
  c.push_back({"shape_overflow", npy_file(npy_dict("<f4", "False", "(1099511627776, 1099511627776)"), d24),
               "has too many elements (overflow)"});
  c.push_back({"shape_entry_too_large", npy_file(npy_dict("<f4", "False", "(99999999999999999999,)"), d24),
               "shape entry too large"});
  c.push_back({"missing_shape", npy_file("{'descr': '<f4', 'fortran_order': False, }", d24), "the header has no 'shape'"});
  c.push_back({"duplicate_key", npy_file("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (6,), }", d24),
               "duplicate key 'descr'"});
  c.push_back({"unknown_key", npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (6,), 'x': 1}", d24),
               "unexpected key 'x'"});
  c.push_back({"not_a_dict", npy_file("['descr', '<f4']", d24), "the header must start with '{'"});
  c.push_back({"unterminated_dict", npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (6,)", d24),
               "expected ',' or '}'"});
  c.push_back({"garbage_after_dict", npy_file(npy_dict("<f4", "False", "(6,)") + " x", d24), "unexpected characters after"});
  c.push_back({"mismatched_quotes", npy_file("{'descr: '<f4'}", d24), "expected ':' after key"});

  TempDir dir;
  for (const BrokenCase& k : c) {
    SCOPED_TRACE(k.name);
    const std::string path = dir.file(k.name + ".npy");
    write_bytes(path, k.bytes);
    EXPECT_ERROR_CONTAINING(io::read_npy_raw(path), k.expected);
    EXPECT_ERROR_CONTAINING(io::read_npy_raw(path), "npy: '" + path + "': ");
    EXPECT_ERROR_CONTAINING(io::parse_npy(k.bytes.data(), k.bytes.size(), k.name), k.expected);
  }
  // Every truncation of a valid file is an error.
  for (std::size_t len = 0; len < valid.size(); ++len)
    EXPECT_THROW(io::parse_npy(valid.data(), len), Error) << "truncated to " << len;
}

}  // namespace
}  // namespace tokenmix
