// libFuzzer target for the safetensors parser (include/tokenmix/io/safetensors.hpp): any byte string
// must either be rejected with tokenmix::Error or open as a file whose every tensor can be read.
// Any other exception, a crash, a sanitizer report or a broken invariant (trap) is a bug.
// Build and run with scripts/fuzz; seeds live in fuzz/corpus/.

#include <cstddef>
#include <cstdint>
#include <vector>

#include "tokenmix/config.hpp"
#include "tokenmix/io/safetensors.hpp"

namespace {

void require(bool invariant) {
  if (!invariant) __builtin_trap();
}

void exercise(const tokenmix::io::SafetensorsFile& file) {
  using namespace tokenmix::io;
  require(file.names().size() == file.size());
  std::size_t previous_end = 0;
  std::vector<float> buffer;
  for (const std::string& name : file.names()) {
    const TensorInfo& info = file.info(name);
    require(info.data_begin <= info.data_end && info.data_end <= file.data_size());
    require(info.data_begin >= previous_end);  // names() is in offset order, tensors never overlap
    previous_end = info.data_end;
    require(info.byte_size() == static_cast<std::size_t>(info.numel) * dtype_size(info.dtype));
    const ByteView raw = file.raw(name);
    unsigned checksum = 0;
    for (std::size_t i = 0; i < raw.size; ++i) checksum += raw.data[i];
    (void)checksum;
    if (!is_float_dtype(info.dtype)) continue;
    buffer.assign(static_cast<std::size_t>(info.numel), 0.0f);
    file.read_float_into(name, buffer.data(), info.numel);
    if (info.shape.size() == 1) (void)file.read_float<1>(name);
    if (info.shape.size() == 2) (void)file.read_float<2>(name);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const auto file = tokenmix::io::SafetensorsFile::from_bytes(std::vector<unsigned char>(data, data + size), "fuzz");
    exercise(file);
  } catch (const tokenmix::Error&) {
    // Rejected with a clear error: the expected outcome for most inputs.
  }
  return 0;
}
