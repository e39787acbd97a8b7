# Cross-compiling vlart for aarch64 Linux (Jetson Orin, Graviton, Raspberry Pi 5) on a Debian x86-64
# host with Debian's cross toolchain (g++-aarch64-linux-gnu). scripts/test-aarch64.sh sets it all up:
#
#   cmake -S . -B build-aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-aarch64-linux-gnu.cmake
#
# libc, libstdc++ and libgomp come from the cross toolchain (/usr/aarch64-linux-gnu). The arm64
# builds of the other dependencies (oneDNN, spdlog, fmt, GoogleTest, Eigen, nlohmann-json, stb) are
# Debian's arm64 .deb packages unpacked into a private folder, VLART_AARCH64_SYSROOT (default
# build-aarch64/sysroot), so nothing arm64 is installed into the host's package database.
# Tests run through qemu-user (CMAKE_CROSSCOMPILING_EMULATOR), so ctest and gtest_discover_tests work.

set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)

# The toolchain file is read again by every try_compile project: derive the default from this file's
# location (the same in both) rather than from a cache variable.
if(NOT VLART_AARCH64_SYSROOT)
  if(DEFINED ENV{VLART_AARCH64_SYSROOT})
    set(VLART_AARCH64_SYSROOT "$ENV{VLART_AARCH64_SYSROOT}")
  else()
    get_filename_component(VLART_AARCH64_SYSROOT "${CMAKE_CURRENT_LIST_DIR}/../build-aarch64/sysroot" ABSOLUTE)
  endif()
endif()
if(NOT EXISTS "${VLART_AARCH64_SYSROOT}/usr/include/dnnl.hpp")
  message(FATAL_ERROR "no arm64 dependencies at ${VLART_AARCH64_SYSROOT} (run scripts/test-aarch64.sh, "
                      "or set VLART_AARCH64_SYSROOT)")
endif()
set(_vlart_arm_libdir "${VLART_AARCH64_SYSROOT}/usr/lib/aarch64-linux-gnu")

# Libraries, headers and CMake package configs only from the cross prefix and the unpacked packages;
# programs (cmake, python) from the host.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu "${VLART_AARCH64_SYSROOT}")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# libspdlog.so needs libfmt.so.9 and so on: let the linker resolve those DT_NEEDED entries in the
# unpacked packages (it does not search -L folders for them).
set(CMAKE_EXE_LINKER_FLAGS_INIT "-Wl,-rpath-link,${_vlart_arm_libdir}")
set(CMAKE_SHARED_LINKER_FLAGS_INIT "-Wl,-rpath-link,${_vlart_arm_libdir}")
set(CMAKE_MODULE_LINKER_FLAGS_INIT "-Wl,-rpath-link,${_vlart_arm_libdir}")

# Run aarch64 executables (tests, test discovery) under qemu-user: the guest's dynamic loader and
# libc from the cross toolchain (-L), the unpacked libraries through LD_LIBRARY_PATH.
find_program(VLART_QEMU_AARCH64 NAMES qemu-aarch64 qemu-aarch64-static)
if(VLART_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR "${VLART_QEMU_AARCH64};-L;/usr/aarch64-linux-gnu;-E;LD_LIBRARY_PATH=${_vlart_arm_libdir}")
endif()
