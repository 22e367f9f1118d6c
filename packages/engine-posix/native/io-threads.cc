#include "io-threads.h"

namespace escp {

namespace {

class BatchJob : public Job {
 public:
  BatchJob(Napi::Env env, std::vector<std::unique_ptr<Job>> jobs) : Job(env), jobs_(std::move(jobs)) {}
  void Execute() override {
    for (auto& j : jobs_) j->Execute();
  }
  void Complete(Napi::Env env) override {
    for (auto& j : jobs_) j->Complete(env);
    deferred_.Resolve(env.Undefined());
  }
  void Abandon() override {
    for (auto& j : jobs_) j->Abandon();
  }

 private:
  std::vector<std::unique_ptr<Job>> jobs_;
};

}  // namespace

std::unique_ptr<Job> MakeBatch(Napi::Env env, std::vector<std::unique_ptr<Job>> jobs) {
  return std::make_unique<BatchJob>(env, std::move(jobs));
}

IoThreads::IoThreads(Napi::Env env, size_t threads) : thread_count_(threads < 1 ? 1 : threads) {
  completion_ = Completion::New(env, "escp-posix-io", 0, 1, this);
  // An idle engine must not keep the process alive: referenced only while jobs are in flight.
  completion_.Unref(env);
}

IoThreads::~IoThreads() { Stop(); }

void IoThreads::Submit(Napi::Env env, std::unique_ptr<Job> job) {
  if (in_flight_++ == 0) completion_.Ref(env);
  std::lock_guard<std::mutex> lock(mutex_);
  if (threads_.empty() && !stopping_) {
    for (size_t i = 0; i < thread_count_; i++) threads_.emplace_back([this] { Run(); });
  }
  queue_.push_back(job.release());
  wake_.notify_one();
}

void IoThreads::Run() {
  for (;;) {
    Job* job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
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

void IoThreads::CallJs(Napi::Env env, Napi::Function, IoThreads* self, Job* raw) {
  // Deleted however this ends: the job pins its buffer, and would hold it for good.
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
    // is left to await it. Seen as a lost pin on a block of aligned memory, never freed.
  }
}

void IoThreads::Stop() {
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
