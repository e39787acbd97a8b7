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

# vlart replicas under Ray Serve (examples/ray_serve): runs when ray[serve] is installed in the
# extension's Python (VLART_SETUP_RAY=1 bash scripts/setup.sh adds it to .venv-client); skipped, saying
# so, otherwise (Ray is a 100+ MB install and a local Ray start, kept out of the default CI run).
if(TARGET _vlart)
  add_test(NAME python_ray_serve
    COMMAND sh -c "if '${Python_EXECUTABLE}' -c 'import ray.serve' 2>/dev/null; then exec '${Python_EXECUTABLE}' '${CMAKE_CURRENT_SOURCE_DIR}/python/test_ray_serve.py' --pythonpath '${CMAKE_BINARY_DIR}/python' --repo '${PROJECT_SOURCE_DIR}'; else echo 'SKIPPED: ray[serve] not installed for ${Python_EXECUTABLE} (VLART_SETUP_RAY=1 bash scripts/setup.sh)'; exit 77; fi")
  set_tests_properties(python_ray_serve PROPERTIES LABELS "python;ray" TIMEOUT 600 SKIP_RETURN_CODE 77 RUN_SERIAL TRUE)
endif()
