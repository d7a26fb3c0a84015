#pragma once
// The demo's last check: the journal read back against what the clients were acked
// (journal_check.cpp).
#include "load_generator.hpp"

#include <cstdint>
#include <deque>
#include <string>

namespace order_server {

// Empty when the journal in dir holds exactly the `published` orders, in order, and every
// acked order of the clients; else why not.
std::string verify_journal(const std::string& dir, std::int64_t published,
                           const std::deque<load_client>& clients);

}  // namespace order_server
