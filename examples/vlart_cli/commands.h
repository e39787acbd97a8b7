#pragma once

namespace vlart::cli {
int cmd_info(int argc, char** argv);
int cmd_bench_ops(int argc, char** argv);
}  // namespace vlart::cli
