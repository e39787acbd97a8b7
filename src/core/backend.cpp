#include "core/backend.h"

#include <cstring>

#include "vlart/error.h"

namespace vlart {

void Backend::copy(const Tensor& src, Tensor& dst) {
  VLART_CHECK(src.device().is_cpu() && dst.device().is_cpu(), UnsupportedError, "backend ", name(),
              " cannot copy ", src.str(), " to ", dst.str());
  VLART_CHECK(src.nbytes() == dst.nbytes(), InvalidArgument, "copy: ", src.str(), " to ", dst.str());
  std::memcpy(dst.raw(), src.raw(), src.nbytes());
}

#ifndef VLART_WITH_CUDA
std::unique_ptr<Backend> make_cuda_backend(const CudaBackendOptions&, std::string* why) {
  if (why) *why = "vlart was built without CUDA (VLART_WITH_CUDA=OFF or no toolkit found)";
  return nullptr;
}
#endif

}  // namespace vlart
