# End-to-end runs of the vlart CLI on the bundled default policy and sample frames.
if(TARGET vlart_cli)
  set(_cli_policy ${PROJECT_SOURCE_DIR}/assets/default_policy)
  set(_cli_images --image camera1=${PROJECT_SOURCE_DIR}/assets/samples/camera1.png
                  --image camera2=${PROJECT_SOURCE_DIR}/assets/samples/camera2.png)
  add_test(NAME cli_run_default
    COMMAND $<TARGET_FILE:vlart_cli> run ${_cli_policy} ${_cli_images} --state 0.1,-0.2,0.3,0.05,0.5
            --task "pick up the red cube" --seed 0 --threads 1 --json)
  set_tests_properties(cli_run_default PROPERTIES
    PASS_REGULAR_EXPRESSION "\"actions\":\\[\\[.*\"horizon\":50,\"action_dim\":4")
  add_test(NAME cli_run_table
    COMMAND $<TARGET_FILE:vlart_cli> run ${_cli_policy} ${_cli_images} --state 0.1,-0.2,0.3,0.05,0.5
            --task "pick up the red cube" --seed 0 --threads 1)
  set_tests_properties(cli_run_table PROPERTIES PASS_REGULAR_EXPRESSION "step +a0 +a1 +a2 +a3.*\n +49 .*timings")
  add_test(NAME cli_bench_json
    COMMAND $<TARGET_FILE:vlart_cli> bench ${_cli_policy} ${_cli_images} --state 0.1,-0.2,0.3,0.05,0.5
            --task "pick up the red cube" --threads 1 --iters 3 --warmup 1 --dtype bf16 --json)
  set_tests_properties(cli_bench_json PROPERTIES PASS_REGULAR_EXPRESSION
    "\"dtype\":\"bf16\".*\"total\":\\{\"p50\":[0-9.e+-]+,\"p99\":[0-9.e+-]+.*\"rss_peak_mib\":[0-9.]+")
  add_test(NAME cli_bench_table
    COMMAND $<TARGET_FILE:vlart_cli> bench ${_cli_policy} ${_cli_images} --state 0.1,-0.2,0.3,0.05,0.5
            --task "pick up the red cube" --threads 1 --iters 3 --warmup 1)
  set_tests_properties(cli_bench_table PROPERTIES PASS_REGULAR_EXPRESSION
    "stage \\(ms\\) +p50 +p99 +max.*denoise +[0-9.]+ +[0-9.]+.*total .*RSS after load")
  add_test(NAME cli_bench_clients
    COMMAND $<TARGET_FILE:vlart_cli> bench ${_cli_policy} ${_cli_images} --state 0.1,-0.2,0.3,0.05,0.5
            --task "pick up the red cube" --threads 1 --iters 5 --warmup 1 --clients 3 --max-batch 4 --json)
  set_tests_properties(cli_bench_clients PROPERTIES PASS_REGULAR_EXPRESSION
    "\"clients\":3,\"requests\":15,\"failed\":0,\"throughput_per_s\":[0-9.e+-]+.*\"batch_size_histogram\":\\[0,")
  # Telemetry log: warmup 1 + 4 requests, a line every 2 answers -> lines after the 2nd and 4th.
  add_test(NAME cli_bench_telemetry
    COMMAND $<TARGET_FILE:vlart_cli> bench ${_cli_policy} ${_cli_images} --state 0.1,-0.2,0.3,0.05,0.5
            --task "pick up the red cube" --threads 1 --iters 4 --warmup 1 --clients 1 --telemetry-every 2)
  set_tests_properties(cli_bench_telemetry PROPERTIES ENVIRONMENT "VLART_LOG_LEVEL=info" PASS_REGULAR_EXPRESSION
    "scheduler telemetry: submitted [0-9]+: ok 2,.*scheduler telemetry: submitted [0-9]+: ok 4,.*ms p50/p99/max: queue")
  add_test(NAME cli_info_model COMMAND $<TARGET_FILE:vlart_cli> info ${_cli_policy})
  set_tests_properties(cli_info_model PROPERTIES PASS_REGULAR_EXPRESSION "parameters: +526.2K")
  # Failures must exit non-zero (WILL_FAIL) and say what is wrong (checked by a second run that
  # matches the message; FAIL/PASS regexes override the exit status, so both are needed).
  set(_bad_image --image camera1=${PROJECT_SOURCE_DIR}/assets/samples/no_such.png
                 --image camera2=${PROJECT_SOURCE_DIR}/assets/samples/camera2.png)
  add_test(NAME cli_run_bad_image_fails
    COMMAND $<TARGET_FILE:vlart_cli> run ${_cli_policy} ${_bad_image} --state 0,0,0,0,0 --task x)
  set_tests_properties(cli_run_bad_image_fails PROPERTIES WILL_FAIL TRUE)
  add_test(NAME cli_run_bad_image_message
    COMMAND $<TARGET_FILE:vlart_cli> run ${_cli_policy} ${_bad_image} --state 0,0,0,0,0 --task x)
  set_tests_properties(cli_run_bad_image_message PROPERTIES
    PASS_REGULAR_EXPRESSION "cannot open image .*no_such.png")
  add_test(NAME cli_run_undecodable_image_message
    COMMAND $<TARGET_FILE:vlart_cli> run ${_cli_policy}
            --image camera1=${PROJECT_SOURCE_DIR}/assets/default_policy/config.json
            --image camera2=${PROJECT_SOURCE_DIR}/assets/samples/camera2.png --state 0,0,0,0,0 --task x)
  set_tests_properties(cli_run_undecodable_image_message PROPERTIES
    PASS_REGULAR_EXPRESSION "cannot decode image .*config.json")
  add_test(NAME cli_run_wrong_state_message
    COMMAND $<TARGET_FILE:vlart_cli> run ${_cli_policy} ${_cli_images} --state 1,2,3 --task x)
  set_tests_properties(cli_run_wrong_state_message PROPERTIES
    PASS_REGULAR_EXPRESSION "--state has 3 values, this policy expects 5")
  # A checkpoint of another architecture, and a SmolVLA config with an invalid size: the error names
  # the file, the field, what was found and what vlart expects (configure-time copies in the build tree).
  set(_cli_other ${CMAKE_CURRENT_BINARY_DIR}/cli_other_policy)
  file(WRITE ${_cli_other}/config.json "{\"type\": \"groot\", \"vlm_model_name\": \"nvidia/GR00T-N1.7-3B\"}\n")
  add_test(NAME cli_info_other_architecture_fails COMMAND $<TARGET_FILE:vlart_cli> info ${_cli_other})
  set_tests_properties(cli_info_other_architecture_fails PROPERTIES WILL_FAIL TRUE)
  add_test(NAME cli_info_other_architecture_message COMMAND $<TARGET_FILE:vlart_cli> info ${_cli_other})
  set_tests_properties(cli_info_other_architecture_message PROPERTIES PASS_REGULAR_EXPRESSION
    "cli_other_policy/config.json: field 'type' is 'groot': this policy architecture is not supported \\(vlart loads: smolvla, pi0, pi05, opentau_pi05\\)")
  add_test(NAME cli_run_other_architecture_message
    COMMAND $<TARGET_FILE:vlart_cli> run ${_cli_other} ${_cli_images} --state 0,0,0,0,0 --task x)
  set_tests_properties(cli_run_other_architecture_message PROPERTIES PASS_REGULAR_EXPRESSION
    "cli_other_policy/config.json: field 'type' is 'groot'")
  set(_cli_badsteps ${CMAKE_CURRENT_BINARY_DIR}/cli_bad_num_steps_policy)
  file(READ ${_cli_policy}/config.json _cli_cfg)
  string(REGEX REPLACE "\"num_steps\": *[0-9]+" "\"num_steps\": -3" _cli_cfg "${_cli_cfg}")
  string(REGEX REPLACE "\"vlm_model_name\": *\"[^\"]*\"" "\"vlm_model_name\": \"${_cli_policy}/smolvlm_tiny\"" _cli_cfg
         "${_cli_cfg}")
  file(WRITE ${_cli_badsteps}/config.json "${_cli_cfg}")
  add_test(NAME cli_run_bad_num_steps_fails
    COMMAND $<TARGET_FILE:vlart_cli> run ${_cli_badsteps} ${_cli_images} --state 0,0,0,0,0 --task x)
  set_tests_properties(cli_run_bad_num_steps_fails PROPERTIES WILL_FAIL TRUE)
  add_test(NAME cli_run_bad_num_steps_message
    COMMAND $<TARGET_FILE:vlart_cli> run ${_cli_badsteps} ${_cli_images} --state 0,0,0,0,0 --task x)
  set_tests_properties(cli_run_bad_num_steps_message PROPERTIES PASS_REGULAR_EXPRESSION
    "cli_bad_num_steps_policy/config.json: field 'num_steps' is -3, expected an integer >= 1")
  # vlart quantize / compare: the default policy quantized to int8 into the build tree, compared
  # with the float policy on the sample frames (obs dir written by make_cli_obs.cmake).
  set(_cli_quant ${CMAKE_BINARY_DIR}/cli_quant)
  add_test(NAME cli_quantize_int8
    COMMAND $<TARGET_FILE:vlart_cli> quantize ${_cli_policy} ${_cli_quant}/int8 --scheme int8 --force)
  set_tests_properties(cli_quantize_int8 PROPERTIES FIXTURES_SETUP cli_quant PASS_REGULAR_EXPRESSION
    "scheme int8\\).*tensors: [1-9][0-9]* quantized, [0-9]+ kept float.*weights: [0-9.]+ MiB -> [0-9.]+ MiB")
  add_test(NAME cli_quantize_refuses_nonempty_out
    COMMAND $<TARGET_FILE:vlart_cli> quantize ${_cli_policy} ${_cli_quant}/int8 --scheme int8)
  set_tests_properties(cli_quantize_refuses_nonempty_out PROPERTIES FIXTURES_REQUIRED cli_quant
    PASS_REGULAR_EXPRESSION "is not empty \\(pass --force")
  add_test(NAME cli_quantize_bad_attention_message
    COMMAND $<TARGET_FILE:vlart_cli> quantize ${_cli_policy} ${_cli_quant}/badattn --scheme w8a8 --attention fp8)
  set_tests_properties(cli_quantize_bad_attention_message PROPERTIES
    PASS_REGULAR_EXPRESSION "--attention expects f32, int16 or int8, got 'fp8'")
  add_test(NAME cli_run_bad_attention_message
    COMMAND $<TARGET_FILE:vlart_cli> run ${_cli_policy} --attention int4)
  set_tests_properties(cli_run_bad_attention_message PROPERTIES
    PASS_REGULAR_EXPRESSION "--attention expects auto, f32, int16 or int8, got 'int4'")
  add_test(NAME cli_info_quantized COMMAND $<TARGET_FILE:vlart_cli> info ${_cli_quant}/int8)
  set_tests_properties(cli_info_quantized PROPERTIES FIXTURES_REQUIRED cli_quant PASS_REGULAR_EXPRESSION
    "quantization: int8, [0-9]+ tensors quantized.*parameters: +526.2K.*dtypes: .*int8 ")
  add_test(NAME cli_quantize_bad_scheme_fails
    COMMAND $<TARGET_FILE:vlart_cli> quantize ${_cli_policy} ${_cli_quant}/bad --scheme int3)
  set_tests_properties(cli_quantize_bad_scheme_fails PROPERTIES WILL_FAIL TRUE)
  add_test(NAME cli_quantize_bad_scheme_message
    COMMAND $<TARGET_FILE:vlart_cli> quantize ${_cli_policy} ${_cli_quant}/bad --scheme int3)
  set_tests_properties(cli_quantize_bad_scheme_message PROPERTIES PASS_REGULAR_EXPRESSION
    "unknown quantization scheme 'int3'; expected one of: bf16, int8, w8a8, int4-g32")
  add_test(NAME cli_compare_obs_setup
    COMMAND ${CMAKE_COMMAND} -DOUT=${_cli_quant}/obs -DSAMPLES=${PROJECT_SOURCE_DIR}/assets/samples
            -P ${CMAKE_CURRENT_SOURCE_DIR}/scripts/make_cli_obs.cmake)
  set_tests_properties(cli_compare_obs_setup PROPERTIES FIXTURES_SETUP cli_obs)
  add_test(NAME cli_compare_table
    COMMAND $<TARGET_FILE:vlart_cli> compare ${_cli_policy} ${_cli_quant}/int8 --obs ${_cli_quant}/obs
            --threads 1 --iters 2)
  set_tests_properties(cli_compare_table PROPERTIES FIXTURES_REQUIRED "cli_quant;cli_obs" PASS_REGULAR_EXPRESSION
    "\\| model \\| scheme \\| cosine .*\\(reference\\) \\| float \\| 1\\.000000 .*int8 \\| int8 \\| 0\\.999[0-9]+ .*error per action dimension")
  add_test(NAME cli_compare_json
    COMMAND $<TARGET_FILE:vlart_cli> compare ${_cli_policy} ${_cli_quant}/int8 --obs ${_cli_quant}/obs
            --threads 1 --iters 2 --json)
  set_tests_properties(cli_compare_json PROPERTIES FIXTURES_REQUIRED "cli_quant;cli_obs" PASS_REGULAR_EXPRESSION
    "\"role\": \"candidate\",[ \n]*\"scheme\": \"int8\",[ \n]*\"cosine\": 0\\.999.*\"peak_rss_mib\": [0-9.]+")
  add_test(NAME cli_quantize_calibrated_int4
    COMMAND $<TARGET_FILE:vlart_cli> quantize ${_cli_policy} ${_cli_quant}/int4_awq --scheme int4-g64
            --calibrate ${_cli_quant}/obs --threads 1 --force)
  set_tests_properties(cli_quantize_calibrated_int4 PROPERTIES FIXTURES_REQUIRED cli_obs PASS_REGULAR_EXPRESSION
    "calibrating on [1-9][0-9]* observation.*calibration: activation-aware scales chosen for [0-9]+ of [1-9][0-9]* weights; output error on the sampled rows")
  add_test(NAME cli_quantize_calibrated_w8a8
    COMMAND $<TARGET_FILE:vlart_cli> quantize ${_cli_policy} ${_cli_quant}/w8a8_static --scheme w8a8
            --calibrate ${_cli_quant}/obs --threads 1 --force)
  set_tests_properties(cli_quantize_calibrated_w8a8 PROPERTIES FIXTURES_REQUIRED cli_obs PASS_REGULAR_EXPRESSION
    "calibration: static activation scales for [1-9][0-9]* of [1-9][0-9]* weights")
  add_test(NAME cli_quantize_calibrate_int8_message
    COMMAND $<TARGET_FILE:vlart_cli> quantize ${_cli_policy} ${_cli_quant}/int8_cal --scheme int8
            --calibrate ${_cli_quant}/obs --force)
  set_tests_properties(cli_quantize_calibrate_int8_message PROPERTIES PASS_REGULAR_EXPRESSION
    "--calibrate applies to int4 .* and w8a8 .*, not to scheme int8")
  add_test(NAME cli_compare_missing_obs_message
    COMMAND $<TARGET_FILE:vlart_cli> compare ${_cli_policy} ${_cli_policy} --obs ${_cli_quant}/no_such_obs)
  set_tests_properties(cli_compare_missing_obs_message PROPERTIES PASS_REGULAR_EXPRESSION
    "--obs .*no_such_obs is not a directory")
  set_tests_properties(cli_run_default cli_run_table cli_info_model cli_run_bad_image_fails
    cli_run_bad_image_message cli_run_undecodable_image_message cli_run_wrong_state_message
    cli_quantize_int8 cli_quantize_refuses_nonempty_out cli_info_quantized cli_quantize_bad_scheme_fails
    cli_quantize_bad_attention_message cli_run_bad_attention_message
    cli_quantize_bad_scheme_message cli_compare_obs_setup cli_compare_table cli_compare_json
    cli_compare_missing_obs_message cli_quantize_calibrated_int4 cli_quantize_calibrated_w8a8
    cli_quantize_calibrate_int8_message
    PROPERTIES LABELS "cli")
endif()

# test_cli_run (gtest) runs the CLI binary: tell it where, and build it first.
if(TARGET vlart_cli AND TARGET test_cli_run)
  target_compile_definitions(test_cli_run PRIVATE VLART_CLI_PATH="$<TARGET_FILE:vlart_cli>")
  add_dependencies(test_cli_run vlart_cli)
endif()
