// Bindings of the linear family (filled in by its owner).

#include "common.hpp"

namespace tokenmix::python {

void register_linear(py::module_& m) { (void)m; }

}  // namespace tokenmix::python
