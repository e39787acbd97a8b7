# Suites that also run under ThreadSanitizer (`ctest -L tsan` in a VLART_TSAN build): the serving
# layer, whose threads (clients, scheduler worker, chunk-runner inference thread, controller, cache
# stats readers and clearers, telemetry loggers) share
# queues, promises, the triple buffer and counters. `vlart_tsan_targets` builds just these.
#
# What TSan cannot see: the OpenMP runtime (libgomp with gcc, libomp with clang) and oneDNN are
# system libraries without TSan
# instrumentation, so races inside their thread pools would be invisible and their internal
# synchronisation shows up as false reports. The suites therefore load the policy with threads = 1
# and run with OMP_NUM_THREADS=1: every kernel runs on the calling thread, and what TSan checks is
# vlart's own cross-thread traffic. tests/tsan.supp silences OpenMP-runtime-internal reports only.
# The allocation-counting hook is not linked in this build (TSan defines operator new), so
# NextActionPerformsNoHeapAllocation skips here and runs in the normal build.
set(VLART_TSAN_SUITES test_scheduler test_chunk_runner test_caches test_telemetry test_serve)
add_custom_target(vlart_tsan_targets)
foreach(t ${VLART_TSAN_SUITES})
  if(TARGET ${t})
    add_dependencies(vlart_tsan_targets ${t})
    if(VLART_TSAN)
      target_compile_definitions(${t} PRIVATE VLART_TSAN_BUILD=1)  # smaller stress loads
      add_test(NAME ${t}_tsan COMMAND ${t})
      set_tests_properties(${t}_tsan PROPERTIES LABELS "tsan" TIMEOUT 120 ENVIRONMENT
        "OMP_NUM_THREADS=1;TSAN_OPTIONS=second_deadlock_stack=1:history_size=4:suppressions=${CMAKE_CURRENT_SOURCE_DIR}/tsan.supp")
    endif()
  endif()
endforeach()
