#pragma once
// The order server's event: one ring slot, filled in place by the connection reader and then by
// each stage in turn (stages.cpp).
#include "protocol.hpp"

#include <rondo/rondo.hpp>

#include <array>
#include <cstddef>
#include <cstdint>

namespace order_server {

// ---- Wire format and journal record: protocol.hpp (the fuzzer includes it too) ----------------

using namespace order_protocol;

// ---- The event: one ring slot, filled in place by each stage in turn ---------------------------

struct order_event {
  // Written by the connection reader (the producer):
  rondo::connection_id conn{};  // where the ack goes (rondo::server::find() refuses a stale one)
  std::int64_t received_ns = 0;
  std::array<std::byte, order_frame_size> frame{};  // the frame as it came off the wire
  // Written by decode:
  journal_record record{};
  std::int64_t client_sent_ns = 0;
  // Written by match:
  std::uint32_t filled = 0;
};

}  // namespace order_server
