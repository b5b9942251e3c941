// The `tokenmix` Python module (imported as tokenmix._tokenmix by python/tokenmix/__init__.py):
// every public operator on NumPy float32 arrays. Conventions: src/common.hpp.

#include "common.hpp"

PYBIND11_MODULE(_tokenmix, m) {
  m.doc() = "tokenmix: token mixers (selective scan, SSD, sparse / neighborhood / linear attention, hybrid blocks) "
            "for the CPU, on NumPy float32 arrays";
  m.attr("__version__") = std::to_string(TOKENMIX_VERSION_MAJOR) + "." + std::to_string(TOKENMIX_VERSION_MINOR) + "." +
                          std::to_string(TOKENMIX_VERSION_PATCH);
  tokenmix::python::register_ssm(m);
  tokenmix::python::register_attention(m);
  tokenmix::python::register_linear(m);
  tokenmix::python::register_blocks(m);
  tokenmix::python::register_hybrid(m);
  tokenmix::python::register_mixers(m);
}
