#include <cstdio>

int main() {
  std::printf("vlart %s\n", VLART_VERSION_STRING);
  return 0;
}
