// Greedy generation with a Mamba language model on the CPU (blocks::MambaLM).
//
//   mamba_generate --model DIR --prompt-ids 3,14,15 --max-new-tokens N [--threads T]
//                  [--dump-logits FILE.npy]
//   mamba_generate [--prompt-length L] [--layers n] ...       random mamba-130m-sized model
//
// DIR is a transformers save_pretrained directory of a MambaForCausalLM or Mamba2ForCausalLM
// (config.json + model.safetensors, e.g. state-spaces/mamba-130m-hf; the model type is read from
// config.json). Without --model the program builds a randomly
// initialised model with mamba-130m's shapes (d_model 768, 24 layers, vocab 50280; --layers changes
// the depth), so the speed can be seen with nothing downloaded; without --prompt-ids the prompt is
// --prompt-length (default 512) deterministic ids. Prints the new ids, then prefill and decode
// speed, and the peak resident memory while generating (the process's high-water mark is reset
// after loading, so the number is what prefill + decode need: the weights plus their working set).
// --dump-logits writes the float32 logits of the prompt positions, shape [L, vocab] (.npy).

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "tokenmix/blocks/mamba_lm.hpp"
#include "tokenmix/core/threading.hpp"
#include "tokenmix/io/npy.hpp"

namespace {

using namespace tokenmix;

struct Options {
  std::string model_dir;
  std::vector<std::int64_t> prompt;
  Index prompt_length = 512;
  Index max_new_tokens = 32;
  Index layers = 24;
  int threads = 1;
  std::string dump_logits;
};

[[noreturn]] void usage(const std::string& problem) {
  std::cerr << "mamba_generate: " << problem << "\n"
            << "usage: mamba_generate [--model DIR] [--prompt-ids 3,14,15 | --prompt-length L] [--max-new-tokens N]\n"
            << "                      [--threads T] [--dump-logits FILE.npy] [--layers n (random model only)]\n";
  std::exit(2);
}

long parse_long(const std::string& flag, const std::string& text) {
  char* end = nullptr;
  const long v = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0') usage(flag + " expects an integer, got '" + text + "'");
  return v;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") usage("greedy generation with a Mamba LM");
    if (i + 1 >= argc) usage(flag + " needs a value");
    const std::string value = argv[++i];
    if (flag == "--model") {
      o.model_dir = value;
    } else if (flag == "--prompt-ids") {
      std::stringstream s(value);
      for (std::string id; std::getline(s, id, ',');) o.prompt.push_back(parse_long(flag, id));
      if (o.prompt.empty()) usage("--prompt-ids is empty");
    } else if (flag == "--prompt-length") {
      o.prompt_length = parse_long(flag, value);
    } else if (flag == "--max-new-tokens") {
      o.max_new_tokens = parse_long(flag, value);
    } else if (flag == "--threads") {
      o.threads = static_cast<int>(parse_long(flag, value));
    } else if (flag == "--layers") {
      o.layers = parse_long(flag, value);
    } else if (flag == "--dump-logits") {
      o.dump_logits = value;
    } else {
      usage("unknown option " + flag);
    }
  }
  if (o.max_new_tokens < 1) usage("--max-new-tokens must be >= 1");
  if (o.threads < 1) usage("--threads must be >= 1");
  if (o.prompt.empty() && o.prompt_length < 1) usage("--prompt-length must be >= 1");
  return o;
}

// VmHWM (peak resident set) of this process in MiB, or -1 where /proc is unavailable.
double peak_resident_mib() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("VmHWM:", 0) == 0) return std::atof(line.c_str() + 6) / 1024.0;  // kB
  return -1;
}

// Resets VmHWM to the current RSS (Linux: "5" > /proc/self/clear_refs). False where not allowed.
bool reset_peak_resident() {
  std::ofstream clear("/proc/self/clear_refs");
  clear << "5";
  clear.flush();
  return clear.good();
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int run(const Options& o) {
  std::unique_ptr<ThreadPool> pool = o.threads > 1 ? std::make_unique<ThreadPool>(o.threads) : nullptr;
  const Eigen::ThreadPoolDevice* device = pool ? pool->device() : nullptr;

  const auto load_start = std::chrono::steady_clock::now();
  blocks::MambaLMConfig config = blocks::MambaLMConfig::mamba_130m();
  config.num_hidden_layers = o.layers;
  const blocks::MambaLM lm = o.model_dir.empty() ? blocks::MambaLM::random(config, 2024, device)
                                                  : blocks::MambaLM::load(o.model_dir, device);
  const blocks::MambaLMConfig& c = lm.config();
  const double weights_mib = double(lm.parameter_bytes()) / double(1 << 20);
  std::printf("model: %s (%s, d_model %ld, %ld layers, vocab %ld), weights %.1f MiB, loaded in %.2f s, %d thread%s\n",
              o.model_dir.empty() ? "random mamba-130m-sized" : o.model_dir.c_str(), c.model_type.c_str(), long(c.hidden_size),
              long(c.num_hidden_layers), long(c.vocab_size), weights_mib, seconds_since(load_start), o.threads,
              o.threads > 1 ? "s" : "");

  std::vector<std::int64_t> prompt = o.prompt;
  if (prompt.empty())
    for (Index i = 0; i < o.prompt_length; ++i) prompt.push_back((i * 7919 + 11) % c.vocab_size);
  if (!o.prompt.empty() && o.prompt.size() <= 16) {
    std::printf("prompt:");
    for (const std::int64_t id : prompt) std::printf(" %lld", static_cast<long long>(id));
    std::printf("\n");
  } else {
    std::printf("prompt: %zu tokens\n", prompt.size());
  }

  const bool peak_reset = reset_peak_resident();
  blocks::MambaLMCache cache = lm.new_cache(1);
  const auto prefill_start = std::chrono::steady_clock::now();
  const auto which = o.dump_logits.empty() ? blocks::LogitsFor::last_token : blocks::LogitsFor::all_tokens;
  const Tensor<float, 3> prompt_logits = lm.forward(prompt, &cache, which, device);  // [1, L or 1, V]
  const double prefill_s = seconds_since(prefill_start);

  const Index V = c.vocab_size;
  std::vector<std::int64_t> generated = {
      blocks::MambaLM::argmax(prompt_logits.data() + (prompt_logits.dimension(1) - 1) * V, V)};
  const auto decode_start = std::chrono::steady_clock::now();
  while (static_cast<Index>(generated.size()) < o.max_new_tokens &&
         !(c.eos_token_id && generated.back() == *c.eos_token_id)) {
    const Tensor<float, 2> logits = lm.step(&generated.back(), 1, cache, device);  // [1, V]
    generated.push_back(blocks::MambaLM::argmax(logits.data(), V));
  }
  const double decode_s = seconds_since(decode_start);
  const double peak_mib = peak_resident_mib();

  std::printf("generated:");
  for (const std::int64_t id : generated) std::printf(" %lld", static_cast<long long>(id));
  std::printf("\n");
  std::printf("prefill: %.1f tokens/s (%zu tokens in %.1f ms)\n", double(prompt.size()) / prefill_s, prompt.size(),
              prefill_s * 1e3);
  const std::size_t steps = generated.size() - 1;  // the first new token comes from the prefill
  if (steps > 0)
    std::printf("decode: %.1f tokens/s (%.2f ms/token over %zu steps)\n", double(steps) / decode_s,
                decode_s * 1e3 / double(steps), steps);
  else
    std::printf("decode: - (one new token: it comes from the prefill)\n");
  std::printf("peak memory: %.1f MiB (%s; weights %.1f MiB)\n", peak_mib,
              peak_reset ? "while generating" : "whole process: /proc/self/clear_refs not writable", weights_mib);

  if (!o.dump_logits.empty()) {
    io::write_npy(o.dump_logits, prompt_logits.data(), {prompt_logits.dimension(1), V});
    std::printf("logits: [%ld, %ld] float32 written to %s\n", long(prompt_logits.dimension(1)), long(V),
                o.dump_logits.c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  try {
    return run(o);
  } catch (const tokenmix::Error& e) {
    std::cerr << "mamba_generate: " << e.what() << "\n";
    return 1;
  }
}
