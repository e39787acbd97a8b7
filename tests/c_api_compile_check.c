/* Compiled as C (tests/c_api.cmake): proves include/vlart/vlart.h is a valid C header and that the
 * library links from a C program. With a checkpoint dir as argv[1] it also runs one inference
 * (zero images/state are filled in from the reported dims). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vlart/vlart.h"

int main(int argc, char** argv) {
  vlart_policy* p = NULL;
  /* An error path first: a missing directory must fail with a message, not crash. */
  if (vlart_policy_load("/nonexistent/vlart_c_check", 1, &p) == VLART_OK || p != NULL ||
      strstr(vlart_last_error(), "/nonexistent/vlart_c_check") == NULL) {
    fprintf(stderr, "expected a load failure naming the path, got '%s'\n", vlart_last_error());
    return 1;
  }
  if (argc < 2) return 0;
  vlart_status st = vlart_policy_load(argv[1], 1, &p);
  if (st != VLART_OK) {
    fprintf(stderr, "load: %s: %s\n", vlart_status_name(st), vlart_last_error());
    return 1;
  }
  int n_cam = 0, state_dim = 0, horizon = 0, action_dim = 0, max_action_dim = 0;
  vlart_policy_dims(p, &n_cam, &state_dim, &horizon, &action_dim, &max_action_dim);
  static uint8_t pixels[32 * 32 * 3];
  vlart_image imgs[16];
  float state[64] = {0};
  float* actions = (float*)malloc(sizeof(float) * (size_t)(horizon * action_dim));
  int h = 0, a = 0, i;
  if (n_cam > 16 || state_dim > 64 || !actions) return 1;
  memset(pixels, 128, sizeof pixels);
  for (i = 0; i < n_cam; ++i) {
    imgs[i].name = vlart_policy_camera_name(p, i);
    imgs[i].data = pixels;
    imgs[i].height = 32;
    imgs[i].width = 32;
  }
  st = vlart_policy_infer(p, imgs, n_cam, state, state_dim, "pick up the red cube", NULL, actions,
                          horizon * action_dim, &h, &a);
  if (st != VLART_OK || h != horizon || a != action_dim) {
    fprintf(stderr, "infer: %s: %s\n", vlart_status_name(st), vlart_last_error());
    return 1;
  }
  printf("c_api_compile_check: %d x %d actions, first %.5f\n", h, a, (double)actions[0]);
  vlart_policy_free(p);
  {
    /* The versioned options and the result handle, from C. */
    vlart_policy_options o;
    vlart_result* r = NULL;
    int rh = 0, ra = 0, s;
    const float* ract;
    vlart_policy_options_init(&o);
    o.threads = 1;
    st = vlart_policy_open(argv[1], &o, &p);
    if (st != VLART_OK) {
      fprintf(stderr, "open: %s: %s\n", vlart_status_name(st), vlart_last_error());
      return 1;
    }
    st = vlart_policy_infer_ex(p, imgs, n_cam, state, state_dim, "pick up the red cube", NULL, 0, &r);
    if (st != VLART_OK) {
      fprintf(stderr, "infer_ex: %s: %s\n", vlart_status_name(st), vlart_last_error());
      return 1;
    }
    ract = vlart_result_actions(r, &rh, &ra);
    if (!ract || rh != horizon || ra != action_dim) return 1;
    printf("c_api_compile_check: %s policy, infer_ex %d x %d;", vlart_policy_family(p), rh, ra);
    for (s = 0; s < vlart_result_stage_count(r); ++s)
      printf(" %s %.2f ms", vlart_result_stage_name(r, s), vlart_result_stage_ms(r, s));
    printf("\n");
    vlart_result_free(r);
    vlart_policy_free(p);
  }
  free(actions);
  return 0;
}
