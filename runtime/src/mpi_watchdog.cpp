/* mpi_watchdog.cpp - the MPI backend's watchdog: one thread per process that ends the job when an MPI call
   runs past the timeout.

   MPI calls cannot be interrupted, so a call that blocks on a dead, hung or diverged peer is ended from the
   outside: WatchdogScope arms a deadline of comm_timeout_s() seconds for the lifetime of one call, and the
   thread calls fail() (MPI_Abort of MPI_COMM_WORLD through mpi_init's abort hook) once one passes. This is
   the one place where the runtime exits on its own. */
#include "mpi_internal.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <thread>
#include <utility>

namespace atp {

namespace {

class Watchdog {
public:
  static Watchdog &get() {
    static Watchdog *w = new Watchdog; // never destroyed: its thread outlives main
    return *w;
  }
  std::uint64_t arm(double timeout_s, std::string what, const char *mpi_call) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!started_) {
      std::thread([this] { loop(); }).detach();
      started_ = true;
    }
    auto deadline =
        Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_s));
    armed_.emplace(next_id_, Entry{deadline, timeout_s, std::move(what), mpi_call});
    cv_.notify_one();
    return next_id_++;
  }
  void disarm(std::uint64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    armed_.erase(id);
  }

private:
  using Clock = std::chrono::steady_clock;
  struct Entry {
    Clock::time_point deadline;
    double timeout_s;
    std::string what;
    const char *mpi_call;
  };
  void loop() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      if (armed_.empty()) {
        cv_.wait(lock);
        continue;
      }
      auto first = std::min_element(armed_.begin(), armed_.end(),
                                    [](const auto &a, const auto &b) { return a.second.deadline < b.second.deadline; });
      if (Clock::now() < first->second.deadline) {
        // Copy: disarm() may erase the entry while the lock is released.
        const Clock::time_point deadline = first->second.deadline;
        cv_.wait_until(lock, deadline);
        continue;
      }
      char secs[32];
      std::snprintf(secs, sizeof secs, "%g", first->second.timeout_s);
      std::string detail = first->second.what + " did not complete within " + secs +
                           " s (ATP_COMM_TIMEOUT_S): a peer is dead, hung, or called a different collective; "
                           "aborting the job";
      const char *call = first->second.mpi_call;
      lock.unlock();
      fail(call, "", __FILE__, __LINE__, detail); // prints "rank R/W (host H): <call> failed at ...: <detail>"
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::uint64_t, Entry> armed_;
  std::uint64_t next_id_ = 1;
  bool started_ = false;
};

} // namespace

namespace mpi_detail {

WatchdogScope::WatchdogScope(const std::string &what, const char *mpi_call) {
  double t = comm_timeout_s();
  if (t > 0)
    id_ = Watchdog::get().arm(t, what, mpi_call);
}

WatchdogScope::~WatchdogScope() {
  if (id_)
    Watchdog::get().disarm(id_);
}

} // namespace mpi_detail

} // namespace atp
