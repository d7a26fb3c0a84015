// rondo/io/format.hpp: the exact text of the io layer's formatters, on values built by hand.
#include <rondo/io/format.hpp>

#include <catch2/catch.hpp>

#include <cerrno>
#include <string>

TEST_CASE("io_result: the result, or the error as value() words it", "[io_format][deterministic]") {
  CHECK(fmt::format("{}", rondo::io_result{128, "read", 7}) == "read(fd 7) = 128");
  CHECK(fmt::format("{}", rondo::io_result{0, "close", 3}) == "close(fd 3) = 0");
  const rondo::io_result bad{-EBADF, "read", 7};
  CHECK(fmt::format("{}", bad) == "read(fd 7): Bad file descriptor");
  // The same words as the exception value() throws.
  CHECK_THROWS_WITH(bad.value(), fmt::format("{}", bad));
}

TEST_CASE("doorbell_counts and io_ring_setup", "[io_format][deterministic]") {
  CHECK(fmt::format("{}", rondo::io_context::doorbell_counts{5, 2}) == "msg_ring 5, eventfd 2");
  CHECK(fmt::format("{} {} {} {} {}", rondo::io_ring_setup::automatic,
                    rondo::io_ring_setup::defer_taskrun, rondo::io_ring_setup::coop_taskrun_flag,
                    rondo::io_ring_setup::coop_taskrun, rondo::io_ring_setup::plain) ==
        "automatic defer_taskrun coop_taskrun_flag coop_taskrun plain");
}

TEST_CASE("io formatters reject other specs with fmt::format_error", "[io_format][deterministic]") {
  CHECK_THROWS_WITH(fmt::format(fmt::runtime("{:x}"), rondo::io_result{}),
                    "rondo: unknown format spec 'x' for rondo::io_result (it takes '{}' only)");
  CHECK_THROWS_AS(fmt::format(fmt::runtime("{:t}"), rondo::io_context::doorbell_counts{}),
                  fmt::format_error);
}
