// The demo's journal check (journal_check.hpp): rondo::journal_reader reads the journal back and
// every record is matched against the sequence and the clients' acks.
#include "journal_check.hpp"

#include "protocol.hpp"

#include <rondo/rondo.hpp>

#include <fmt/format.h>

#include <exception>
#include <map>
#include <optional>

namespace order_server {

using namespace order_protocol;

// Reads the journal back (rondo::journal_reader: every record's frame and CRC checked): records
// 0, 1, 2, ... in order, each a 32-byte order whose own sequence is the journal's; per client,
// order ids 1, 2, 3, ..., none missing or repeated; and exactly the orders each client got
// acks for.
std::string verify_journal(const std::string& dir, std::int64_t published,
                           const std::deque<load_client>& clients) {
  std::map<std::uint32_t, std::uint64_t> last_id;  // per client
  std::int64_t next = 0;
  std::string why;
  try {
    rondo::journal_reader reader(dir);
    while (why.empty()) {
      const std::optional<rondo::record_view> rec = reader.next();
      if (!rec) break;
      if (rec->payload.size() != sizeof(journal_record)) {
        why = fmt::format("record {} has {} bytes", rec->sequence, rec->payload.size());
        break;
      }
      const auto r = read_as<journal_record>(rec->payload.data());
      std::uint64_t& last = last_id[r.client_id];
      if (rec->sequence != next || r.sequence != next) {
        why = fmt::format("record {} has sequence {} (in the frame) and {} (in the order)", next,
                          rec->sequence, r.sequence);
      } else if (r.client_order_id != last + 1) {
        why = fmt::format("client {}: order {} after {}", r.client_id, r.client_order_id, last);
      }
      last = r.client_order_id;
      ++next;
    }
    if (why.empty() && reader.torn_bytes() != 0) {
      why = fmt::format("a torn tail of {} bytes", reader.torn_bytes());
    }
  } catch (const std::exception& e) {
    why = e.what();
  }
  if (why.empty() && next != published) {
    why = fmt::format("{} records for {} orders", next, published);
  }
  for (const load_client& c : clients) {
    if (why.empty() && c.verify && last_id[c.id] != c.acked) {
      why = fmt::format("client {}: {} orders acked, {} journaled", c.id, c.acked, last_id[c.id]);
    }
  }
  return why;
}

}  // namespace order_server
