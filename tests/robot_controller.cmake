# The robot_controller example for ~2 s at 50 Hz on the bundled policy: it must exit 0 and print
# the achieved rate (bash pipefail: a PASS regex alone would ignore the exit status).
if(TARGET robot_controller)
  add_test(NAME robot_controller_2s
    COMMAND bash -c "set -o pipefail; \"$0\" --rate 50 --duration 2 --threads 1 | tee /dev/stderr | grep -E 'achieved rate: [0-9.]+ Hz'"
            $<TARGET_FILE:robot_controller>)
  set_tests_properties(robot_controller_2s PROPERTIES LABELS "example" TIMEOUT 60)
endif()
