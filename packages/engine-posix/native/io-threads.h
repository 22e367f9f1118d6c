// The engine's own I/O threads. Blocking file calls run here rather than on libuv's pool,
// which is shared with dns.lookup, async crypto, zlib and every other addon, and has four
// threads by default: a transfer would otherwise queue its reads behind unrelated work and
// hold back whatever else the process does. One IoThreads per JavaScript environment (the
// main thread and each worker); completions come back through a thread-safe function.
#pragma once
#include <napi.h>

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace escp {

class Job {
 public:
  explicit Job(Napi::Env env) : deferred_(Napi::Promise::Deferred::New(env)) {}
  virtual ~Job() = default;
  Napi::Promise Promise() const { return deferred_.Promise(); }
  // On an I/O thread: the blocking work. Must not touch any Napi value.
  virtual void Execute() = 0;
  // On the JavaScript thread: settle the promise.
  virtual void Complete(Napi::Env env) = 0;
  // The environment is going away: drop references without calling into it.
  virtual void Abandon() {}

 protected:
  Napi::Promise::Deferred deferred_;
};

// Jobs run one after another on one I/O thread, each settling its own promise: many small
// operations for the price of one thread woken. Its own promise settles after them.
std::unique_ptr<Job> MakeBatch(Napi::Env env, std::vector<std::unique_ptr<Job>> jobs);

class IoThreads {
 public:
  IoThreads(Napi::Env env, size_t threads);
  ~IoThreads();
  IoThreads(const IoThreads&) = delete;
  IoThreads& operator=(const IoThreads&) = delete;

  // JavaScript thread. Threads start on the first job.
  void Submit(Napi::Env env, std::unique_ptr<Job> job);
  // Jobs queued or executing whose completion JavaScript has not yet seen.
  size_t InFlight() const { return in_flight_; }
  // Joins the threads after the job each is executing; queued jobs are abandoned.
  void Stop();

 private:
  static void CallJs(Napi::Env env, Napi::Function, IoThreads* self, Job* job);
  using Completion = Napi::TypedThreadSafeFunction<IoThreads, Job, &IoThreads::CallJs>;

  void Run();

  size_t thread_count_;
  Completion completion_;
  size_t in_flight_ = 0;  // JavaScript thread only
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Job*> queue_;
  std::vector<std::thread> threads_;
  bool stopping_ = false;
};

}  // namespace escp
