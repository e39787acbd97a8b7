# The Python extension vlart._vlart (python/src/vlart_module.cpp) through nanobind.
# Python: Python_EXECUTABLE if given, else .venv-client/bin/python (scripts/setup.sh makes it, with nanobind),
# else the python3 on PATH. nanobind is located through that interpreter (pip's nanobind ships its CMake
# package). The module and the package's .py files land in ${CMAKE_BINARY_DIR}/python/vlart, so
# `PYTHONPATH=build/python` imports the in-tree build; `pip install .` (pyproject.toml,
# scikit-build-core) builds and installs the same target.
if(NOT Python_EXECUTABLE AND EXISTS ${PROJECT_SOURCE_DIR}/.venv-client/bin/python)
  set(Python_EXECUTABLE ${PROJECT_SOURCE_DIR}/.venv-client/bin/python)
endif()
find_package(Python 3.9 COMPONENTS Interpreter Development.Module QUIET)
set(_nb_dir "")
if(Python_FOUND)
  execute_process(COMMAND ${Python_EXECUTABLE} -m nanobind --cmake_dir
                  OUTPUT_VARIABLE _nb_dir OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE _nb_rc ERROR_QUIET)
  if(NOT _nb_rc EQUAL 0)
    set(_nb_dir "")
  endif()
endif()
if(_nb_dir)
  list(APPEND CMAKE_PREFIX_PATH ${_nb_dir})
  find_package(nanobind CONFIG QUIET)
endif()
if(NOT nanobind_FOUND)
  if(VLART_BUILD_PYTHON STREQUAL "ON")
    message(FATAL_ERROR "VLART_BUILD_PYTHON=ON: no nanobind for ${Python_EXECUTABLE} (pip install nanobind)")
  endif()
  message(STATUS "vlart Python extension: not built (no Python with nanobind; scripts/setup.sh sets up .venv-client)")
  return()
endif()

set(VLART_PYTHON_ENABLED ON)
nanobind_add_module(_vlart NB_STATIC ${PROJECT_SOURCE_DIR}/python/src/vlart_module.cpp)
target_link_libraries(_vlart PRIVATE vlart)
vlart_set_warnings(_vlart)
set(VLART_PYTHON_DIR ${CMAKE_BINARY_DIR}/python)
set_target_properties(_vlart PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${VLART_PYTHON_DIR}/vlart)
file(GLOB _vl_py CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/python/vlart/*)
foreach(f ${_vl_py})
  get_filename_component(n ${f} NAME)
  configure_file(${f} ${VLART_PYTHON_DIR}/vlart/${n} COPYONLY)
endforeach()
install(TARGETS _vlart LIBRARY DESTINATION vlart)
message(STATUS "vlart Python extension: ${Python_EXECUTABLE} (Python ${Python_VERSION}), nanobind ${nanobind_VERSION}")
