# Warnings, sanitizers and per-target flags shared by every vlart target.

function(vlart_set_warnings target)
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra>
    $<$<AND:$<COMPILE_LANGUAGE:CXX>,$<BOOL:${VLART_WERROR}>>:-Werror>
    # Eigen's AVX-512 headers trip this false positive with GCC.
    $<$<AND:$<COMPILE_LANGUAGE:CXX>,$<CXX_COMPILER_ID:GNU>>:-Wno-maybe-uninitialized>
    # clang reports `omp simd` loops it declines to vectorise (e.g. under ASan): not a defect.
    $<$<AND:$<COMPILE_LANGUAGE:CXX>,$<CXX_COMPILER_ID:Clang>>:-Wno-pass-failed>)
endfunction()

if(VLART_SANITIZE AND VLART_TSAN)
  message(FATAL_ERROR "VLART_SANITIZE (ASan) and VLART_TSAN cannot be combined: use two build trees")
endif()
if(VLART_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
endif()
if(VLART_TSAN)
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer)
  add_link_options(-fsanitize=thread)
endif()

# Baseline ISA for code the compiler vectorises (hand-written kernels pick AVX-512 paths at run time
# regardless). x86-64-v3 = AVX2 + FMA + F16C, present on every x86 robot CPU since ~2013; set
# VLART_CPU_BASELINE="" to use the compiler default, or "native" for the build machine.
if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64")
  set(VLART_CPU_BASELINE "x86-64-v3" CACHE STRING "-march value for vlart's own code (empty: compiler default)")
else()
  set(VLART_CPU_BASELINE "" CACHE STRING "-march value for vlart's own code (empty: compiler default)")
endif()
if(VLART_CPU_BASELINE)
  add_compile_options($<$<COMPILE_LANGUAGE:CXX>:-march=${VLART_CPU_BASELINE}>)
endif()
