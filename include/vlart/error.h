// vlart error types.
//
// Library code throws these inside C++ and never aborts the process. Every message names the
// problem concretely (file, tensor, field, expected vs got). The C ABI catches them and maps
// `code()` onto documented status codes.
#pragma once

#include <stdexcept>
#include <string>

namespace vlart {

enum class ErrorCode : int {
  kOk = 0,
  kInvalidArgument = 1,  // a caller passed a bad value (shape, dtype, option, observation)
  kFormat = 2,           // a file on disk is malformed (safetensors, config.json, tokenizer)
  kNotFound = 3,         // a file, tensor or key that must exist does not
  kUnsupported = 4,      // valid request that this build/backend cannot do
  kBackend = 5,          // a backend library (oneDNN, CUDA, cuBLAS) reported a failure
  kOutOfMemory = 6,
  kIo = 7,               // open/read/mmap failed
  kInternal = 8,         // an invariant of vlart itself broke (a bug)
  kAllocationInRun = 9,  // the debug switch caught a heap allocation inside Executor::run
};

const char* error_code_name(ErrorCode code);

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& what) : std::runtime_error(what), code_(code) {}
  ErrorCode code() const noexcept { return code_; }

 private:
  ErrorCode code_;
};

#define VLART_DEFINE_ERROR(Name, Code) \
  class Name : public Error {          \
   public:                             \
    explicit Name(const std::string& what) : Error(ErrorCode::Code, what) {} \
  };

VLART_DEFINE_ERROR(InvalidArgument, kInvalidArgument)
VLART_DEFINE_ERROR(FormatError, kFormat)
VLART_DEFINE_ERROR(NotFoundError, kNotFound)
VLART_DEFINE_ERROR(UnsupportedError, kUnsupported)
VLART_DEFINE_ERROR(BackendError, kBackend)
VLART_DEFINE_ERROR(OutOfMemoryError, kOutOfMemory)
VLART_DEFINE_ERROR(IoError, kIo)
VLART_DEFINE_ERROR(InternalError, kInternal)
#undef VLART_DEFINE_ERROR

namespace detail {
// Builds "msg" from stream-style pieces; used by VLART_CHECK below.
template <typename... Args>
std::string concat(const Args&... args);
}  // namespace detail

}  // namespace vlart

#include <sstream>

namespace vlart::detail {
template <typename... Args>
std::string concat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace vlart::detail

// VLART_CHECK(cond, ErrorType, pieces...) throws ErrorType(concat(pieces...)) when cond is false.
#define VLART_CHECK(cond, ErrorType, ...)                              \
  do {                                                                 \
    if (!(cond)) throw ::vlart::ErrorType(::vlart::detail::concat(__VA_ARGS__)); \
  } while (0)
