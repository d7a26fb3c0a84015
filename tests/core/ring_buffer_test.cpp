#include <rondo/core/ring_buffer.hpp>

#include <catch2/catch.hpp>

#include <stdexcept>
#include <string>

TEST_CASE("ring capacity must be a power of two >= 1", "[ring_buffer][deterministic]") {
  CHECK_THROWS_WITH(rondo::ring_buffer<int>(1000), "ring capacity 1000 is not a power of two");
  CHECK_THROWS_AS(rondo::ring_buffer<int>(0), std::invalid_argument);
  CHECK_THROWS_AS(rondo::ring_buffer<int>(-4), std::invalid_argument);
  CHECK_THROWS_AS(rondo::ring_buffer<int>(std::int64_t{1} << 41), std::invalid_argument);
  CHECK(rondo::ring_buffer<int>(1).capacity() == 1);
  CHECK(rondo::ring_buffer<int>(2).capacity() == 2);
}

TEST_CASE("sequences map onto slots modulo capacity", "[ring_buffer][deterministic]") {
  rondo::ring_buffer<std::int64_t> r(8);
  for (std::int64_t s = 0; s < 8; ++s) r[s] = s;
  CHECK(r[8] == 0);
  CHECK(r[13] == 5);
  CHECK(&r[3] == &r[11]);
}

TEST_CASE("events are built once by the factory and destroyed once", "[ring_buffer][deterministic]") {
  static int alive = 0;
  struct counted {
    std::int64_t id;
    explicit counted(std::int64_t i) : id(i) { ++alive; }
    counted(counted&& o) noexcept : id(o.id) { ++alive; }
    ~counted() { --alive; }
  };
  {
    rondo::ring_buffer<counted> r(4, [](std::int64_t i) { return counted{i * 10}; });
    CHECK(alive == 4);
    CHECK(r[2].id == 20);
  }
  CHECK(alive == 0);
}

TEST_CASE("a throwing factory leaves nothing behind", "[ring_buffer][deterministic]") {
  static int alive = 0;
  struct counted {
    counted() { ++alive; }
    counted(const counted&) { ++alive; }
    ~counted() { --alive; }
  };
  CHECK_THROWS_WITH(rondo::ring_buffer<counted>(8,
                                                [](std::int64_t i) {
                                                  if (i == 5) throw std::runtime_error("boom");
                                                  return counted{};
                                                }),
                    "boom");
  CHECK(alive == 0);
}

TEST_CASE("contiguous() splits a run at the end of the ring", "[ring_buffer][deterministic]") {
  rondo::ring_buffer<int> r(8);
  auto one = r.contiguous(10, 4);  // slots 2..5
  CHECK(one.first.data() == &r[10]);
  CHECK(one.first.size() == 4);
  CHECK(one.second.empty());
  auto two = r.contiguous(6, 5);  // slots 6, 7 then 0, 1, 2
  CHECK(two.first.data() == &r[6]);
  CHECK(two.first.size() == 2);
  CHECK(two.second.data() == &r[8]);
  CHECK(two.second.size() == 3);
  CHECK(r.contiguous(3, 0).first.empty());
  CHECK(r.contiguous(0, 8).first.size() == 8);
}
