#include "wait-threads.h"

namespace escp {

WaitThreads::WaitThreads(Napi::Env env, size_t threads) : max_threads_(threads < 1 ? 1 : threads) {
  completion_ = Completion::New(env, "escp-shm-wait", 0, 1, this);
  // An idle engine must not keep the process alive: referenced only while jobs are in flight.
  completion_.Unref(env);
}

WaitThreads::~WaitThreads() { Stop(); }

void WaitThreads::Submit(Napi::Env env, std::unique_ptr<Job> job) {
  if (in_flight_++ == 0) completion_.Ref(env);
  std::lock_guard<std::mutex> lock(mutex_);
  queue_.push_back(job.release());
  if (!stopping_ && idle_ < queue_.size() && threads_.size() < max_threads_) threads_.emplace_back([this] { Run(); });
  wake_.notify_one();
}

void WaitThreads::Run() {
  for (;;) {
    Job* job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      idle_++;
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      idle_--;
      if (stopping_) return;
      job = queue_.front();
      queue_.pop_front();
    }
    job->Execute();
    if (completion_.BlockingCall(job) != napi_ok) {
      // The environment is closing: nobody will see this completion.
      job->Abandon();
      delete job;
    }
  }
}

void WaitThreads::CallJs(Napi::Env env, Napi::Function, WaitThreads* self, Job* raw) {
  // Deleted however this ends: the job holds its region and the buffer it fills, for good else.
  std::unique_ptr<Job> job(raw);
  if (env == nullptr) {
    job->Abandon();
    return;
  }
  if (--self->in_flight_ == 0) self->completion_.Unref(env);
  try {
    job->Complete(env);
  } catch (const Napi::Error&) {
    // A worker being stopped runs no more JavaScript: its promise cannot be settled, and nobody
    // is left to await it.
  }
}

void WaitThreads::Stop() {
  std::vector<std::thread> threads;
  std::deque<Job*> queued;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
    threads.swap(threads_);
    queued.swap(queue_);
    wake_.notify_all();
  }
  for (auto& t : threads) t.join();
  for (Job* job : queued) {
    job->Abandon();
    delete job;
  }
  completion_.Release();
}

}  // namespace escp
