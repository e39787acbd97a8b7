// Must compile: a models-layer source using the core layer below it (the control for the probe
// that must fail, so a broken include root cannot pass as "enforced").
#include "core/graph.h"
int vlart_layering_control() { return static_cast<int>(sizeof(vlart::Graph) > 0); }
