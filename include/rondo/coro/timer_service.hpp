#pragma once
// Deadlines for coroutine waits on schedulers that have no timers of their own: one process-wide
// thread keeps armed timer_nodes in deadline order and fires each when its time comes.
//
// Theory of operation
//   arm(node): lock; insert in deadline order; if it is the new earliest, wake the thread.
//   thread:    lock; sleep until the earliest deadline (or a new earlier one); unlink it and
//              call node.fire(node) while still holding the lock.
//   disarm(node): lock; unlink if still armed. Because fire() runs under the lock, disarm()
//              returning means fire() is not running and will not run: the owner may then
//              destroy the node (the coroutine frame holding it).
//
// Lock order: the timer lock may be held while fire() takes a waiter registry's lock, never the
// other way round. Nodes are intrusive (they live in the waiting operation): arming never
// allocates. The thread starts on first use and stops at process exit.

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace rondo::detail {

struct timer_node {
  timer_node* prev = nullptr;  // guarded by the service lock
  timer_node* next = nullptr;  // guarded by the service lock
  bool armed = false;          // guarded by the service lock
  std::chrono::steady_clock::time_point deadline{};
  /// Runs on the timer thread, under the service lock; must not call arm()/disarm().
  void (*fire)(timer_node&) noexcept = nullptr;
};

class timer_service {
 public:
  /// The process-wide instance (its thread starts on first use).
  static timer_service& instance() {
    static timer_service s;
    return s;
  }

  timer_service(const timer_service&) = delete;
  timer_service& operator=(const timer_service&) = delete;

  /// Arms `n` (deadline and fire set). Any thread.
  void arm(timer_node& n) {
    std::lock_guard lk(mu_);
    timer_node* after = nullptr;  // insert after the last node with an earlier or equal deadline
    for (timer_node* p = tail_; p != nullptr; p = p->prev) {
      if (p->deadline <= n.deadline) {
        after = p;
        break;
      }
    }
    n.prev = after;
    n.next = after != nullptr ? after->next : head_;
    if (n.next != nullptr) n.next->prev = &n; else tail_ = &n;
    if (after != nullptr) after->next = &n; else head_ = &n;
    n.armed = true;
    if (head_ == &n) cv_.notify_one();
  }

  /// Disarms `n` if it has not fired; waits for a fire() in progress. Any thread.
  void disarm(timer_node& n) noexcept {
    std::lock_guard lk(mu_);
    if (n.armed) unlink(n);
  }

 private:
  timer_service() : thread_([this] { run(); }) {}
  ~timer_service() {
    {
      std::lock_guard lk(mu_);
      stop_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }

  void run() {
    std::unique_lock lk(mu_);
    while (!stop_) {
      if (head_ == nullptr) {
        cv_.wait(lk);
        continue;
      }
      if (std::chrono::steady_clock::now() < head_->deadline) {
        cv_.wait_until(lk, head_->deadline);
        continue;
      }
      timer_node* n = head_;
      unlink(*n);
      n->fire(*n);
    }
  }

  void unlink(timer_node& n) noexcept {
    if (n.prev != nullptr) n.prev->next = n.next; else head_ = n.next;
    if (n.next != nullptr) n.next->prev = n.prev; else tail_ = n.prev;
    n.prev = n.next = nullptr;
    n.armed = false;
  }

  std::mutex mu_;
  std::condition_variable cv_;
  timer_node* head_ = nullptr;  // earliest deadline first
  timer_node* tail_ = nullptr;
  bool stop_ = false;
  std::thread thread_;  // last: started once everything else is ready
};

}  // namespace rondo::detail
