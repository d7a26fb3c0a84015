// match: a price-time priority order book (book.hpp). An incoming order takes from the best
// opposite price first, oldest order first; what is left rests at its own price.
#include "book.hpp"

#include <algorithm>

namespace order_server {

std::uint32_t order_book::execute(std::int64_t id, std::uint8_t side, std::uint32_t price,
                                  std::uint32_t qty) {
  std::uint32_t left = qty;
  if (side == 0) {  // a buy takes asks from the lowest price up to its limit
    for (std::uint32_t p = 1; p <= price && left > 0; ++p) left = take(asks_[p], left);
  } else {  // a sell takes bids from the highest price down to its limit
    for (std::uint32_t p = max_price; p >= price && left > 0; --p) left = take(bids_[p], left);
  }
  if (left > 0) {
    (side == 0 ? bids_ : asks_)[price].push_back({id, left});
    ++resting_;
  }
  filled_ += qty - left;
  return qty - left;
}

std::uint32_t order_book::take(level& l, std::uint32_t left) {
  while (left > 0 && !l.empty()) {
    const std::uint32_t n = std::min(left, l.front().qty);
    left -= n;
    l.front().qty -= n;
    ++trades_;
    if (l.front().qty == 0) {
      l.pop_front();
      --resting_;
    }
  }
  return left;
}

}  // namespace order_server
