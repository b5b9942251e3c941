#pragma once
// Minimal .npy reader for test fixtures: little-endian float32, C order, format versions 1-3.
// (Test-only; the library's own npy reader/writer with full validation belongs in include/tokenmix/io/.)

#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "tokenmix/core/tensor.hpp"

namespace tokenmix::testing {

struct NpyArray {
  std::vector<Index> shape;
  std::vector<float> data;
};

inline NpyArray read_npy(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("read_npy: cannot open " + path);
  char magic[8];
  f.read(magic, 8);
  if (!f || std::memcmp(magic, "\x93NUMPY", 6) != 0) throw std::runtime_error("read_npy: not an npy file: " + path);
  const int major = magic[6];
  std::uint32_t header_len = 0;
  if (major == 1) {
    unsigned char b[2];
    f.read(reinterpret_cast<char*>(b), 2);
    header_len = b[0] | (b[1] << 8);
  } else {
    unsigned char b[4];
    f.read(reinterpret_cast<char*>(b), 4);
    header_len = b[0] | (b[1] << 8) | (b[2] << 16) | (std::uint32_t(b[3]) << 24);
  }
  std::string header(header_len, '\0');
  f.read(header.data(), header_len);
  if (header.find("'descr': '<f4'") == std::string::npos || header.find("'fortran_order': False") == std::string::npos)
    throw std::runtime_error("read_npy: " + path + " is not little-endian float32 in C order: " + header);
  NpyArray a;
  const auto open = header.find('('), close = header.find(')');
  std::stringstream dims(header.substr(open + 1, close - open - 1));
  std::string item;
  Index count = 1;
  while (std::getline(dims, item, ',')) {
    if (item.find_first_not_of(' ') == std::string::npos) continue;
    a.shape.push_back(std::stoll(item));
    count *= a.shape.back();
  }
  a.data.resize(static_cast<std::size_t>(count));
  f.read(reinterpret_cast<char*>(a.data.data()), static_cast<std::streamsize>(count * sizeof(float)));
  if (!f) throw std::runtime_error("read_npy: truncated data in " + path);
  return a;
}

// Reads an .npy file into a rank-R tensor; throws if the rank differs.
template <int R>
Tensor<float, R> read_npy_tensor(const std::string& path) {
  const NpyArray a = read_npy(path);
  if (static_cast<int>(a.shape.size()) != R)
    throw std::runtime_error("read_npy_tensor: " + path + " has rank " + std::to_string(a.shape.size()));
  std::array<Index, R> dims{};
  for (int i = 0; i < R; ++i) dims[static_cast<std::size_t>(i)] = a.shape[static_cast<std::size_t>(i)];
  Tensor<float, R> t(dims);
  std::copy(a.data.begin(), a.data.end(), t.data());
  return t;
}

inline bool file_exists(const std::string& path) { return std::ifstream(path).good(); }

}  // namespace tokenmix::testing
