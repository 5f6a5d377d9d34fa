#include "compressor/version.h"

namespace ep {
std::string_view edgepack_version() {
    return EDGEPACK_VERSION;
}
}  // namespace ep
