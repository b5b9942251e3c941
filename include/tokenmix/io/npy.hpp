#pragma once
// NumPy .npy reader and float32 writer (format versions 1.0, 2.0, 3.0; spec/ecosystem.md §5).
//
//   Tensor<float, 3> x = io::read_npy_float<3>("x.npy");      // <f4 <f8 <f2 <i4 <i8 |u1 -> float
//   io::NpyArray a = io::read_npy_raw("bits.npy");            // descr + shape + raw bytes (also <u2)
//   io::write_npy("y.npy", y);                                // version 1.0, '<f4', like np.save
//
// Layout: magic "\x93NUMPY", version (major, minor), header length (u16 LE for 1.0, u32 LE for 2.0 and
// 3.0), a Python dict literal {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } padded with
// spaces and '\n', then the C-order little-endian data.
//
// Validation (a tokenmix::Error naming the file and the problem, never a crash): the magic, a known
// version, a header that fits in the file (at most 1 MiB), a dict with exactly the keys descr,
// fortran_order and shape (parsed strictly: shape is a tuple of non-negative integers, "(3)" is not
// a tuple), a supported little-endian descr, fortran_order False (True is rejected, not transposed),
// an element count whose byte size does not overflow, and a data section of exactly that size
// (truncated data and trailing bytes are both errors).
//
// The byte helpers (little-endian loads, binary16 conversion, file mapping) come from safetensors.hpp.

#include <array>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tokenmix/config.hpp"
#include "tokenmix/core/tensor.hpp"
#include "tokenmix/io/safetensors.hpp"

namespace tokenmix::io {

// A parsed .npy file: dtype string, shape and the raw little-endian C-order data.
struct NpyArray {
  std::string descr;         // "<f4", "<f8", "<f2", "<i4", "<i8", "|u1" or "<u2"
  std::vector<Index> shape;  // empty for a 0-d array
  Index numel = 1;
  std::size_t item_size = 4;
  int major_version = 1;
  std::vector<unsigned char> data;  // numel * item_size bytes
  std::string source;               // file name (or "<memory>") for error messages
};

inline constexpr std::size_t kNpyMaxHeaderSize = std::size_t{1} << 20;

namespace detail {

// Item size of a supported descr, 0 if unsupported.
inline std::size_t npy_item_size(std::string_view descr) noexcept {
  if (descr == "<f4" || descr == "<i4") return 4;
  if (descr == "<f8" || descr == "<i8") return 8;
  if (descr == "<f2" || descr == "<u2") return 2;
  if (descr == "|u1") return 1;
  return 0;
}

// Strict parser of the header dict literal numpy writes.
class NpyHeaderParser {
 public:
  NpyHeaderParser(std::string_view text, std::string prefix) : s_(text), prefix_(std::move(prefix)) {}

  void parse(NpyArray& out, bool& fortran_order) {
    bool have_descr = false, have_fortran = false, have_shape = false;
    skip_ws();
    expect('{', "the header must start with '{'");
    for (;;) {
      skip_ws();
      if (peek() == '}') {
        ++pos_;
        break;
      }
      const std::string key = parse_string("a quoted key");
      skip_ws();
      expect(':', "expected ':' after key '" + key + "'");
      skip_ws();
      if (key == "descr") {
        check(!have_descr, "duplicate key 'descr'");
        have_descr = true;
        if (peek() == '[') fail("descr is a list (a structured dtype), which is not supported");
        out.descr = parse_string("descr as a quoted string like '<f4'");
      } else if (key == "fortran_order") {
        check(!have_fortran, "duplicate key 'fortran_order'");
        have_fortran = true;
        if (s_.substr(pos_, 4) == "True") {
          fortran_order = true;
          pos_ += 4;
        } else if (s_.substr(pos_, 5) == "False") {
          fortran_order = false;
          pos_ += 5;
        } else {
          fail("fortran_order must be True or False");
        }
      } else if (key == "shape") {
        check(!have_shape, "duplicate key 'shape'");
        have_shape = true;
        parse_shape(out.shape);
      } else {
        fail("unexpected key '" + key + "' (expected descr, fortran_order and shape)");
      }
      skip_ws();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      skip_ws();
      expect('}', "expected ',' or '}' in the header dict");
      break;
    }
    skip_ws();
    check(pos_ == s_.size(), "unexpected characters after the header dict");
    check(have_descr, "the header has no 'descr'");
    check(have_fortran, "the header has no 'fortran_order'");
    check(have_shape, "the header has no 'shape'");
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    ::tokenmix::detail::raise(prefix_ + "invalid header: " + what + " (at header byte " + std::to_string(pos_) +
                              ")");
  }
  void check(bool cond, const std::string& what) const {
    if (!cond) fail(what);
  }
  char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  void skip_ws() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) ++pos_;
  }
  void expect(char c, const std::string& what) {
    if (peek() != c || pos_ >= s_.size()) fail(what);
    ++pos_;
  }
  std::string parse_string(const std::string& what) {
    const char quote = peek();
    if (quote != '\'' && quote != '"') fail("expected " + what);
    const std::size_t begin = ++pos_;
    while (pos_ < s_.size() && s_[pos_] != quote) {
      const auto c = static_cast<unsigned char>(s_[pos_]);
      if (c == '\\' || c < 0x20 || c >= 0x7f) fail("unsupported character in a string");
      ++pos_;
    }
    if (pos_ >= s_.size()) fail("unterminated string");
    return std::string(s_.substr(begin, pos_++ - begin));
  }
  void parse_shape(std::vector<Index>& shape) {
    expect('(', "shape must be a tuple like (2, 3)");
    skip_ws();
    if (peek() == ')') {
      ++pos_;
      return;
    }
    for (;;) {
      if (peek() < '0' || peek() > '9') fail("shape entries must be non-negative integers");
      if (peek() == '0' && pos_ + 1 < s_.size() && s_[pos_ + 1] >= '0' && s_[pos_ + 1] <= '9')
        fail("shape entry with a leading zero");
      Index v = 0;
      while (peek() >= '0' && peek() <= '9') {
        const Index digit = peek() - '0';
        if (v > (std::numeric_limits<Index>::max() - digit) / 10) fail("shape entry too large");
        v = v * 10 + digit;
        ++pos_;
      }
      if (peek() == 'L') ++pos_;  // Python 2 long suffix, written by old numpy
      shape.push_back(v);
      skip_ws();
      if (peek() == ',') {
        ++pos_;
        skip_ws();
        if (peek() == ')') {
          ++pos_;
          return;
        }
        continue;
      }
      if (peek() == ')') {
        if (shape.size() == 1) fail("shape (" + std::to_string(v) + ") is not a tuple, expected (" +
                                    std::to_string(v) + ",)");
        ++pos_;
        return;
      }
      fail("expected ',' or ')' in shape");
    }
  }

  std::string_view s_;
  std::string prefix_;
  std::size_t pos_ = 0;
};

}  // namespace detail

// Parses an in-memory .npy file (copies the data section). `label` names it in errors.
inline NpyArray parse_npy(const unsigned char* bytes, std::size_t size, const std::string& label = "<memory>") {
  const std::string prefix = "npy: '" + label + "': ";
  const auto check = [&prefix](bool cond, const std::string& what) {
    if (!cond) ::tokenmix::detail::raise(prefix + what);
  };
  static const unsigned char magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
  check(size >= 6 && std::memcmp(bytes, magic, 6) == 0, "bad magic: not a .npy file (expected \\x93NUMPY)");
  check(size >= 8, "truncated header: the file ends inside the version bytes");
  NpyArray out;
  out.source = label;
  const int major = bytes[6], minor = bytes[7];
  check((major == 1 || major == 2 || major == 3) && minor == 0,
        "unsupported format version " + std::to_string(major) + "." + std::to_string(minor) +
            " (supported: 1.0, 2.0, 3.0)");
  out.major_version = major;
  const std::size_t len_bytes = major == 1 ? 2 : 4;
  check(size >= 8 + len_bytes, "truncated header: the file ends inside the header length");
  const std::size_t header_len =
      major == 1 ? detail::load_u16_le(bytes + 8) : static_cast<std::size_t>(detail::load_u32_le(bytes + 8));
  const std::size_t header_begin = 8 + len_bytes;
  check(header_len <= kNpyMaxHeaderSize,
        "header length " + std::to_string(header_len) + " exceeds the limit of " + std::to_string(kNpyMaxHeaderSize));
  check(header_len <= size - header_begin, "truncated header: header length " + std::to_string(header_len) +
                                               " exceeds the " + std::to_string(size - header_begin) +
                                               " bytes left in the file");
  bool fortran_order = false;
  detail::NpyHeaderParser(std::string_view(reinterpret_cast<const char*>(bytes + header_begin), header_len), prefix)
      .parse(out, fortran_order);
  out.item_size = detail::npy_item_size(out.descr);
  check(out.descr.empty() || out.descr[0] != '>',
        "big-endian dtype '" + out.descr + "' is not supported (save little-endian data)");
  check(out.item_size != 0, "unsupported dtype '" + out.descr + "' (supported: <f4, <f8, <f2, <i4, <i8, |u1, <u2)");
  check(!fortran_order, "fortran_order True is not supported (save a C-contiguous array, e.g. np.ascontiguousarray)");

  out.numel = 1;
  bool empty = false;
  for (const Index d : out.shape) empty = empty || d == 0;
  if (empty) {
    out.numel = 0;
  } else {
    for (const Index d : out.shape) {
      check(out.numel <= std::numeric_limits<Index>::max() / d, "shape " + detail::format_dims(out.shape) +
                                                                    " has too many elements (overflow)");
      out.numel *= d;
    }
  }
  const auto item = static_cast<Index>(out.item_size);
  check(out.numel <= std::numeric_limits<Index>::max() / item,
        "shape " + detail::format_dims(out.shape) + " has too many bytes (overflow)");
  const auto expected = static_cast<std::uint64_t>(out.numel * item);
  const std::size_t data_begin = header_begin + header_len;
  const std::uint64_t available = size - data_begin;
  check(available >= expected, "truncated data: shape " + detail::format_dims(out.shape) + " of " + out.descr + " needs " +
                                   std::to_string(expected) + " bytes, the file has " + std::to_string(available));
  check(available == expected, "size mismatch: shape " + detail::format_dims(out.shape) + " of " + out.descr + " needs " +
                                   std::to_string(expected) + " bytes, but " + std::to_string(available - expected) +
                                   " trailing bytes follow");
  out.data.assign(bytes + data_begin, bytes + data_begin + static_cast<std::size_t>(expected));
  return out;
}

// Reads and validates a .npy file.
inline NpyArray read_npy_raw(const std::string& path) {
  const detail::FileBytes bytes = detail::FileBytes::open(path, "npy");
  return parse_npy(bytes.data(), bytes.size(), path);
}

// Converts the elements to float into dst[0, count); count must equal a.numel. '<u2' (often bf16
// bits, since numpy has no bf16) is rejected: decode it from a.data explicitly.
inline void npy_to_float(const NpyArray& a, float* dst, Index count) {
  const std::string prefix = "npy: '" + a.source + "': ";
  TOKENMIX_CHECK(count == a.numel, prefix, "array with shape ", detail::format_dims(a.shape), " has ", a.numel,
                 " elements, but the destination holds ", count);
  TOKENMIX_CHECK(a.data.size() == static_cast<std::size_t>(a.numel) * a.item_size, prefix,
                 "data holds ", a.data.size(), " bytes, expected ", a.numel, " x ", a.item_size);
  const unsigned char* p = a.data.data();
  const auto n = static_cast<std::size_t>(count);
  if (a.descr == "<f4") {
    detail::convert_to_float(Dtype::F32, p, dst, n);
  } else if (a.descr == "<f8") {
    detail::convert_to_float(Dtype::F64, p, dst, n);
  } else if (a.descr == "<f2") {
    detail::convert_to_float(Dtype::F16, p, dst, n);
  } else if (a.descr == "<i4") {
    for (std::size_t i = 0; i < n; ++i)
      dst[i] = static_cast<float>(static_cast<std::int32_t>(detail::load_u32_le(p + 4 * i)));
  } else if (a.descr == "<i8") {
    for (std::size_t i = 0; i < n; ++i)
      dst[i] = static_cast<float>(static_cast<std::int64_t>(detail::load_u64_le(p + 8 * i)));
  } else if (a.descr == "|u1") {
    for (std::size_t i = 0; i < n; ++i) dst[i] = static_cast<float>(p[i]);
  } else {
    TOKENMIX_CHECK(false, prefix, "dtype '", a.descr, "' has no float conversion",
                   a.descr == "<u2" ? " ('<u2' may hold bf16 bits: decode NpyArray::data explicitly)" : "");
  }
}

// A rank-R float tensor from a parsed array; throws if its rank is not R.
template <int R>
Tensor<float, R> npy_to_float_tensor(const NpyArray& a) {
  TOKENMIX_CHECK(a.shape.size() == static_cast<std::size_t>(R), "npy: '", a.source, "': array has shape ",
                 detail::format_dims(a.shape), " (rank ", a.shape.size(), "), expected rank ", R);
  Tensor<float, R> out = detail::tensor_of_shape<R>(a.shape);
  npy_to_float(a, out.data(), out.size());
  return out;
}

template <int R>
Tensor<float, R> read_npy_float(const std::string& path) {
  return npy_to_float_tensor<R>(read_npy_raw(path));
}

// ---- writer ---------------------------------------------------------------------------------------

// The bytes np.save (numpy 1.24) writes for a C-contiguous float32 array of this shape: version 1.0
// (2.0 if the header would not fit in 65535 bytes), keys sorted, the header padded with spaces (room
// for the first extent to grow to 21 digits) and '\n' so that the data starts at a multiple of 64.
inline std::vector<unsigned char> serialize_npy(const float* data, const std::vector<Index>& shape) {
  Index numel = 1;
  bool empty = false;
  for (const Index d : shape) {
    TOKENMIX_CHECK(d >= 0, "write_npy: negative extent in shape ", detail::format_dims(shape));
    empty = empty || d == 0;
  }
  if (empty) {
    numel = 0;
  } else {
    for (const Index d : shape) {
      TOKENMIX_CHECK(numel <= std::numeric_limits<Index>::max() / 4 / d, "write_npy: shape ",
                     detail::format_dims(shape), " is too large");
      numel *= d;
    }
  }
  TOKENMIX_CHECK(numel == 0 || data != nullptr, "write_npy: null data for shape ", detail::format_dims(shape));
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) header += ", ";
    header += std::to_string(shape[i]);
  }
  if (shape.size() == 1) header += ',';
  header += "), }";
  if (!shape.empty()) {
    const std::size_t digits = std::to_string(shape[0]).size();
    if (digits < 21) header.append(21 - digits, ' ');
  }
  int major = 1;
  std::size_t prefix_len = 10;
  std::size_t pad = 64 - (prefix_len + header.size() + 1) % 64;
  if (header.size() + 1 + pad > 65535) {
    major = 2;
    prefix_len = 12;
    pad = 64 - (prefix_len + header.size() + 1) % 64;
  }
  header.append(pad, ' ');
  header += '\n';
  std::vector<unsigned char> out(prefix_len + header.size() + static_cast<std::size_t>(numel) * 4);
  const unsigned char magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
  std::memcpy(out.data(), magic, 6);
  out[6] = static_cast<unsigned char>(major);
  out[7] = 0;
  if (major == 1) {
    out[8] = static_cast<unsigned char>(header.size() & 0xFF);
    out[9] = static_cast<unsigned char>(header.size() >> 8);
  } else {
    detail::store_u32_le(out.data() + 8, static_cast<std::uint32_t>(header.size()));
  }
  std::memcpy(out.data() + prefix_len, header.data(), header.size());
  unsigned char* p = out.data() + prefix_len + header.size();
  const auto n = static_cast<std::size_t>(numel);
  if (detail::host_is_little_endian()) {
    if (n) std::memcpy(p, data, n * 4);
  } else {
    for (std::size_t i = 0; i < n; ++i) detail::store_u32_le(p + 4 * i, detail::float_to_bits(data[i]));
  }
  return out;
}

inline void write_npy(const std::string& path, const float* data, const std::vector<Index>& shape) {
  const std::vector<unsigned char> bytes = serialize_npy(data, shape);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  TOKENMIX_CHECK(out.good(), "write_npy: cannot open '", path, "' for writing");
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  out.close();
  TOKENMIX_CHECK(!out.fail(), "write_npy: error while writing '", path, "'");
}

template <int R>
void write_npy(const std::string& path, const Tensor<float, R>& t) {
  std::vector<Index> shape;
  for (int i = 0; i < R; ++i) shape.push_back(t.dimension(i));
  write_npy(path, t.data(), shape);
}

}  // namespace tokenmix::io
