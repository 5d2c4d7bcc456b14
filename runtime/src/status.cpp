/* Status, and the one place where the runtime exits on a fatal error.

   fail() is written to be safe when things are already going wrong: it
   formats the whole line first and writes it with one fputs, so lines from
   several ranks sharing a terminal do not interleave mid-line; it copies the
   hook list before running it, so a hook may (un)register hooks; and a
   failure inside a hook, or on a second thread, prints its line without
   running the hooks again. */
#include "atp/status.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace atp {

Status error(std::string message) {
  Status s;
  s.failed_ = true;
  s.message_ = message.empty() ? "unknown error" : std::move(message);
  return s;
}

Status Status::with_context(const std::string &context) const {
  if (ok())
    return *this;
  return error(context + ": " + message_);
}

// ---------------------------------------------------------------- identity and hooks

namespace {

struct Identity {
  std::mutex mu;
  bool known = false;
  int rank = 0, world_size = 0;
  std::string host;
  std::vector<std::pair<int, std::function<void()>>> hooks;
  int next_hook_id = 1;
};

Identity &identity() {
  static Identity *id = new Identity; // never destroyed: usable during exit
  return *id;
}

std::string local_host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0)
    return "unknown";
  return buf;
}

const char *base_name(const char *path) {
  if (!path)
    return "?";
  const char *slash = std::strrchr(path, '/');
  return slash ? slash + 1 : path;
}

std::atomic<bool> g_failing{false};
thread_local bool t_in_fail = false;

} // namespace

void set_process_identity(int rank, int world_size, std::string host) {
  Identity &id = identity();
  std::lock_guard<std::mutex> lock(id.mu);
  id.known = true;
  id.rank = rank;
  id.world_size = world_size;
  id.host = host.empty() ? local_host_name() : std::move(host);
}

int add_abort_hook(std::function<void()> hook) {
  Identity &id = identity();
  std::lock_guard<std::mutex> lock(id.mu);
  int handle = id.next_hook_id++;
  id.hooks.emplace_back(handle, std::move(hook));
  return handle;
}

void remove_abort_hook(int handle) {
  Identity &id = identity();
  std::lock_guard<std::mutex> lock(id.mu);
  for (auto it = id.hooks.begin(); it != id.hooks.end(); ++it)
    if (it->first == handle) {
      id.hooks.erase(it);
      return;
    }
}

// ---------------------------------------------------------------- fail

void fail(const char *what, const char *expr, const char *file, int line,
          const std::string &detail) {
  Identity &id = identity();
  std::string who;
  std::vector<std::function<void()>> hooks;
  {
    // try_lock: fail() may be reached from a thread that holds the lock
    // only if a hook called set_process_identity; never block here.
    std::unique_lock<std::mutex> lock(id.mu, std::try_to_lock);
    if (lock.owns_lock() && id.known)
      who = "rank " + std::to_string(id.rank) + "/" +
            std::to_string(id.world_size) + " (host " + id.host + ")";
    if (lock.owns_lock())
      for (auto it = id.hooks.rbegin(); it != id.hooks.rend(); ++it)
        hooks.push_back(it->second);
  }
  if (who.empty())
    who = "rank ? (host " + local_host_name() + ")";

  std::string msg = "atp: error: " + who + ": " + (what ? what : "call") +
                    " failed";
  if (expr && *expr)
    msg += std::string(": '") + expr + "'";
  msg += " at " + std::string(base_name(file)) + ":" + std::to_string(line) +
         ": " + detail + "\n";
  std::fputs(msg.c_str(), stderr);
  std::fflush(stderr);

  if (t_in_fail) // a hook failed: the hooks have had their chance
    std::_Exit(1);
  if (g_failing.exchange(true)) {
    // Another thread is running the hooks and will exit the process.
    for (;;)
      std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  t_in_fail = true;
  for (auto &hook : hooks)
    if (hook)
      hook();
  std::exit(1);
}

void check_ok(const Status &status, const char *expr, const char *file,
              int line) {
  if (!status.ok())
    fail("call", expr, file, line, status.message());
}

} // namespace atp
