#pragma once
// safetensors reader and float32 writer (huggingface/safetensors format; spec/ecosystem.md §5).
//
//   io::SafetensorsFile file("model.safetensors");           // mmap (read() fallback), validated
//   for (const std::string& name : file.names()) ...         // in data-offset order
//   Tensor<float, 2> w = file.read_float<2>("backbone.layers.0.mixer.in_proj.weight");
//   io::write_safetensors("out.safetensors", {{"w", w}, {"b", bias}}, {{"format", "pt"}});
//
// Layout: u64 little-endian header length N, N bytes of UTF-8 JSON, then the data buffer. The header
// maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the
// buffer, end exclusive), plus an optional "__metadata__" string -> string map. Data is little-endian
// and row-major.
//
// Everything is validated when the file is opened, so a corrupt or truncated file is a
// tokenmix::Error naming the file and the problem, never a crash or an out-of-bounds read:
//   file size >= 8; N <= 100,000,000 (like the reference parser) and N <= file size - 8; the header
//   is a JSON object (strict parser, io/json.hpp; nesting <= 64, at most 2^22 JSON values, which bounds
//   the parser's memory) with no duplicate keys; "__metadata__", if present,
//   maps strings to strings; every other entry has exactly a dtype in {F64, F32, F16, BF16, I64, I32,
//   I16, I8, U8, BOOL}, a shape of non-negative integers, and data_offsets [begin, end] with
//   begin <= end <= data size and end - begin == numel * dtype size (overflow-checked); no two
//   tensors overlap. Unknown extra fields in a tensor entry are ignored, as the reference parser does.
//   Unlike the reference, gaps between tensors and bytes after the last tensor are tolerated.
// With mmap, the file must not be truncated by another process while it is open (that is SIGBUS).
//
// Conversions to float: F32 exact; F16 exact (subnormals, ±inf, NaN); BF16 exact (bits << 16);
// F64 rounded to nearest (out-of-range values become ±inf). Integer and BOOL tensors are reachable
// through raw().

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <cerrno>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#define TOKENMIX_IO_POSIX 1
#else
#define TOKENMIX_IO_POSIX 0
#endif

#include "tokenmix/config.hpp"
#include "tokenmix/core/tensor.hpp"
#include "tokenmix/io/json.hpp"

namespace tokenmix::io {

enum class Dtype : std::uint8_t { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

inline const char* dtype_name(Dtype d) noexcept {
  switch (d) {
    case Dtype::F64: return "F64";
    case Dtype::F32: return "F32";
    case Dtype::F16: return "F16";
    case Dtype::BF16: return "BF16";
    case Dtype::I64: return "I64";
    case Dtype::I32: return "I32";
    case Dtype::I16: return "I16";
    case Dtype::I8: return "I8";
    case Dtype::U8: return "U8";
    case Dtype::BOOL: return "BOOL";
  }
  return "?";
}

inline std::size_t dtype_size(Dtype d) noexcept {
  switch (d) {
    case Dtype::F64: case Dtype::I64: return 8;
    case Dtype::F32: case Dtype::I32: return 4;
    case Dtype::F16: case Dtype::BF16: case Dtype::I16: return 2;
    case Dtype::I8: case Dtype::U8: case Dtype::BOOL: return 1;
  }
  return 0;
}

inline bool is_float_dtype(Dtype d) noexcept {
  return d == Dtype::F64 || d == Dtype::F32 || d == Dtype::F16 || d == Dtype::BF16;
}

// Parses a safetensors dtype name; false if unsupported.
inline bool parse_dtype(std::string_view s, Dtype& out) noexcept {
  static constexpr Dtype all[] = {Dtype::F64, Dtype::F32, Dtype::F16, Dtype::BF16, Dtype::I64,
                                  Dtype::I32, Dtype::I16, Dtype::I8,  Dtype::U8,   Dtype::BOOL};
  for (const Dtype d : all) {
    if (s == dtype_name(d)) {
      out = d;
      return true;
    }
  }
  return false;
}

// The reference parser's limit on the JSON header length.
inline constexpr std::uint64_t kSafetensorsMaxHeaderSize = 100'000'000;

// One tensor of a safetensors file.
struct TensorInfo {
  std::string name;
  Dtype dtype = Dtype::F32;
  std::vector<Index> shape;  // row-major extents; empty for a 0-rank (scalar) tensor
  Index numel = 1;
  std::size_t data_begin = 0;  // byte offsets in the data buffer, end exclusive
  std::size_t data_end = 0;
  std::size_t byte_size() const noexcept { return data_end - data_begin; }
};

// A read-only span of bytes.
struct ByteView {
  const unsigned char* data = nullptr;
  std::size_t size = 0;
};

namespace detail {

inline std::string format_dims(const std::vector<Index>& dims) {
  std::ostringstream os;
  os << '[';
  for (std::size_t i = 0; i < dims.size(); ++i) os << (i ? ", " : "") << dims[i];
  os << ']';
  return os.str();
}

// An uninitialised rank-R tensor with the given extents (the caller checked the rank).
template <int R>
Tensor<float, R> tensor_of_shape(const std::vector<Index>& shape) {
  std::array<Index, R> dims{};
  for (int i = 0; i < R; ++i) dims[static_cast<std::size_t>(i)] = shape[static_cast<std::size_t>(i)];
  Tensor<float, R> out;
  out.resize(dims);
  return out;
}

inline std::uint16_t load_u16_le(const unsigned char* p) noexcept {
  return static_cast<std::uint16_t>(p[0] | (p[1] << 8));
}
inline std::uint32_t load_u32_le(const unsigned char* p) noexcept {
  return static_cast<std::uint32_t>(p[0]) | (static_cast<std::uint32_t>(p[1]) << 8) |
         (static_cast<std::uint32_t>(p[2]) << 16) | (static_cast<std::uint32_t>(p[3]) << 24);
}
inline std::uint64_t load_u64_le(const unsigned char* p) noexcept {
  return static_cast<std::uint64_t>(load_u32_le(p)) | (static_cast<std::uint64_t>(load_u32_le(p + 4)) << 32);
}
inline void store_u32_le(unsigned char* p, std::uint32_t v) noexcept {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}
inline void store_u64_le(unsigned char* p, std::uint64_t v) noexcept {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}
inline float bits_to_float(std::uint32_t bits) noexcept {
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}
inline std::uint32_t float_to_bits(float f) noexcept {
  std::uint32_t bits;
  std::memcpy(&bits, &f, sizeof f);
  return bits;
}

// IEEE binary16 -> binary32, exact for every input (subnormals, ±0, ±inf, NaN payloads).
inline float half_bits_to_float(std::uint16_t h) noexcept {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exponent = (h >> 10) & 0x1Fu;
  const std::uint32_t mantissa = h & 0x3FFu;
  if (exponent == 0x1F) return bits_to_float(sign | 0x7F800000u | (mantissa << 13));  // inf / NaN
  if (exponent != 0) return bits_to_float(sign | ((exponent + 112u) << 23) | (mantissa << 13));
  // Zero or subnormal: mantissa * 2^-24, exact in float.
  const float magnitude = static_cast<float>(mantissa) * 5.9604644775390625e-08f;
  return bits_to_float(sign | float_to_bits(magnitude));
}

inline float bf16_bits_to_float(std::uint16_t b) noexcept {
  return bits_to_float(static_cast<std::uint32_t>(b) << 16);
}

inline bool host_is_little_endian() noexcept {
  const std::uint32_t one = 1;
  unsigned char first;
  std::memcpy(&first, &one, 1);
  return first == 1;
}

// `count` little-endian elements of a float dtype at `src` (any alignment) to float.
inline void convert_to_float(Dtype dtype, const unsigned char* src, float* dst, std::size_t count) noexcept {
  switch (dtype) {
    case Dtype::F32:
      if (host_is_little_endian()) {
        if (count) std::memcpy(dst, src, count * 4);
      } else {
        for (std::size_t i = 0; i < count; ++i) dst[i] = bits_to_float(load_u32_le(src + 4 * i));
      }
      break;
    case Dtype::F16:
      for (std::size_t i = 0; i < count; ++i) dst[i] = half_bits_to_float(load_u16_le(src + 2 * i));
      break;
    case Dtype::BF16:
      for (std::size_t i = 0; i < count; ++i) dst[i] = bf16_bits_to_float(load_u16_le(src + 2 * i));
      break;
    case Dtype::F64:
      for (std::size_t i = 0; i < count; ++i) {
        const std::uint64_t bits = load_u64_le(src + 8 * i);
        double d;
        std::memcpy(&d, &bits, sizeof d);
        dst[i] = static_cast<float>(d);
      }
      break;
    default: break;  // callers check is_float_dtype
  }
}

// The bytes of a file: mmap'ed (POSIX) or read into memory. Move-only.
class FileBytes {
 public:
  FileBytes() = default;
  explicit FileBytes(std::vector<unsigned char> bytes) : owned_(std::move(bytes)) {
    data_ = owned_.data();
    size_ = owned_.size();
  }
  FileBytes(FileBytes&& other) noexcept { *this = std::move(other); }
  FileBytes& operator=(FileBytes&& other) noexcept {
    if (this != &other) {
      release();
      owned_ = std::move(other.owned_);
      mapped_ = other.mapped_;
      size_ = other.size_;
      data_ = mapped_ ? other.data_ : owned_.data();
      other.mapped_ = false;
      other.data_ = nullptr;
      other.size_ = 0;
    }
    return *this;
  }
  FileBytes(const FileBytes&) = delete;
  FileBytes& operator=(const FileBytes&) = delete;
  ~FileBytes() { release(); }

  // Maps `path` read-only; falls back to reading it when it is not a regular file or mmap fails.
  static FileBytes open(const std::string& path, const char* who) {
    FileBytes out;
#if TOKENMIX_IO_POSIX
    int fd;
    do {
      fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    TOKENMIX_CHECK(fd >= 0, who, ": cannot open '", path, "': ", std::generic_category().message(errno));
    struct stat st {};
    if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 &&
        static_cast<std::uint64_t>(st.st_size) <= std::numeric_limits<std::size_t>::max()) {
      const auto size = static_cast<std::size_t>(st.st_size);
      void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p != MAP_FAILED) {
        ::close(fd);
        out.mapped_ = true;
        out.data_ = static_cast<const unsigned char*>(p);
        out.size_ = size;
        return out;
      }
    }
    std::vector<unsigned char> bytes;
    unsigned char buf[65536];
    for (;;) {
      const ssize_t n = ::read(fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        const int err = errno;
        ::close(fd);
        TOKENMIX_CHECK(false, who, ": error while reading '", path, "': ", std::generic_category().message(err));
      }
      if (n == 0) break;
      bytes.insert(bytes.end(), buf, buf + n);
    }
    ::close(fd);
    return FileBytes(std::move(bytes));
#else
    std::ifstream in(path, std::ios::binary);
    TOKENMIX_CHECK(in.good(), who, ": cannot open '", path, "'");
    std::vector<unsigned char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    TOKENMIX_CHECK(!in.bad(), who, ": error while reading '", path, "'");
    return FileBytes(std::move(bytes));
#endif
  }

  const unsigned char* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  bool is_mapped() const noexcept { return mapped_; }

 private:
  void release() noexcept {
#if TOKENMIX_IO_POSIX
    if (mapped_) ::munmap(const_cast<unsigned char*>(data_), size_);
#endif
    mapped_ = false;
    data_ = nullptr;
    size_ = 0;
    owned_.clear();
  }

  std::vector<unsigned char> owned_;
  const unsigned char* data_ = nullptr;
  std::size_t size_ = 0;
  bool mapped_ = false;
};

}  // namespace detail

class SafetensorsFile {
 public:
  // Opens and validates `path` (mmap, or read() when mapping is impossible).
  explicit SafetensorsFile(const std::string& path) : label_(path) {
    bytes_ = detail::FileBytes::open(path, "safetensors");
    parse();
  }

  // Validates an in-memory file (fuzzing, tests, buffers from elsewhere). `label` names it in errors.
  static SafetensorsFile from_bytes(std::vector<unsigned char> bytes, std::string label = "<memory>") {
    SafetensorsFile f;
    f.label_ = std::move(label);
    f.bytes_ = detail::FileBytes(std::move(bytes));
    f.parse();
    return f;
  }

  SafetensorsFile(SafetensorsFile&&) noexcept = default;
  SafetensorsFile& operator=(SafetensorsFile&&) noexcept = default;

  // Tensor names in data-offset order (ties by name).
  const std::vector<std::string>& names() const noexcept { return names_; }
  std::size_t size() const noexcept { return tensors_.size(); }
  bool contains(std::string_view name) const { return index_.count(std::string(name)) != 0; }

  const TensorInfo& info(std::string_view name) const {
    const auto it = index_.find(std::string(name));
    TOKENMIX_CHECK(it != index_.end(), prefix(), "no tensor named '", name, "' (the file has ", tensors_.size(),
                   " tensors)");
    return tensors_[it->second];
  }

  // The "__metadata__" map (empty if absent).
  const std::map<std::string, std::string>& metadata() const noexcept { return metadata_; }

  // Raw little-endian bytes of a tensor (any alignment), valid while this object lives.
  ByteView raw(std::string_view name) const {
    const TensorInfo& t = info(name);
    return ByteView{data_ + t.data_begin, t.byte_size()};
  }

  // Size of the data buffer (file size - 8 - header length), and the file name used in errors.
  std::size_t data_size() const noexcept { return data_size_; }
  const std::string& label() const noexcept { return label_; }

  // Converts an F32 / F16 / BF16 / F64 tensor to float into dst[0, count); count must equal numel.
  void read_float_into(std::string_view name, float* dst, Index count) const {
    const TensorInfo& t = info(name);
    TOKENMIX_CHECK(is_float_dtype(t.dtype), prefix(), "tensor '", name, "' has dtype ", dtype_name(t.dtype),
                   ", read_float supports F32, F16, BF16 and F64");
    TOKENMIX_CHECK(count == t.numel, prefix(), "tensor '", name, "' with shape ", detail::format_dims(t.shape),
                   " has ", t.numel, " elements, but the destination holds ", count);
    TOKENMIX_CHECK(dst != nullptr || count == 0, prefix(), "read_float_into: null destination for tensor '", name,
                   "'");
    detail::convert_to_float(t.dtype, data_ + t.data_begin, dst, static_cast<std::size_t>(count));
  }

  // Reads a rank-R floating-point tensor as float; throws if its rank is not R.
  template <int R>
  Tensor<float, R> read_float(std::string_view name) const {
    static_assert(R >= 0, "rank must be non-negative");
    const TensorInfo& t = info(name);
    TOKENMIX_CHECK(t.shape.size() == static_cast<std::size_t>(R), prefix(), "tensor '", name, "' has shape ",
                   detail::format_dims(t.shape), " (rank ", t.shape.size(), "), expected rank ", R);
    Tensor<float, R> out = detail::tensor_of_shape<R>(t.shape);
    read_float_into(name, out.data(), out.size());
    return out;
  }

 private:
  SafetensorsFile() = default;

  std::string prefix() const { return "safetensors: '" + label_ + "': "; }

  template <class... Parts>
  void check(bool cond, const Parts&... parts) const {
    if (!cond) ::tokenmix::detail::raise(prefix() + ::tokenmix::detail::concat(parts...));
  }

  void parse() {
    const unsigned char* bytes = bytes_.data();
    const std::size_t file_size = bytes_.size();
    check(file_size >= 8, "file is ", file_size, " bytes, too small for the 8-byte header length (truncated?)");
    const std::uint64_t header_len = detail::load_u64_le(bytes);
    check(header_len <= kSafetensorsMaxHeaderSize, "header length ", header_len, " exceeds the limit of ",
          kSafetensorsMaxHeaderSize, " bytes (corrupt file?)");
    check(header_len <= file_size - 8, "header length ", header_len, " exceeds the file size ", file_size,
          " - 8 (truncated file?)");
    const auto n = static_cast<std::size_t>(header_len);
    data_ = bytes + 8 + n;
    data_size_ = file_size - 8 - n;

    JsonParseOptions options;
    options.max_depth = 64;
    options.max_values = std::size_t{1} << 22;  // ~400k tensors; bounds the DOM's memory (~1 GB)
    options.context = prefix() + "invalid JSON header";  // "... at byte K" counts from the header start
    const JsonValue header = parse_json(std::string_view(reinterpret_cast<const char*>(bytes + 8), n), options);
    check(header.is_object(), "header is ", JsonValue::kind_name(header.kind()), ", expected a JSON object");

    for (const auto& [key, value] : header.as_object()) {
      if (key == "__metadata__") {
        check(value.is_object(), "__metadata__ is ", JsonValue::kind_name(value.kind()),
              ", expected an object of strings");
        for (const auto& [mkey, mvalue] : value.as_object()) {
          check(mvalue.is_string(), "__metadata__ entry ", json_quote(mkey), " is ",
                JsonValue::kind_name(mvalue.kind()), ", expected a string");
          metadata_.emplace(mkey, mvalue.as_string());
        }
        continue;
      }
      tensors_.push_back(parse_entry(key, value));
    }

    // Non-overlap: sorted by (begin, end), each tensor starts at or after the end of the previous one.
    std::vector<std::size_t> order(tensors_.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [this](std::size_t a, std::size_t b) {
      const TensorInfo &x = tensors_[a], &y = tensors_[b];
      if (x.data_begin != y.data_begin) return x.data_begin < y.data_begin;
      if (x.data_end != y.data_end) return x.data_end < y.data_end;
      return x.name < y.name;
    });
    for (std::size_t i = 1; i < order.size(); ++i) {
      const TensorInfo &prev = tensors_[order[i - 1]], &cur = tensors_[order[i]];
      check(cur.data_begin >= prev.data_end, "tensors ", json_quote(prev.name), " (data_offsets [", prev.data_begin,
            ", ", prev.data_end, "]) and ", json_quote(cur.name), " (data_offsets [", cur.data_begin, ", ",
            cur.data_end, "]) overlap");
    }
    std::vector<TensorInfo> sorted;
    sorted.reserve(tensors_.size());
    for (const std::size_t i : order) sorted.push_back(std::move(tensors_[i]));
    tensors_ = std::move(sorted);
    names_.reserve(tensors_.size());
    for (std::size_t i = 0; i < tensors_.size(); ++i) {
      names_.push_back(tensors_[i].name);
      index_.emplace(tensors_[i].name, i);  // names are unique: the JSON parser rejects duplicate keys
    }
  }

  TensorInfo parse_entry(const std::string& name, const JsonValue& entry) const {
    TensorInfo t;
    t.name = name;
    const std::string what = "tensor " + json_quote(name);
    check(entry.is_object(), what, " is ", JsonValue::kind_name(entry.kind()),
          ", expected an object with dtype, shape and data_offsets");

    const JsonValue* dtype = entry.find("dtype");
    check(dtype != nullptr, what, " has no dtype");
    check(dtype->is_string(), what, " dtype is ", JsonValue::kind_name(dtype->kind()), ", expected a string");
    check(parse_dtype(dtype->as_string(), t.dtype), what, " has unsupported dtype ", json_quote(dtype->as_string()),
          " (supported: F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL)");

    const JsonValue* shape = entry.find("shape");
    check(shape != nullptr, what, " has no shape");
    check(shape->is_array(), what, " shape is ", JsonValue::kind_name(shape->kind()), ", expected an array");
    const Index max_index = std::numeric_limits<Index>::max();
    t.numel = 1;
    for (const JsonValue& d : shape->as_array()) {
      check(d.is_int() && d.as_int() >= 0, what, " has an invalid shape ", shape->dump(),
            ": extents must be non-negative integers");
      const Index extent = static_cast<Index>(d.as_int());
      t.shape.push_back(extent);
    }
    // Element count, overflow-checked; an empty tensor (some extent 0) has 0 elements whatever the rest.
    bool empty = false;
    for (const Index e : t.shape) empty = empty || e == 0;
    if (empty) {
      t.numel = 0;
    } else {
      for (const Index e : t.shape) {
        check(t.numel <= max_index / e, what, " shape ", shape->dump(), " has too many elements (overflow)");
        t.numel *= e;
      }
    }
    const auto elem = static_cast<Index>(dtype_size(t.dtype));
    check(t.numel <= max_index / elem, what, " shape ", shape->dump(), " of ", dtype_name(t.dtype),
          " has too many bytes (overflow)");
    const auto bytes = static_cast<std::uint64_t>(t.numel * elem);

    const JsonValue* offsets = entry.find("data_offsets");
    check(offsets != nullptr, what, " has no data_offsets");
    check(offsets->is_array() && offsets->size() == 2 && offsets->at(std::size_t{0}).is_int() &&
              offsets->at(std::size_t{1}).is_int() && offsets->at(std::size_t{0}).as_int() >= 0 &&
              offsets->at(std::size_t{1}).as_int() >= 0,
          what, " has invalid data_offsets ", offsets->dump(), ", expected [begin, end] of non-negative integers");
    const auto begin = static_cast<std::uint64_t>(offsets->at(std::size_t{0}).as_int());
    const auto end = static_cast<std::uint64_t>(offsets->at(std::size_t{1}).as_int());
    check(begin <= end, what, " has data_offsets [", begin, ", ", end, "] with end < begin");
    check(end <= data_size_, what, " has data_offsets [", begin, ", ", end, "] out of range: the data buffer has ",
          data_size_, " bytes (truncated file?)");
    check(end - begin == bytes, what, " has data_offsets [", begin, ", ", end, "] spanning ", end - begin,
          " bytes, but shape ", detail::format_dims(t.shape), " of ", dtype_name(t.dtype), " needs ", bytes,
          " bytes (size mismatch)");
    t.data_begin = static_cast<std::size_t>(begin);
    t.data_end = static_cast<std::size_t>(end);
    return t;
  }

  std::string label_;
  detail::FileBytes bytes_;
  const unsigned char* data_ = nullptr;  // start of the data buffer, inside bytes_
  std::size_t data_size_ = 0;
  std::vector<TensorInfo> tensors_;  // in data-offset order
  std::vector<std::string> names_;
  std::unordered_map<std::string, std::size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// ---- writer ---------------------------------------------------------------------------------------

// One float32 tensor to write: a name, a row-major shape and the caller's data (not copied; it must
// outlive the write call).
struct SafetensorsEntry {
  std::string name;
  std::vector<Index> shape;
  const float* data = nullptr;  // numel(shape) floats, row-major

  SafetensorsEntry(std::string name_, const float* data_, std::vector<Index> shape_)
      : name(std::move(name_)), shape(std::move(shape_)), data(data_) {}
  template <int R>
  SafetensorsEntry(std::string name_, const Tensor<float, R>& t) : name(std::move(name_)), data(t.data()) {
    for (int i = 0; i < R; ++i) shape.push_back(t.dimension(i));
  }
};

// The bytes of a safetensors file holding `tensors` as F32, laid out like the reference writer:
// tensors sorted by name and packed from offset 0, "__metadata__" first in the header when not
// empty, compact JSON padded with spaces to a multiple of 8 bytes.
inline std::vector<unsigned char> serialize_safetensors(const std::vector<SafetensorsEntry>& tensors,
                                                        const std::map<std::string, std::string>& metadata = {}) {
  std::vector<const SafetensorsEntry*> order;
  for (const SafetensorsEntry& e : tensors) order.push_back(&e);
  std::sort(order.begin(), order.end(), [](const auto* a, const auto* b) { return a->name < b->name; });
  std::string header = "{";
  if (!metadata.empty()) {
    header += "\"__metadata__\":{";
    bool first = true;
    for (const auto& [k, v] : metadata) {
      if (!first) header += ',';
      first = false;
      append_json_string(header, k);
      header += ':';
      append_json_string(header, v);
    }
    header += '}';
  }
  std::vector<Index> numels;
  std::uint64_t offset = 0;
  for (std::size_t i = 0; i < order.size(); ++i) {
    const SafetensorsEntry& e = *order[i];
    TOKENMIX_CHECK(e.name != "__metadata__", "write_safetensors: '__metadata__' is reserved, not a tensor name");
    TOKENMIX_CHECK(i == 0 || order[i - 1]->name != e.name, "write_safetensors: duplicate tensor name '", e.name, "'");
    Index numel = 1;
    bool empty = false;
    for (const Index d : e.shape) {
      TOKENMIX_CHECK(d >= 0, "write_safetensors: tensor '", e.name, "' has a negative extent in shape ",
                     detail::format_dims(e.shape));
      empty = empty || d == 0;
    }
    if (empty) {
      numel = 0;
    } else {
      for (const Index d : e.shape) {
        TOKENMIX_CHECK(numel <= std::numeric_limits<Index>::max() / 4 / d, "write_safetensors: tensor '", e.name,
                       "' shape ", detail::format_dims(e.shape), " is too large");
        numel *= d;
      }
    }
    TOKENMIX_CHECK(numel == 0 || e.data != nullptr, "write_safetensors: tensor '", e.name, "' has null data");
    numels.push_back(numel);
    const std::uint64_t end = offset + static_cast<std::uint64_t>(numel) * 4;
    if (header.size() > 1) header += ',';
    append_json_string(header, e.name);
    header += ":{\"dtype\":\"F32\",\"shape\":[";
    for (std::size_t k = 0; k < e.shape.size(); ++k) {
      if (k) header += ',';
      header += std::to_string(e.shape[k]);
    }
    header += "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(end) + "]}";
    offset = end;
  }
  header += '}';
  header.append((8 - header.size() % 8) % 8, ' ');
  TOKENMIX_CHECK(header.size() <= kSafetensorsMaxHeaderSize, "write_safetensors: header of ", header.size(),
                 " bytes exceeds the limit of ", kSafetensorsMaxHeaderSize);
  std::vector<unsigned char> out(8 + header.size() + static_cast<std::size_t>(offset));
  detail::store_u64_le(out.data(), header.size());
  std::memcpy(out.data() + 8, header.data(), header.size());
  unsigned char* p = out.data() + 8 + header.size();
  for (std::size_t i = 0; i < order.size(); ++i) {
    const float* src = order[i]->data;
    const auto n = static_cast<std::size_t>(numels[i]);
    if (detail::host_is_little_endian()) {
      if (n) std::memcpy(p, src, n * 4);
    } else {
      for (std::size_t k = 0; k < n; ++k) detail::store_u32_le(p + 4 * k, detail::float_to_bits(src[k]));
    }
    p += n * 4;
  }
  return out;
}

// Writes `tensors` as F32 to `path` (see serialize_safetensors for the layout).
inline void write_safetensors(const std::string& path, const std::vector<SafetensorsEntry>& tensors,
                              const std::map<std::string, std::string>& metadata = {}) {
  const std::vector<unsigned char> bytes = serialize_safetensors(tensors, metadata);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  TOKENMIX_CHECK(out.good(), "write_safetensors: cannot open '", path, "' for writing");
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  out.close();
  TOKENMIX_CHECK(!out.fail(), "write_safetensors: error while writing '", path, "'");
}

}  // namespace tokenmix::io
