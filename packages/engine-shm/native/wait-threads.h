// The threads that wait on the region. Waits (a free slot, the next block) can last as long as
// a producer or consumer takes, so they never run on libuv's shared pool, and the set grows
// while every thread is busy waiting: a writer waiting for a free slot must not hold up the
// reader that would free one. One WaitThreads per JavaScript environment (the main thread and
// each worker); completions come back through a thread-safe function.
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
  // On a wait thread: the blocking work. Must not touch any Napi value.
  virtual void Execute() = 0;
  // On the JavaScript thread: settle the promise.
  virtual void Complete(Napi::Env env) = 0;
  // The environment is going away: drop references without calling into it.
  virtual void Abandon() {}

 protected:
  Napi::Promise::Deferred deferred_;
};

class WaitThreads {
 public:
  WaitThreads(Napi::Env env, size_t threads);
  ~WaitThreads();
  WaitThreads(const WaitThreads&) = delete;
  WaitThreads& operator=(const WaitThreads&) = delete;

  // JavaScript thread. A thread starts when every thread is busy, up to the maximum.
  void Submit(Napi::Env env, std::unique_ptr<Job> job);
  // Jobs queued or executing whose completion JavaScript has not yet seen.
  size_t InFlight() const { return in_flight_; }
  // Joins the threads after the job each is executing; queued jobs are abandoned.
  void Stop();

 private:
  static void CallJs(Napi::Env env, Napi::Function, WaitThreads* self, Job* job);
  using Completion = Napi::TypedThreadSafeFunction<WaitThreads, Job, &WaitThreads::CallJs>;

  void Run();

  size_t max_threads_;
  size_t idle_ = 0;
  Completion completion_;
  size_t in_flight_ = 0;  // JavaScript thread only
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Job*> queue_;
  std::vector<std::thread> threads_;
  bool stopping_ = false;
};

}  // namespace escp
