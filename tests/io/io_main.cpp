// Catch2 main of the io_uring tests: exits 77 (CTest: skipped) when this host refuses io_uring
// (kernel.io_uring_disabled, seccomp, an old kernel), never passing silently.
#define CATCH_CONFIG_RUNNER
#include <rondo/io/io_context.hpp>

#include <catch2/catch.hpp>

#include <iostream>
#include <system_error>

int main(int argc, char* argv[]) {
  try {
    rondo::io_context probe;
  } catch (const std::system_error& e) {
    std::cout << "skipping the io_uring tests: " << e.what() << '\n';
    return 77;
  }
  return Catch::Session().run(argc, argv);
}
