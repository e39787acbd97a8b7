# The Python package (python/vlart, extension target _vlart) against the C++ library: bit-identical
# actions, a LeRobot pi0 fixture, zero-copy frames, errors, GIL release (tests/python/test_python_package.py).
# Runs with the interpreter the extension was built for (.venv-client from scripts/setup.sh).
if(TARGET _vlart AND TARGET vlart_cli)
  add_test(NAME python_package
    COMMAND ${Python_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/python/test_python_package.py
            --vlart $<TARGET_FILE:vlart_cli> --pythonpath ${CMAKE_BINARY_DIR}/python --repo ${PROJECT_SOURCE_DIR})
  set_tests_properties(python_package PROPERTIES LABELS "python" TIMEOUT 300)
else()
  add_test(NAME python_package COMMAND sh -c "echo 'SKIPPED: the Python extension was not built (no Python with nanobind; bash scripts/setup.sh sets up .venv-client)'; exit 77")
  set_tests_properties(python_package PROPERTIES LABELS "python" SKIP_RETURN_CODE 77)
endif()
