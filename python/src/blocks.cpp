// Bindings of the blocks family (filled in by its owner).

#include "common.hpp"

namespace tokenmix::python {

void register_blocks(py::module_& m) { (void)m; }

}  // namespace tokenmix::python
