// Compiles include/molmo.h as C++ (STYLE.md §9: the header compiles as C11 and as C++).
#include "molmo.h"

int molmo_header_check_cpp(void);
int molmo_header_check_cpp(void) {
    molmo_error e{};
    return static_cast<int>(e.code);
}
