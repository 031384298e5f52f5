/* The kept copy of the 1.0 header still has exactly the frozen 1.0 layout (C, so that the two
 * definitions of each struct never meet in one C++ program). */
#include "abi_1_0_layout.inc"

#include "../fixtures/abi-1.0/kghost/plugin.h"

#define KG_EXACT(type, size) _Static_assert(sizeof(type) == (size), #type " size");
#define KG_AT(type, field, offset) \
  _Static_assert(offsetof(type, field) == (offset), #type "." #field);
KG_ABI_1_0_LAYOUT(KG_EXACT, KG_AT)
#define KG_SAME(name, value) _Static_assert((name) == (value), #name);
KG_ABI_1_0_CONSTANTS(KG_SAME)
_Static_assert(KG_ABI_MAJOR == 1 && KG_ABI_MINOR == 0, "the 1.0 copy says 1.0");
