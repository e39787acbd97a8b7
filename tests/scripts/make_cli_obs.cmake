# cmake -DOUT=<dir> -DSAMPLES=<assets/samples> -P make_cli_obs.cmake
# Writes a one-observation `vlart compare --obs` directory for the bundled default policy.
file(REMOVE_RECURSE ${OUT})
file(MAKE_DIRECTORY ${OUT}/o0)
file(COPY ${SAMPLES}/camera1.png ${SAMPLES}/camera2.png DESTINATION ${OUT}/o0)
file(WRITE ${OUT}/o0/state.txt "0.1,-0.2,0.3,0.05,0.5")
file(WRITE ${OUT}/o0/task.txt "pick up the red cube")
