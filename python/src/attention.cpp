// Bindings of the attention family (filled in by its owner).

#include "common.hpp"

namespace tokenmix::python {

void register_attention(py::module_& m) { (void)m; }

}  // namespace tokenmix::python
