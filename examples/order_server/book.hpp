#pragma once
// The match stage's state: a price-time priority order book (book.cpp).
#include "protocol.hpp"

#include <array>
#include <cstdint>
#include <deque>

namespace order_server {

// One FIFO of resting orders per price and side. An incoming order takes from the best opposite
// price first, oldest order first; what is left rests at its own price.
class order_book {
 public:
  static constexpr std::uint32_t max_price = order_protocol::max_price;

  // Returns the quantity filled on arrival.
  std::uint32_t execute(std::int64_t id, std::uint8_t side, std::uint32_t price,
                        std::uint32_t qty);
  [[nodiscard]] std::int64_t trades() const { return trades_; }
  [[nodiscard]] std::int64_t resting() const { return resting_; }
  [[nodiscard]] std::int64_t filled() const { return filled_; }

 private:
  struct resting_order {
    std::int64_t id;
    std::uint32_t qty;
  };
  using level = std::deque<resting_order>;

  std::uint32_t take(level& l, std::uint32_t left);

  std::array<level, max_price + 1> bids_, asks_;
  std::int64_t trades_ = 0, resting_ = 0, filled_ = 0;
};

}  // namespace order_server
