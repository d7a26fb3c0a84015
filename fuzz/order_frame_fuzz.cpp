// Fuzz target: the order server's frame decoder (examples/order_server/protocol.hpp), fed as the
// server's reader feeds it. The input is a byte stream cut into reads of fuzzer-chosen sizes;
// each read is appended to a bounded buffer and every whole frame at its front is taken, as in
// order_server's serve_connection(). Invariants, checked against an independent reading of
// the header:
//   - check_frame() never reads past its span (ASan) and returns a size of 0 or exactly one
//     new_order frame, or an error, never both;
//   - an error is given exactly when the header is bad (magic, type, length), and names it;
//   - a frame is taken exactly when the header is good and 40 bytes are there;
//   - decode_order() rejects exactly the orders outside the book's limits.
#include "../examples/order_server/protocol.hpp"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>

namespace op = order_protocol;

namespace {

[[noreturn]] void broken(const char* what) {
  std::fprintf(stderr, "order_frame_fuzz: invariant broken: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  // Byte 0: the read size pattern (1..64 bytes per read, or everything at once when 0).
  const std::size_t chunk = data[0] % 65;
  const auto* in = reinterpret_cast<const std::byte*>(data + 1);
  std::size_t left = size - 1;
  std::array<std::byte, 256> buf{};  // the reader's buffer, small so that it fills and wraps
  std::size_t have = 0;
  while (left > 0 || have > 0) {
    const std::size_t n = std::min({left, chunk == 0 ? left : chunk, buf.size() - have});
    std::memcpy(buf.data() + have, in, n);
    in += n;
    left -= n;
    have += n;
    std::size_t used = 0;
    bool stream_broken = false;
    for (;;) {
      const std::span<const std::byte> rest(buf.data() + used, have - used);
      const op::frame_check f = op::check_frame(rest);
      // The independent reading of the header.
      bool header_bad = false;
      if (rest.size() >= sizeof(op::frame_header)) {
        op::frame_header h{};
        std::memcpy(&h, rest.data(), sizeof h);
        header_bad = h.magic != op::wire_magic ||
                     h.type != static_cast<std::uint8_t>(op::msg_type::new_order) ||
                     h.length != sizeof(op::new_order_msg);
      }
      if (!f.error.empty() && f.size != 0) broken("an error and a size at once");
      if (header_bad != !f.error.empty()) broken("error iff the header is bad");
      if (f.size != 0 && f.size != op::order_frame_size) broken("a frame of another size");
      const bool whole = !header_bad && rest.size() >= op::order_frame_size;
      if (whole != (f.size != 0)) broken("a frame iff a good header and 40 bytes");
      if (!f.error.empty()) {
        stream_broken = true;  // the server closes the connection here
        break;
      }
      if (f.size == 0) break;
      std::int64_t sent_ns = 0;
      const op::journal_record r = op::decode_order(
          std::span<const std::byte, op::order_frame_size>(rest.data(), op::order_frame_size), 42,
          sent_ns);
      op::new_order_msg m{};
      std::memcpy(&m, rest.data() + sizeof(op::frame_header), sizeof m);
      const bool valid = m.side <= 1 && m.qty >= 1 && m.qty <= op::max_qty && m.price >= 1 &&
                         m.price <= op::max_price;
      if ((r.status == op::accepted) != valid) broken("status differs from the limits");
      if (r.sequence != 42 || r.client_order_id != m.client_order_id || sent_ns != m.sent_ns) {
        broken("decode lost a field");
      }
      used += f.size;
    }
    if (stream_broken) return 0;
    std::memmove(buf.data(), buf.data() + used, have - used);
    have -= used;
    if (left == 0) break;  // a partial frame at the end: the server waits for more (or times out)
  }
  return 0;
}
