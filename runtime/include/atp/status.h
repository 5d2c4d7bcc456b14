/* Status and Result: how runtime functions report failure.

   Library code that can fail at run time returns a Status (ok, or an error
   message) or a Result<T> (a value, or an error Status) up the stack, in the
   manner of nccl-tests' testResult_t + TESTCHECK; ATP_TRY forwards a failure
   to the caller. Only top-level code (the generated main, a tool's entry
   point) turns a failure into an exit, through fail() or ATP_CHECK_OK, which
   print one line naming the rank, host, call and place, run the registered
   abort hooks (the comm layer registers ncclCommAbort there so that peer
   ranks do not hang) and exit(1). */
#pragma once

#include "atp/quote.h" // quote(), for messages that name things from input files

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace atp {

// ---------------------------------------------------------------- Status

/// Ok, or an error with a message. Default-constructed is ok.
class [[nodiscard]] Status {
public:
  Status() = default;

  bool ok() const { return !failed_; }
  /// The error message; empty when ok.
  const std::string &message() const { return message_; }

  /// The same error with `context` put in front ("context: message"); an ok
  /// status stays ok.
  Status with_context(const std::string &context) const;

private:
  friend Status error(std::string message);
  bool failed_ = false;
  std::string message_;
};

/// An error status. An empty message becomes "unknown error".
Status error(std::string message);

// ---------------------------------------------------------------- Result

[[noreturn]] void fail(const char *what, const char *expr, const char *file,
                       int line, const std::string &detail);

/// A value of type T, or the error Status that prevented computing it.
template <class T> class [[nodiscard]] Result {
public:
  Result(T value) : value_(std::move(value)) {}
  /// From an error; passing an ok Status is a bug and becomes an error.
  Result(Status status) : status_(std::move(status)) {
    if (status_.ok())
      status_ = error("internal error: Result made from an ok Status");
  }

  bool ok() const { return value_.has_value(); }
  /// Ok when there is a value.
  const Status &status() const { return status_; }

  /// The value; calling these on an error is a bug and exits (fail()).
  T &value() & { return check(), *value_; }
  const T &value() const & { return check(), *value_; }
  T &&value() && { return check(), std::move(*value_); }
  T &operator*() & { return value(); }
  const T &operator*() const & { return value(); }
  T &&operator*() && { return std::move(*this).value(); }
  T *operator->() { return &value(); }
  const T *operator->() const { return &value(); }

private:
  void check() const {
    if (!value_)
      fail("Result access", "value()", __FILE__, __LINE__, status_.message());
  }
  std::optional<T> value_;
  Status status_;
};

namespace detail {
inline const Status &status_of(const Status &s) { return s; }
template <class T> const Status &status_of(const Result<T> &r) {
  return r.status();
}
} // namespace detail

/// Evaluates `expr` (a Status or a Result) and returns its error from the
/// enclosing function (which returns Status or some Result<U>) if it failed.
#define ATP_TRY(expr)                                                          \
  do {                                                                         \
    ::atp::Status atp_try_status_ = ::atp::detail::status_of(expr);            \
    if (!atp_try_status_.ok())                                                 \
      return atp_try_status_;                                                  \
  } while (0)

#define ATP_CONCAT_INNER_(a, b) a##b
#define ATP_CONCAT_(a, b) ATP_CONCAT_INNER_(a, b)

/// `ATP_ASSIGN_OR_RETURN(auto x, f());` declares x from f()'s value, or
/// returns f()'s error from the enclosing function.
#define ATP_ASSIGN_OR_RETURN(lhs, rexpr)                                       \
  ATP_ASSIGN_OR_RETURN_IMPL_(ATP_CONCAT_(atp_result_, __LINE__), lhs, rexpr)
#define ATP_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, rexpr)                            \
  auto tmp = (rexpr);                                                          \
  if (!tmp.ok())                                                               \
    return tmp.status();                                                       \
  lhs = std::move(tmp).value()

// ---------------------------------------------------------------- fatal errors

/// Prints one line to stderr,
///   atp: error: rank R/W (host H): <what> failed: '<expr>' at <file>:<line>: <detail>
/// (R/W and H as given to set_process_identity, "rank ?" before that; the
/// file without its folders; the '<expr>' part left out when expr is empty),
/// runs the abort hooks, newest first, and exits with status 1. A failure
/// inside an abort hook, or on another thread while the hooks run, prints
/// its line and does not run the hooks again. Only top-level code calls it.
[[noreturn]] void fail(const char *what, const char *expr, const char *file,
                       int line, const std::string &detail);

/// Records this process's rank, world size and host for fail() messages.
/// An empty host means the name gethostname() returns.
void set_process_identity(int rank, int world_size, std::string host = "");

/// Registers a function for fail() to call before exiting (e.g. one that
/// aborts the NCCL communicators). Returns an id for remove_abort_hook.
int add_abort_hook(std::function<void()> hook);
/// Unregisters a hook (e.g. when its communicator is destroyed normally).
/// Unknown ids are ignored.
void remove_abort_hook(int id);

/// Top-level helpers behind ATP_CHECK_OK: exit through fail() on an error.
void check_ok(const Status &status, const char *expr, const char *file,
              int line);
template <class T>
T check_ok(Result<T> &&result, const char *expr, const char *file, int line) {
  if (!result.ok())
    fail("call", expr, file, line, result.status().message());
  return std::move(result).value();
}

/// For top-level code only: `World w = ATP_CHECK_OK(World::from_env());`
/// gives the value or exits with the error, naming the call.
#define ATP_CHECK_OK(expr) ::atp::check_ok((expr), #expr, __FILE__, __LINE__)

} // namespace atp
