// A2Mamba-Nano (Lou, Fu, Yu, 2025) as a feature extractor on the CPU: builds the backbone from a
// checkpoint with the released state-dict names (a safetensors file converted from
// a2mamba_nano.pth, e.g. with `safetensors.torch.save_file(torch.load(p)["state_dict"], out)`), or
// from random weights with the released shapes, runs a generated 224x224 image through it, and
// prints each stage's feature shape, the images/s and where the time goes (per operator).
//
//   a2mamba_features [--checkpoint model.safetensors] [--size 224] [--batch 1] [--threads 1]
//                    [--repeats 3]

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "tokenmix/tokenmix.hpp"

using namespace tokenmix;

namespace {

const char* arg_string(int argc, char** argv, const char* name, const char* fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], name) == 0) return argv[i + 1];
  return fallback;
}
long arg_value(int argc, char** argv, const char* name, long fallback) {
  const char* v = arg_string(argc, argv, name, nullptr);
  return v ? std::atol(v) : fallback;
}

// A smooth synthetic RGB image, normalised with ImageNet's mean and std as the released eval
// transform does: [B, size, size, 3], channels last.
Tensor<float, 4> generated_image(Index batch, Index size) {
  const float mean[3] = {0.485f, 0.456f, 0.406f}, stdev[3] = {0.229f, 0.224f, 0.225f};
  Tensor<float, 4> image(batch, size, size, 3);
  for (Index b = 0; b < batch; ++b)
    for (Index i = 0; i < size; ++i)
      for (Index j = 0; j < size; ++j)
        for (Index c = 0; c < 3; ++c) {
          const float u = float(i) / float(size), v = float(j) / float(size);
          const float pixel = 0.5f + 0.5f * std::sin(6.0f * u * float(c + 1) + 4.0f * v + float(b));
          image(b, i, j, c) = (pixel - mean[c]) / stdev[c];
        }
  return image;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Index size = arg_value(argc, argv, "--size", 224), batch = arg_value(argc, argv, "--batch", 1);
    const int threads = int(arg_value(argc, argv, "--threads", 1)), repeats = int(arg_value(argc, argv, "--repeats", 3));
    const char* path = arg_string(argc, argv, "--checkpoint", nullptr);
    const blocks::A2MambaConfig config = blocks::A2MambaConfig::nano();
    ThreadPool pool(std::max(threads, 1));
    const Eigen::ThreadPoolDevice* device = threads > 1 ? pool.device() : nullptr;

    const io::SafetensorsFile checkpoint = path ? io::SafetensorsFile(path) : blocks::a2mamba_random_checkpoint(config, 7);
    blocks::A2MambaBackbone net(config, checkpoint, device);
    std::printf("A2Mamba-Nano (%s), %ld x %ld image, batch %ld, %d thread%s\n", path ? path : "random weights",
                long(size), long(size), long(batch), threads, threads == 1 ? "" : "s");

    const Tensor<float, 4> image = generated_image(batch, size);
    std::array<Tensor<float, 4>, 4> features;
    double best = 1e300;
    for (int r = 0; r < std::max(repeats, 1); ++r) {
      const auto start = std::chrono::steady_clock::now();
      features = net.features(image);
      best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    for (int s = 0; s < 4; ++s) {
      const Tensor<float, 4>& f = features[std::size_t(s)];
      double sq = 0;
      for (Index i = 0; i < f.size(); ++i) sq += double(f.data()[i]) * f.data()[i];
      std::printf("stage %d features: [%ld, %ld, %ld, %ld]  rms %.4f\n", s + 1, long(f.dimension(0)), long(f.dimension(1)),
                  long(f.dimension(2)), long(f.dimension(3)), std::sqrt(sq / double(f.size())));
    }
    std::printf("forward: %.2f ms  (%.1f images/s, best of %d)\n", best * 1e3, double(batch) / best, std::max(repeats, 1));

    OpProfile profile;  // one more forward, timing every operator call
    net.set_profile(&profile);
    net.features(image);
    std::vector<std::pair<double, std::string>> ops;
    for (const auto& [op, seconds] : profile.seconds()) ops.emplace_back(seconds, op);
    std::sort(ops.rbegin(), ops.rend());
    std::printf("time per operator:\n");
    for (const auto& [seconds, op] : ops)
      std::printf("  %-22s %7.2f ms  %5.1f%%\n", op.c_str(), seconds * 1e3, 100.0 * seconds / profile.total());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "a2mamba_features: %s\n", e.what());
    return 1;
  }
}
