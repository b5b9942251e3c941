// Bindings of the hybrid family (filled in by its owner).

#include "common.hpp"

namespace tokenmix::python {

void register_hybrid(py::module_& m) { (void)m; }

}  // namespace tokenmix::python
