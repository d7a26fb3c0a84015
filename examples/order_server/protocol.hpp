#pragma once
// The order server's wire format and journal record, shared by the server (order_server/),
// its kill -9 test (tests/tools/order_kill_test.cpp) and the frame decoder's fuzzer
// (fuzz/order_frame_fuzz.cpp). Small frames in host byte order (both ends share the machine):
//
//   frame_header (8 bytes) | payload (length bytes; a new_order or an ack: 32 bytes)
//
// check_frame() is the server's whole judgement of untrusted bytes: it must never read past
// its span, and every verdict is a size or a reason.
#include <fmt/format.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace order_protocol {

inline constexpr std::uint16_t wire_magic = 0x4f52;  // "RO"
// notice: server -> client, a text payload (at most max_payload bytes): why the server stops
// taking orders (the journal failed, say) just before it closes the connection.
enum class msg_type : std::uint8_t { new_order = 1, ack = 2, notice = 3 };
inline constexpr std::uint32_t max_payload = 256;  // a longer length field is an oversized frame

struct frame_header {
  std::uint16_t magic;
  std::uint8_t type;  // msg_type
  std::uint8_t reserved;
  std::uint32_t length;  // payload bytes after the header
};
struct new_order_msg {  // client -> server
  std::uint32_t client_id;
  std::uint8_t side;  // 0 buy, 1 sell
  std::uint8_t pad[3];
  std::uint64_t client_order_id;  // 1, 2, 3, ... per client
  std::int64_t sent_ns;           // the client's clock, echoed in the ack
  std::uint32_t price;            // ticks
  std::uint32_t qty;
};
enum order_status : std::uint8_t { accepted = 0, rejected = 1 };
struct ack_msg {  // server -> client
  std::uint64_t client_order_id;
  std::int64_t sent_ns;
  std::int64_t server_sequence;  // where the order sits in the journal
  std::uint32_t filled;          // quantity filled on arrival
  std::uint8_t status;           // order_status
  std::uint8_t pad[3];
};
static_assert(sizeof(frame_header) == 8 && sizeof(new_order_msg) == 32 && sizeof(ack_msg) == 32);
inline constexpr std::size_t order_frame_size = sizeof(frame_header) + sizeof(new_order_msg);
inline constexpr std::size_t ack_frame_size = sizeof(frame_header) + sizeof(ack_msg);

// What the journal writes per order: 32 bytes, straight from the ring slot.
struct journal_record {
  std::int64_t sequence;  // the journal holds 0, 1, 2, ... in order (across restarts)
  std::uint64_t client_order_id;
  std::uint32_t client_id;
  std::uint32_t price;
  std::uint32_t qty;
  std::uint8_t side;
  std::uint8_t status;  // order_status
  std::uint8_t pad[2];
};
static_assert(sizeof(journal_record) == 32);

// The order book's limits: decode rejects orders outside them.
inline constexpr std::uint32_t max_price = 200;
inline constexpr std::uint32_t max_qty = 1000;

template <class Msg>
void append_frame(std::vector<std::byte>& out, msg_type type, const Msg& body) {
  frame_header h{};
  h.magic = wire_magic;
  h.type = static_cast<std::uint8_t>(type);
  h.length = sizeof(Msg);
  const std::size_t at = out.size();
  out.resize(at + sizeof h + sizeof body);
  std::memcpy(out.data() + at, &h, sizeof h);
  std::memcpy(out.data() + at + sizeof h, &body, sizeof body);
}

inline void append_notice(std::vector<std::byte>& out, std::string_view text) {
  text = text.substr(0, max_payload);
  frame_header h{};
  h.magic = wire_magic;
  h.type = static_cast<std::uint8_t>(msg_type::notice);
  h.length = static_cast<std::uint32_t>(text.size());
  const std::size_t at = out.size();
  out.resize(at + sizeof h + text.size());
  std::memcpy(out.data() + at, &h, sizeof h);
  std::memcpy(out.data() + at + sizeof h, text.data(), text.size());
}

template <class Msg>
Msg read_as(const std::byte* p) {
  Msg m{};
  std::memcpy(&m, p, sizeof m);
  return m;
}

// What a connection reader makes of the bytes at the front of its buffer: a whole frame of
// `size` bytes, not enough bytes yet (size 0), or a broken stream (`error`: a byte stream cannot
// be resynchronised after a bad header, so the connection is closed).
struct frame_check {
  std::size_t size = 0;
  std::string error;
};

inline frame_check check_frame(std::span<const std::byte> in) {
  frame_check r;
  if (in.size() < sizeof(frame_header)) return r;
  const auto h = read_as<frame_header>(in.data());
  if (h.magic != wire_magic) {
    r.error = fmt::format("bad magic 0x{:04x}", unsigned{h.magic});
  } else if (h.type != static_cast<std::uint8_t>(msg_type::new_order)) {
    r.error = fmt::format("unknown message type {}", unsigned{h.type});
  } else if (h.length > max_payload) {
    r.error = fmt::format("oversized length {} (max {})", h.length, max_payload);
  } else if (h.length != sizeof(new_order_msg)) {
    r.error = fmt::format("length {} is not a new_order's {}", h.length, sizeof(new_order_msg));
  } else if (in.size() >= order_frame_size) {
    r.size = order_frame_size;
  }
  return r;
}

// The journal record of a whole new_order frame (check_frame said `order_frame_size`): bad
// field values are rejected (the ack says so); unlike bad framing they do not close the
// connection.
inline journal_record decode_order(std::span<const std::byte, order_frame_size> frame,
                                   std::int64_t sequence, std::int64_t& sent_ns) {
  const auto m = read_as<new_order_msg>(frame.data() + sizeof(frame_header));
  journal_record r{};
  r.sequence = sequence;
  r.client_order_id = m.client_order_id;
  r.client_id = m.client_id;
  r.price = m.price;
  r.qty = m.qty;
  r.side = m.side;
  const bool valid =
      m.side <= 1 && m.qty >= 1 && m.qty <= max_qty && m.price >= 1 && m.price <= max_price;
  r.status = valid ? accepted : rejected;
  sent_ns = m.sent_ns;
  return r;
}

}  // namespace order_protocol
