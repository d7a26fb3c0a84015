#include <rondo/core/sequence.hpp>

#include <catch2/catch.hpp>

#include <array>
#include <cstddef>

TEST_CASE("a sequence starts at -1 and holds what was set", "[sequence][deterministic]") {
  rondo::sequence s;
  CHECK(s.get() == rondo::initial_sequence);
  s.set(41);
  CHECK(s.get() == 41);
  CHECK(s.get_relaxed() == 41);
  std::int64_t expected = 41;
  CHECK(s.compare_exchange(expected, 50));
  CHECK(s.get() == 50);
  expected = 41;
  CHECK_FALSE(s.compare_exchange(expected, 60));
  CHECK(expected == 50);
}

TEST_CASE("sequences occupy a padded line each", "[sequence][deterministic]") {
  std::array<rondo::sequence, 2> two;
  const auto a = reinterpret_cast<std::uintptr_t>(&two[0]);
  const auto b = reinterpret_cast<std::uintptr_t>(&two[1]);
  CHECK(b - a == rondo::detail::cache_line_size);
  CHECK(a % rondo::detail::cache_line_size == 0);
}

TEST_CASE("min_sequence takes the smallest or the fallback", "[sequence][deterministic]") {
  rondo::sequence a{5}, b{3}, c{9};
  std::array<const rondo::sequence*, 3> all{&a, &b, &c};
  CHECK(rondo::min_sequence(all) == 3);
  CHECK(rondo::min_sequence(std::span<const rondo::sequence* const>{}, 7) == 7);
  CHECK(rondo::min_sequence(all, 2) == 2);
  CHECK(rondo::is_after(4, 3));
  CHECK_FALSE(rondo::is_after(3, 3));
}
