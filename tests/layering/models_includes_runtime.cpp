// Must NOT compile: a models-layer source reaching up into the runtime layer. tests/layering.cmake
// builds it with the models layer's include root and expects the build to fail.
#include "runtime/compute_thread.h"
int vlart_layering_probe() { return 0; }
