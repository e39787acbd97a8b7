// Helpers shared by the CLI subcommands.
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>

#include "commands.h"

namespace vlart::cli {

double rss_now_mib() {
  std::ifstream f("/proc/self/statm");
  long long pages = 0, resident = 0;
  if (!(f >> pages >> resident)) return -1;
  return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) / (1024.0 * 1024.0);
}

double rss_peak_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;  // KiB on Linux
}

}  // namespace vlart::cli
