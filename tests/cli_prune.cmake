# vlart prune / rank-layers / --visual-tokens (and calibrated quantize --gptq) on the bundled default policy (3 VLM layers, S/C/C,
# 3 heads in one kv group, MLP 128, expert MLP 256), outputs under the build tree.
if(TARGET vlart_cli)
  set(_pr_policy ${PROJECT_SOURCE_DIR}/assets/default_policy)
  set(_pr_out ${CMAKE_BINARY_DIR}/cli_prune)
  set(_pr_inputs --image camera1=${PROJECT_SOURCE_DIR}/assets/samples/camera1.png
                 --image camera2=${PROJECT_SOURCE_DIR}/assets/samples/camera2.png
                 --state 0.1,-0.2,0.3,0.05,0.5 --task "pick up the red cube" --seed 0 --threads 1)
  add_test(NAME cli_prune_layers_heads_mlp
    COMMAND $<TARGET_FILE:vlart_cli> prune ${_pr_policy} ${_pr_out}/p1 --drop-vlm-layers 1
            --prune-heads-frac 0.34 --prune-mlp-frac 0.5 --force)
  set_tests_properties(cli_prune_layers_heads_mlp PROPERTIES FIXTURES_SETUP cli_pruned PASS_REGULAR_EXPRESSION
    "dropped VLM layers: 1; dropped expert layers: 1.*  1  src  2  heads 3 -> 2  mlp 128 -> 64  expert 1 \\(cross\\).*  1  src  2  heads 3 -> 2  mlp 256 -> 128.*parameters: 526208 -> 324192")
  add_test(NAME cli_prune_run
    COMMAND $<TARGET_FILE:vlart_cli> run ${_pr_out}/p1 ${_pr_inputs} --json)
  set_tests_properties(cli_prune_run PROPERTIES FIXTURES_REQUIRED cli_pruned PASS_REGULAR_EXPRESSION
    "\"actions\":\\[\\[.*\"horizon\":50,\"action_dim\":4")
  add_test(NAME cli_info_pruned COMMAND $<TARGET_FILE:vlart_cli> info ${_pr_out}/p1)
  set_tests_properties(cli_info_pruned PROPERTIES FIXTURES_REQUIRED cli_pruned PASS_REGULAR_EXPRESSION
    "per VLM layer: S C .*pruned: .*VLM source +0,2\n +VLM heads +2,2\n +VLM mlp +64,64\n.*expert mlp +128,128")
  add_test(NAME cli_prune_bad_index_fails
    COMMAND $<TARGET_FILE:vlart_cli> prune ${_pr_policy} ${_pr_out}/bad --drop-vlm-layers 0,5)
  set_tests_properties(cli_prune_bad_index_fails PROPERTIES WILL_FAIL TRUE)
  add_test(NAME cli_prune_bad_index_message
    COMMAND $<TARGET_FILE:vlart_cli> prune ${_pr_policy} ${_pr_out}/bad --drop-vlm-layers 0,5)
  set_tests_properties(cli_prune_bad_index_message PROPERTIES PASS_REGULAR_EXPRESSION
    "--drop-vlm-layers: layer 5 is out of range \\(the checkpoint has 3 VLM layers: 0..2\\)")
  add_test(NAME cli_prune_bad_fraction_message
    COMMAND $<TARGET_FILE:vlart_cli> prune ${_pr_policy} ${_pr_out}/bad --prune-mlp-frac 1)
  set_tests_properties(cli_prune_bad_fraction_message PROPERTIES PASS_REGULAR_EXPRESSION
    "--prune-mlp-frac is 1, expected a fraction in \\[0, 1\\)")
  add_test(NAME cli_prune_obs_setup
    COMMAND ${CMAKE_COMMAND} -DOUT=${_pr_out}/obs -DSAMPLES=${PROJECT_SOURCE_DIR}/assets/samples
            -P ${CMAKE_CURRENT_SOURCE_DIR}/scripts/make_cli_obs.cmake)
  set_tests_properties(cli_prune_obs_setup PROPERTIES FIXTURES_SETUP cli_prune_obs)
  add_test(NAME cli_prune_compare
    COMMAND $<TARGET_FILE:vlart_cli> compare ${_pr_policy} ${_pr_out}/p1 --obs ${_pr_out}/obs --threads 1
            --iters 2 --json)
  set_tests_properties(cli_prune_compare PROPERTIES FIXTURES_REQUIRED "cli_pruned;cli_prune_obs"
    PASS_REGULAR_EXPRESSION "\"scheme\": \"float, pruned \\(2 VLM / 2 expert layers\\)\",[ \n]*\"cosine\": [-0-9.e]+")
  add_test(NAME cli_visual_tokens_compare
    COMMAND $<TARGET_FILE:vlart_cli> compare ${_pr_policy} ${_pr_policy} --obs ${_pr_out}/obs --threads 1
            --iters 2 --visual-tokens 2)
  set_tests_properties(cli_visual_tokens_compare PROPERTIES FIXTURES_REQUIRED cli_prune_obs
    PASS_REGULAR_EXPRESSION "\\| float, visual tokens 2 \\| 0\\.[0-9]+ ")
  add_test(NAME cli_prune_by_rank
    COMMAND $<TARGET_FILE:vlart_cli> prune ${_pr_policy} ${_pr_out}/by_rank --drop-vlm-layers-by-rank 1
            --calibrate ${_pr_out}/obs --threads 1 --force)
  set_tests_properties(cli_prune_by_rank PROPERTIES FIXTURES_REQUIRED cli_prune_obs PASS_REGULAR_EXPRESSION
    "ranked on 1 observation\\(s\\) of .*: dropping VLM layers 2, expert layers none.*dropped VLM layers: 2; dropped expert layers: 2")
  add_test(NAME cli_prune_by_rank_needs_calibrate_message
    COMMAND $<TARGET_FILE:vlart_cli> prune ${_pr_policy} ${_pr_out}/bad --drop-vlm-layers-by-rank 1)
  set_tests_properties(cli_prune_by_rank_needs_calibrate_message PROPERTIES PASS_REGULAR_EXPRESSION
    "--drop-vlm-layers-by-rank / --drop-expert-layers-by-rank need --calibrate OBS_DIR")
  add_test(NAME cli_prune_activation_importance
    COMMAND $<TARGET_FILE:vlart_cli> prune ${_pr_policy} ${_pr_out}/by_act --prune-heads-frac 0.34
            --prune-mlp-frac 0.5 --importance activation --calibrate ${_pr_out}/obs --threads 1 --force)
  set_tests_properties(cli_prune_activation_importance PROPERTIES FIXTURES_REQUIRED cli_prune_obs
    FIXTURES_SETUP cli_pruned_act PASS_REGULAR_EXPRESSION
    "activation importance measured on 1 observation\\(s\\) of .*  0  src  0  heads 3 -> 2  mlp 128 -> 64")
  add_test(NAME cli_prune_activation_run
    COMMAND $<TARGET_FILE:vlart_cli> info ${_pr_out}/by_act)
  set_tests_properties(cli_prune_activation_run PROPERTIES FIXTURES_REQUIRED cli_pruned_act PASS_REGULAR_EXPRESSION
    "VLM heads +2,2,2")
  add_test(NAME cli_prune_activation_needs_calibrate_message
    COMMAND $<TARGET_FILE:vlart_cli> prune ${_pr_policy} ${_pr_out}/bad --prune-mlp-frac 0.5 --importance activation)
  set_tests_properties(cli_prune_activation_needs_calibrate_message PROPERTIES PASS_REGULAR_EXPRESSION
    "--importance activation needs --calibrate OBS_DIR")
  add_test(NAME cli_prune_bad_importance_message
    COMMAND $<TARGET_FILE:vlart_cli> prune ${_pr_policy} ${_pr_out}/bad --prune-mlp-frac 0.5 --importance weights)
  set_tests_properties(cli_prune_bad_importance_message PROPERTIES PASS_REGULAR_EXPRESSION
    "--importance expects magnitude or activation, got 'weights'")
  add_test(NAME cli_quantize_gptq
    COMMAND $<TARGET_FILE:vlart_cli> quantize ${_pr_policy} ${_pr_out}/gptq --scheme int4-g64 --gptq
            --calibrate ${_pr_out}/obs --threads 1 --force)
  set_tests_properties(cli_quantize_gptq PROPERTIES FIXTURES_REQUIRED cli_prune_obs PASS_REGULAR_EXPRESSION
    "1024 rows sampled per layer.*calibration: GPTQ rounding for [0-9]+ of [0-9]+ weights; output error on the sampled rows")
  add_test(NAME cli_quantize_gptq_needs_calibrate_message
    COMMAND $<TARGET_FILE:vlart_cli> quantize ${_pr_policy} ${_pr_out}/bad --scheme int4-g64 --gptq)
  set_tests_properties(cli_quantize_gptq_needs_calibrate_message PROPERTIES PASS_REGULAR_EXPRESSION
    "--gptq applies to int4 schemes with --calibrate OBS_DIR \\(got scheme int4-g64, no --calibrate\\)")
  add_test(NAME cli_run_visual_tokens
    COMMAND $<TARGET_FILE:vlart_cli> run ${_pr_policy} ${_pr_inputs} --visual-tokens 2 --json)
  set_tests_properties(cli_run_visual_tokens PROPERTIES PASS_REGULAR_EXPRESSION "\"horizon\":50,\"action_dim\":4")
  add_test(NAME cli_rank_layers
    COMMAND $<TARGET_FILE:vlart_cli> rank-layers ${_pr_policy} --obs ${_pr_out}/obs --threads 1)
  set_tests_properties(cli_rank_layers PROPERTIES FIXTURES_REQUIRED cli_prune_obs PASS_REGULAR_EXPRESSION
    "\\| vlm \\| 2 \\| [-0-9.]+ \\|.*\\| expert \\| 2 \\| [-0-9.]+ \\|.*VLM layers, least important first: [0-2],[0-2],[0-2]")
  set_tests_properties(cli_prune_layers_heads_mlp cli_prune_run cli_info_pruned cli_prune_bad_index_fails
    cli_prune_bad_index_message cli_prune_bad_fraction_message cli_prune_obs_setup cli_prune_compare
    cli_visual_tokens_compare cli_run_visual_tokens cli_rank_layers cli_prune_by_rank
    cli_prune_by_rank_needs_calibrate_message cli_prune_activation_importance cli_prune_activation_run
    cli_prune_activation_needs_calibrate_message cli_prune_bad_importance_message cli_quantize_gptq
    cli_quantize_gptq_needs_calibrate_message PROPERTIES LABELS "cli")
endif()
