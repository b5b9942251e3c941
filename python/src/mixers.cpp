// Bindings of the Mamba mixers (blocks::MambaMixer, blocks::Mamba2Mixer) as classes.

#include "common.hpp"

namespace tokenmix::python {

void register_mixers(py::module_& m) { (void)m; }

}  // namespace tokenmix::python
